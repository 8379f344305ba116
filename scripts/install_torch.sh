#!/usr/bin/env bash
# Install torch into the active Python environment without ever pulling CUDA packages onto a
# machine that has no GPU: PyPI's Linux torch wheel is the CUDA build (about 500 MiB, plus
# several GB of nvidia-* packages), so the CPU wheel index is asked first.
#   TORCH_VERSION    default 2.13.0
#   TORCH_INDEX_URL  default https://download.pytorch.org/whl/cpu
#   TORCH_CUDA=1     take the default (CUDA) build even without a visible GPU
set -euo pipefail
VERSION=${TORCH_VERSION:-2.13.0}
CPU_INDEX=${TORCH_INDEX_URL:-https://download.pytorch.org/whl/cpu}

if python -c "import torch" 2>/dev/null; then
    exit 0
fi
if [ "${TORCH_CUDA:-0}" = 1 ] || { command -v nvidia-smi >/dev/null && nvidia-smi -L >/dev/null 2>&1; }; then
    echo "install_torch: a GPU is present (or TORCH_CUDA=1): installing the default torch build"
    exec python -m pip install --quiet "torch==${VERSION}"
fi
# The CPU index also serves torch's dependencies; a short timeout keeps an unreachable index
# from stalling the install for minutes.
if python -m pip install --quiet --timeout 20 --retries 1 --index-url "$CPU_INDEX" \
    "torch==${VERSION}" 2>/dev/null; then
    exit 0
fi
echo "install_torch: the CPU wheel index ($CPU_INDEX) is unreachable; trying the configured" \
    "package index, which must offer a CPU build"
# Torch alone first (no dependencies): if the index offers only the CUDA build, stop before
# its nvidia-* packages are downloaded.
python -m pip install --quiet --no-deps "torch==${VERSION}"
if [ "$(python -c 'import torch; print(torch.version.cuda or "")' 2>/dev/null || echo cuda)" != "" ]; then
    python -m pip uninstall --quiet --yes torch
    echo "install_torch: the configured index offers only a CUDA build of torch ${VERSION}." >&2
    echo "  Point TORCH_INDEX_URL at a CPU wheel index (or install torch yourself), or set" >&2
    echo "  TORCH_CUDA=1 to accept the CUDA build, then run this script again." >&2
    exit 1
fi
python -m pip install --quiet "torch==${VERSION}"  # its (small) dependencies
