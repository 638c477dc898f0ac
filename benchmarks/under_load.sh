#!/bin/bash
# kiln against ONNX Runtime with one busy process beside them (a shell loop, one core's worth of work on a
# 2-core machine): how each OpenMP wait policy holds up when the CPUs are shared. For every model, two
# runs of `kiln bench --vs ort`: libgomp's own default spin (GOMP_SPINCOUNT=300000, ~8 ms) and kiln's
# (GOMP_SPINCOUNT=1000, what the kiln program sets; see runtime/threads.h). ORT has its own thread pool and
# is not affected by either. Needs the corpus (benchmarks/corpus/build.py) and the peers' venv (make peers).
#
#   benchmarks/under_load.sh [MODEL ...]    (corpus names; default: mobilenetv3-large ssdlite320-mobilenetv3 resnet50)
set -euo pipefail
cd "$(dirname "$0")/.."
KILN=${KILN:-./build/kiln}
MODELS=benchmarks/corpus/models
[ $# -gt 0 ] || set -- mobilenetv3-large ssdlite320-mobilenetv3 resnet50

sh -c 'while :; do :; done' &
busy=$!
trap 'kill $busy 2>/dev/null' EXIT
printf '%-24s %-22s %s\n' model policy "batch seq | p50 kiln, ORT, ratio | p99 kiln, ORT, ratio | items/s kiln, ORT, ratio"
for m in "$@"; do
  [ -f "$MODELS/$m.onnx" ] || { echo "under_load.sh: no $MODELS/$m.onnx (run benchmarks/corpus/build.py)" >&2; exit 2; }
  for spin in 300000 1000; do
    line=$(GOMP_SPINCOUNT=$spin "$KILN" bench "$MODELS/$m.onnx" --input-dir "$MODELS/$m/inputs" --vs ort \
             --rounds 3 --duration 1.5 --threads 2 -q | tail -1)
    printf '%-24s %-22s %s\n' "$m" "GOMP_SPINCOUNT=$spin" "$line"
  done
done
