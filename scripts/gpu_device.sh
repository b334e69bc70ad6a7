#!/usr/bin/env bash
# scripts/gpu_report.py on a lent GPU machine (the device tool), which has torch, torchvision, Lightning and
# TensorBoard but not Hydra, no network, and no ../shared/data.
#
#   bash scripts/gpu_device.sh prepare    # here: gpu_carry/ (git-ignored, ~13 MB): the pure-Python wheels the
#                                         # report needs beyond those (versions of constraints.txt) and MNIST's .gz files
#   bash scripts/gpu_device.sh run        # there, through the device tool with carry=["gpu_carry"]: the wheels
#                                         # unpacked onto PYTHONPATH (no pip needed), then the report into $OUT
set -euo pipefail
cd "$(dirname "$0")/.."
WHEELS=(hydra-core omegaconf antlr4-python3-runtime rich markdown-it-py mdurl pygments pytest pluggy iniconfig)

case "${1:-}" in
prepare)
    rm -rf gpu_carry && mkdir -p gpu_carry/wheels gpu_carry/data/MNIST/raw
    pins=()
    for name in "${WHEELS[@]}"; do
        pins+=("$(grep -i "^${name}==" constraints.txt)")
    done
    python -m pip wheel --quiet --no-deps --wheel-dir gpu_carry/wheels "${pins[@]}"
    cp "${VAE_ZOO_DATA_DIR:?set it to the data folder}"/MNIST/raw/*.gz gpu_carry/data/MNIST/raw/
    du -sh gpu_carry
    ;;
run)
    site=$(mktemp -d)
    for wheel in gpu_carry/wheels/*.whl; do
        python -m zipfile -e "$wheel" "$site"
    done
    export PYTHONPATH="$PWD:$site" VAE_ZOO_DATA_DIR="$PWD/gpu_carry/data"
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
    python -c "import torch, pytorch_lightning as pl; print('torch', torch.__version__, 'lightning', pl.__version__)"
    python scripts/gpu_report.py --out "${OUT:-outputs}/gpu_report.md"
    ;;
*)
    echo "usage: bash scripts/gpu_device.sh prepare|run" >&2
    exit 2
    ;;
esac
