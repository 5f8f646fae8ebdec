#!/usr/bin/env bash
# The "run it for real" figures in the README, with the embedded SmolLM2-135M-Instruct:
#   - thor eval: the first 100 GSM8K test problems, cot vs tir vs thor, same seed (issue 5);
#   - thor tirgen: SmolLM2 as actor with the rule critic on synthetic problems, and SmolLM2 as actor
#     and critic on MATH train problems, CPU preset (issue 6).
# The five runs go in parallel, one torch thread each (on 2 cores this beats one run at a time with
# two threads); each resumes when the script is run again. Sizes: SYNTHETIC=N MATH=N GSM8K=N;
# RUNS="gsm8k tirgen" (default both) picks the group; TIRGen keeps CONCURRENCY problems in flight.
set -euo pipefail
cd "$(dirname "$0")/.."
THOR=.venv/bin/thor
OUT=${OUT:-runs/real}
GSM8K=${GSM8K:-100}
SYNTHETIC=${SYNTHETIC:-200}
MATH=${MATH:-50}
RUNS=${RUNS:-gsm8k tirgen}
CONCURRENCY=${CONCURRENCY:-64}
mkdir -p "$OUT"
export OMP_NUM_THREADS=1

wants() { [[ " $RUNS " == *" $1 "* ]]; }

wants gsm8k && for agent in cot tir thor; do
  $THOR eval --benchmark gsm8k --limit "$GSM8K" --agent "$agent" --preset cpu --max-tokens 256 \
    --seed 0 --no-progress --out "$OUT/gsm8k-$agent.jsonl" > "$OUT/gsm8k-$agent.log" 2>&1 &
done
if wants tirgen; then
  /usr/bin/time -v -o "$OUT/tirgen-synthetic-rule.time" \
    $THOR tirgen --problems synthetic_train --limit "$SYNTHETIC" --actor embedded --critic rule \
    --preset cpu --concurrency "$CONCURRENCY" --no-progress --out "$OUT/tirgen-synthetic-rule" \
    > "$OUT/tirgen-synthetic-rule.log" 2>&1 &
  /usr/bin/time -v -o "$OUT/tirgen-math-llm.time" \
    $THOR tirgen --problems math_train --limit "$MATH" --actor embedded --critic embedded \
    --preset cpu --concurrency "$CONCURRENCY" --no-progress --out "$OUT/tirgen-math-llm" \
    > "$OUT/tirgen-math-llm.log" 2>&1 &
fi
status=0
for job in $(jobs -p); do wait "$job" || status=1; done

wants gsm8k && for agent in cot tir thor; do
  echo "== gsm8k $agent"; tail -n 12 "$OUT/gsm8k-$agent.log"
done
wants tirgen && for run in tirgen-synthetic-rule tirgen-math-llm; do
  echo "== $run"; .venv/bin/python -c "import json,sys; from thor.data.tirgen import Funnel; print(Funnel.model_validate_json(open(sys.argv[1]).read()).markdown())" "$OUT/$run/funnel.json"
done
exit $status
