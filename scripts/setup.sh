#!/usr/bin/env bash
# Install mtl_hf into the active Python environment, offline-friendly.
#
# torch: if no torch is importable, install the CPU wheel torch==2.13.0 first, so that pip never resolves the
# unpinned dependency to a multi-GB CUDA build; a torch that is already installed (a GPU user's) is kept.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
EXTRAS="${1:-dev}"

if "$PYTHON" -c "import torch" >/dev/null 2>&1; then
  echo "setup: keeping installed torch $("$PYTHON" -c 'import torch; print(torch.__version__)')"
else
  echo "setup: no torch found; installing the CPU wheel torch==2.13.0"
  "$PYTHON" -m pip install --quiet --disable-pip-version-check "torch==2.13.0"
fi
"$PYTHON" -m pip install --quiet --disable-pip-version-check -e ".[${EXTRAS}]"
echo "setup: mtl_hf $("$PYTHON" -c 'import mtl_hf; print(mtl_hf.__version__)') installed"
