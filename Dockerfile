# GPU image: python train.py by default. Data is mounted at /data, runs land in /app/outputs.
FROM nvidia/cuda:12.8.1-cudnn-runtime-ubuntu24.04

ENV DEBIAN_FRONTEND=noninteractive PIP_NO_CACHE_DIR=1 PYTHONUNBUFFERED=1 VAE_ZOO_DATA_DIR=/data
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3 python3-venv \
    && rm -rf /var/lib/apt/lists/* \
    && python3 -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH

WORKDIR /app
COPY pyproject.toml README.md train.py eval.py sample.py ./
COPY vae_zoo ./vae_zoo
RUN pip install --upgrade pip && pip install .

VOLUME ["/data", "/app/outputs"]
CMD ["python", "train.py"]
