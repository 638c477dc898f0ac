#!/usr/bin/env bash
# Reproduces the table in BENCHMARKS.md: kiln against ONNX Runtime and OpenVINO (benchmarks/peers) on
# the same models, inputs, shapes and threads, in alternating rounds. Each configuration's figures, per round and
# summarized, go to $OUT/NAME.json; the tables go to stdout.
#
#   make build peers && benchmarks/run.sh            # about 20 minutes on 2 cores
#   make corpus && CORPUS=1 benchmarks/run.sh        # and the model corpus (22 models vs ORT, +25 minutes)
#
# The machine should be otherwise idle: on a shared 2-core machine a concurrent build slows both
# engines unevenly and the ratios mean little.
set -euo pipefail
cd "$(dirname "$0")/.."
KILN=${KILN:-./build/kiln}
THREADS=${THREADS:-2}
ROUNDS=${ROUNDS:-5}  # alternating rounds per engine: on a shared machine, more rounds steady the medians
VS=${VS:-ort,openvino}  # peers: ONNX Runtime, OpenVINO at f32 and at its default precision
OUT=${OUT:-benchmarks/results}
MODELS=${MODELS:-${XDG_CACHE_HOME:-$HOME/.cache}/kiln/bench-models}
mkdir -p "$OUT" "$MODELS"

export_once() {  # FILE, then the kiln export arguments
  local file=$1
  shift
  [ -f "$file" ] || "$KILN" export "$@" -o "$file" -q
}
export_once "$MODELS/vit-base.onnx" vit --preset vit-base
export_once "$MODELS/resnet50.onnx" resnet50
export_once "$MODELS/mobilenetv3.onnx" mobilenetv3

bench() {  # NAME, then the kiln bench arguments
  local name=$1
  shift
  echo "== $name"
  "$KILN" bench "$@" --threads "$THREADS" --vs "$VS" --rounds "$ROUNDS" --json "$OUT/$name.json" -q
}
bench bert-base-b1 --batch 1 --seq 32,128 --iterations 20          # the built-in bert-base
bench bert-base-b8 --batch 8 --seq 128 --iterations 5
bench vit-base-b1 "$MODELS/vit-base.onnx" --batch 1 --iterations 20
bench bert-tiny-b1 tests/data/bert-tiny/model.onnx --batch 1 --seq 128 --iterations 300
bench resnet50-b1 "$MODELS/resnet50.onnx" --batch 1 --iterations 20
bench mobilenetv3-b1 "$MODELS/mobilenetv3.onnx" --batch 1 --iterations 100

# The model corpus (benchmarks/corpus): every built model on its own inputs against ORT, with each model's
# reference-kernel share from kiln's profiler; the table goes to stdout and $OUT/corpus/.
if [ "${CORPUS:-0}" = 1 ]; then
  echo "== corpus"
  python3 benchmarks/corpus/bench.py --kiln "$KILN" --threads "$THREADS" --rounds "${CORPUS_ROUNDS:-3}" \
    --out "$OUT/corpus" --profile
fi
