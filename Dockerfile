# The tested set (constraints.txt) in an image: python train.py by default, on the GPU when run with
# --gpus all (torch's wheels carry their CUDA libraries; the host provides the driver), else the CPU.
# Data is mounted at /data, runs land in /app/outputs. Python 3.11, as CI tests it.
FROM python:3.11-slim

ENV PIP_NO_CACHE_DIR=1 PYTHONUNBUFFERED=1 VAE_ZOO_DATA_DIR=/data
WORKDIR /app
COPY pyproject.toml README.md constraints.txt train.py eval.py sample.py ./
COPY vae_zoo ./vae_zoo
COPY hydra_plugins ./hydra_plugins
RUN pip install --no-cache-dir . -c constraints.txt

VOLUME ["/data", "/app/outputs"]
CMD ["python", "train.py"]
