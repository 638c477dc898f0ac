#!/usr/bin/env bash
# serve-load-test.sh: the long load tests of `kiln serve` (not part of `make test`): wrk and a small Python
# client against the real program on loopback, six scenarios, each bounded in time:
#
#   1. bert-tiny with dynamic batching (max 8, delay 2000 us), wrk -c32 15 s: 0 non-2xx, 0 socket errors
#   2. bert-base at concurrency 8, batching off vs on (max 8, delay 5000 us): throughput ratio >= 2
#   3. overload, 256 connections on a queue of 8: every non-200 is a 503 with Retry-After; p99 of the 200s
#   4. SIGTERM under load: exit 0, every logged request 200, as many 200s received as logged
#   5. reload under load (same version, then version 2), then a failing load (a corrupt version 3)
#   6. RSS before and after 2000 bad requests: growth < 10 MiB
#
# It prints a table at the end and writes it, with every command and figure, as markdown to OUT (default
# build/serve-load/report.md); it exits 1 if a check fails (2 on a usage or setup error). Needs wrk
# (scripts/install-deps.sh), python3 and a built kiln (`make build`); scenarios 3 and 4 need kiln serve's
# --access-log. Takes a few minutes (more the first time bert-base is exported). Run it on an otherwise
# idle machine: wrk shares the cores with the server, and any other load changes the figures.
# shellcheck disable=SC2154  # the W_*, A_* and B_* figures are assigned by load_vars (eval)
set -euo pipefail

usage() {
  cat <<'EOF'
Usage: scripts/serve-load-test.sh [--only N[,N...]] [--out FILE]

The load tests of `kiln serve` (see the top of this script). Options:
  --only LIST   the scenarios to run, e.g. 1,3 (default: 1,2,3,4,5,6)
  --out FILE    the markdown report (default build/serve-load/report.md; work files beside it go to
                build/serve-load/)
  -h, --help    this help
Environment: KILN (default build/kiln), THREADS and HTTP_THREADS (kiln serve's --threads and
--http-threads, default 2 and 2), BERT_BASE (a bert-base .onnx; default the built-in model's cache file,
else `kiln export bert --preset bert-base` into build/serve-load/), OVERLOAD_MODEL (scenario 3's model:
bert-tiny, the default, or bert-base).
EOF
}

SELF=$(realpath "${BASH_SOURCE[0]}")
ROOT=$(cd "$(dirname "$SELF")/.." && pwd)
cd "$ROOT"
export KILN=${KILN:-build/kiln}
export THREADS=${THREADS:-2}
export HTTP_THREADS=${HTTP_THREADS:-2}
export OVERLOAD_MODEL=${OVERLOAD_MODEL:-bert-tiny}
export WORK=build/serve-load
PY=(python3 scripts/serve_load_report.py)
TINY=tests/data/bert-tiny/model.onnx
READY_TIMEOUT=300  # seconds for a server to load, optimize and warm up its model
RSS_LIMIT_KB=10240
# Scenario N's wall-clock limit in seconds (it is killed past it, and reported as an error).
LIMITS=(0 240 900 600 300 300 300)

# The two configs of the brief: batching as scenario 1 asks, and none.
CONFIG_TINY='{"max_batch_size": 8, "dynamic_batching": {"preferred_batch_size": [8], "max_queue_delay_microseconds": 2000, "max_queue_size": 64, "timeout_ms": 10000}}'
CONFIG_OFF='{"max_batch_size": 0}'
CONFIG_BASE_ON='{"max_batch_size": 8, "dynamic_batching": {"preferred_batch_size": [8], "max_queue_delay_microseconds": 5000, "max_queue_size": 64, "timeout_ms": 10000}}'
CONFIG_OVERLOAD='{"max_batch_size": 8, "dynamic_batching": {"preferred_batch_size": [8], "max_queue_delay_microseconds": 2000, "max_queue_size": 8, "timeout_ms": 10000}}'

say() { printf '%s\n' "$*" >&2; }

# ------------------------------------------------------------------------------------------------------
# One scenario (run as `serve-load-test.sh __scenario N` by the driver below, in its own process, so that
# set -e holds inside it and its servers die with it). It writes WORK/sN/result.tsv: title, cmd, config,
# fig, check, note and error lines, tab-separated, which serve_load_report.py turns into the report.
# ------------------------------------------------------------------------------------------------------

S=""
RES=""
PIDS=()

rec() {
  local IFS=$'\t'
  printf '%s\n' "$*" >>"$RES"
}
# A command as it can be pasted into a shell.
qcmd() {
  local out="" a
  for a in "$@"; do out+="${out:+ }$(printf '%q' "$a")"; done
  printf '%s' "$out"
}
cmd() { rec cmd "$*"; }
fig() {
  rec fig "$1" "$2"
  say "    $1: $2"
}
# check LABEL OK DETAIL: OK is 1 (pass) or 0.
check() {
  local verdict=FAIL
  if [ "$2" = 1 ]; then verdict=PASS; fi
  rec check "$1" "$verdict" "$3"
  say "  [$verdict] $1: $3"
}
die() {
  rec error "$*"
  say "  ERROR: $*"
  exit 3
}
# Float comparisons and arithmetic, empty operands failing.
fge() { awk -v a="$1" -v b="$2" 'BEGIN { print (a != "" && b != "" && a + 0 >= b + 0) ? 1 : 0 }'; }
fdiv() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "" || b == "" || b + 0 == 0) print ""; else printf "%.2f", a / b }'; }
now_ms() { date +%s%3N; }
sleep_until() {  # epoch ms
  local d=$(($1 - $(now_ms)))
  if [ "$d" -gt 0 ]; then sleep "$(printf '%d.%03d' $((d / 1000)) $((d % 1000)))"; fi
}
# Alive and not a zombie.
alive() { [ -e "/proc/$1" ] && ! grep -q '^State:[[:space:]]*Z' "/proc/$1/status" 2>/dev/null; }
# load_vars PREFIX COMMAND...: COMMAND's name=value lines as shell variables PREFIX_name.
load_vars() {
  local prefix=$1 out line
  shift
  out=$("$@")
  while IFS= read -r line; do
    if [ -n "$line" ]; then eval "${prefix}_$line"; fi
  done <<<"$out"
}

on_exit() {
  local rc=$?
  local pid
  for pid in "${PIDS[@]}"; do
    if alive "$pid"; then kill -TERM "$pid" 2>/dev/null || true; fi
  done
  for pid in "${PIDS[@]}"; do
    for _ in $(seq 50); do alive "$pid" || break; sleep 0.2; done
    if alive "$pid"; then kill -KILL "$pid" 2>/dev/null || true; fi
  done
  if [ "$rc" -ne 0 ] && [ "$rc" -ne 3 ] && [ -n "$RES" ]; then
    if [ "$rc" -eq 143 ]; then
      rec error "stopped by SIGTERM: past its time limit of ${LIMITS[$N]} s, or interrupted"
    elif [ "$rc" -eq 130 ]; then
      rec error "interrupted"
    else
      rec error "the script failed (exit $rc) at line ${ERR_LINE:-?}: ${ERR_CMD:-?}"
    fi
  fi
}

# make_repo NAME MODEL CONFIG [copy]: S/repo/NAME/1/model.onnx (a symlink, or a copy) and its config.json.
make_repo() {
  local name=$1 model=$2 config=$3 how=${4:-link}
  mkdir -p "$S/repo/$name/1"
  if [ "$how" = copy ]; then
    cp "$model" "$S/repo/$name/1/model.onnx"
    cmd "$(qcmd mkdir -p "$S/repo/$name/1")" "&&" "$(qcmd cp "$model" "$S/repo/$name/1/model.onnx")"
  else
    ln -s "$(realpath "$model")" "$S/repo/$name/1/model.onnx"
    cmd "$(qcmd mkdir -p "$S/repo/$name/1")" "&&" "$(qcmd ln -s "$(realpath "$model")" "$S/repo/$name/1/model.onnx")"
  fi
  printf '%s\n' "$config" >"$S/repo/$name/config.json"
  cmd "echo '$config' > $S/repo/$name/config.json"
  rec config "$S/repo/$name/config.json" "$config"
}

# The request body (batch 1, sequence ${1:-16}, the outputs ${2:-all}) and wrk's script.
make_request() {
  local seq=${1:-16} outputs=${2:-}
  "${PY[@]}" body "$S/body.json" --batch 1 --seq "$seq" --seed 1 --outputs "$outputs"
  "${PY[@]}" lua "$S/body.json" "$S/post.lua"
  cmd "$(qcmd "${PY[@]}" body "$S/body.json" --batch 1 --seq "$seq" --seed 1 --outputs "$outputs")"
  cmd "$(qcmd "${PY[@]}" lua "$S/body.json" "$S/post.lua")"
}

# start_server TAG REPO [ARGS...]: sets SRV_PID and PORT once the server printed its ready line.
start_server() {
  local tag=$1 repo=$2
  shift 2
  local c=("$KILN" serve "$repo" --port 0 --threads "$THREADS" --http-threads "$HTTP_THREADS" "$@")
  # The access log goes to a file or nowhere (its default is stderr).
  if [ "$HAS_ACCESS_LOG" = yes ] && [[ " $* " != *" --access-log "* ]]; then c+=(--access-log off); fi
  c+=(-q)
  cmd "$(qcmd "${c[@]}")" "> $S/$tag.stdout 2> $S/$tag.stderr &   # read the port from its ready line"
  "${c[@]}" >"$S/$tag.stdout" 2>"$S/$tag.stderr" &
  SRV_PID=$!
  PIDS+=("$SRV_PID")
  local start=$SECONDS
  until grep -q 'kiln serve: ready on http://127.0.0.1:' "$S/$tag.stdout"; do
    if ! alive "$SRV_PID"; then
      die "kiln serve ($tag) exited before it was ready: $(tail -n 3 "$S/$tag.stderr" | tr '\t\n' '  ')"
    fi
    if [ $((SECONDS - start)) -ge "$READY_TIMEOUT" ]; then die "kiln serve ($tag) not ready after $READY_TIMEOUT s"; fi
    sleep 0.2
  done
  PORT=$(sed -n 's#.*ready on http://127\.0\.0\.1:\([0-9][0-9]*\).*#\1#p' "$S/$tag.stdout" | head -n 1)
  say "    kiln serve ($tag) ready on port $PORT after $((SECONDS - start)) s (pid $SRV_PID)"
}

# stop_server PID: SIGTERM, then its exit code in SRV_RC (KILL and 137 past 60 s) and the seconds in SRV_STOP_S.
stop_server() {
  local pid=$1 t0
  t0=$(now_ms)
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 600); do alive "$pid" || break; sleep 0.1; done
  if alive "$pid"; then kill -KILL "$pid" || true; fi
  SRV_RC=0
  wait "$pid" || SRV_RC=$?
  SRV_STOP_S=$(fdiv $(($(now_ms) - t0)) 1000)
}

# run_wrk OUTFILE ARGS...: wrk in the foreground; its output to OUTFILE and its figures in W_*.
run_wrk() {
  local out=$1
  shift
  cmd "$(qcmd wrk "$@")" "> $out"
  wrk "$@" >"$out" 2>&1 || die "wrk failed: $(tail -n 2 "$out" | tr '\n' ' ')"
  load_vars W "${PY[@]}" wrk "$out"
}

url_infer() { printf 'http://127.0.0.1:%s/v2/models/%s/infer' "$PORT" "$1"; }

# http METHOD URL OUTFILE [BODY]: the status in HTTP_STATUS, the body in OUTFILE.
http() {
  local c=("${PY[@]}" http "$1" "$2" --out "$3")
  if [ $# -ge 4 ]; then c+=(--body "$4"); fi
  cmd "$(qcmd "${c[@]}")"
  HTTP_STATUS=$("${c[@]}")
}

# The access log's figures, in A_*.
read_access_log() { load_vars A "${PY[@]}" access-log "$1"; }

# The figures wrk gives for every run.
wrk_figures() {  # LABEL-PREFIX
  local p=${1:+$1 }
  fig "${p}requests/s (all responses)" "$W_rps"
  fig "${p}latency p50 / p99 (ms)" "$W_p50_ms / $W_p99_ms"
  fig "${p}responses by status (wrk)" "${W_statuses:-none}"
}

scenario_1() {
  rec title "bert-tiny, batching max 8 / delay 2000 us, wrk -t2 -c32 -d15s"
  make_repo bert-tiny "$TINY" "$CONFIG_TINY"
  make_request
  local extra=()
  if [ "$HAS_ACCESS_LOG" = yes ]; then extra=(--access-log "$S/access.log"); fi
  start_server server "$S/repo" "${extra[@]}"
  run_wrk "$S/wrk.txt" -t2 -c32 -d15s --latency -s "$S/post.lua" "$(url_infer bert-tiny)"
  fig "requests/s" "$W_rps"
  fig "latency p50 / p99 (ms)" "$W_p50_ms / $W_p99_ms"
  fig "requests" "$W_requests"
  check "every response 2xx (wrk's Non-2xx count 0)" "$((W_non2xx == 0 && W_s200 > 0))" \
    "non-2xx $W_non2xx; by status: ${W_statuses:-none}"
  check "0 socket errors" "$((W_sock_errors == 0))" "$W_sock_detail"
  http GET "http://127.0.0.1:$PORT/metrics" "$S/metrics.txt"
  if [ "$HTTP_STATUS" = 200 ]; then
    rec note "GET /metrics after the run: $(grep -vc '^#' "$S/metrics.txt") samples, in $S/metrics.txt."
  fi
  stop_server "$SRV_PID"
  fig "server exit code on SIGTERM" "$SRV_RC"
  if [ "$HAS_ACCESS_LOG" = yes ]; then
    read_access_log "$S/access.log"
    fig "mean batch size (access log)" "$A_batch_mean"
    fig "requests by the size of their batch" "$A_batches"
    fig "server ms p50 / p99 (access log)" "$A_ms_p50 / $A_ms_p99"
  fi
}

# Sequence lengths of scenario 2 (S2_SEQS="8 16"): short queries, as a real-time search or embedding API
# gets them. Each request asks for pooler_output only (the sentence embedding such an API returns).
S2_SEQS=${S2_SEQS:-8 16}

scenario_2() {
  rec title "bert-base at concurrency 8 (wrk -t2 -c8 -d20s), batching off vs on (max 8, delay 5000 us), sequence ${S2_SEQS// /, }, pooler_output asked for"
  local seq mode config rps_off="" rps_on=""
  for seq in $S2_SEQS; do
  for mode in off on; do
    config=$CONFIG_OFF
    if [ "$mode" = on ]; then config=$CONFIG_BASE_ON; fi
    local saved_s=$S
    S=$saved_s/seq$seq-$mode
    mkdir -p "$S"
    make_repo bert-base "$BERT_BASE" "$config"
    make_request "$seq" pooler_output
    local extra=()
    if [ "$HAS_ACCESS_LOG" = yes ]; then extra=(--access-log "$S/access.log"); fi
    start_server "server" "$S/repo" "${extra[@]}"
    # A short warm-up, not reported (allocator and page cache settle).
    run_wrk "$S/warmup.txt" -t2 -c8 -d3s --timeout 20s -s "$S/post.lua" "$(url_infer bert-base)"
    run_wrk "$S/wrk.txt" -t2 -c8 -d20s --latency --timeout 20s -s "$S/post.lua" "$(url_infer bert-base)"
    # Throughput counts the 200s only, so that fast errors cannot pass for speed.
    local ok_rps
    ok_rps=$(fdiv "$W_s200" "$W_duration_s")
    fig "seq $seq, batching $mode: 200 responses/s" "$ok_rps"
    fig "seq $seq, batching $mode: latency p50 / p99 (ms)" "$W_p50_ms / $W_p99_ms"
    check "seq $seq, batching $mode: every response 2xx, 0 socket errors" \
      "$((W_non2xx == 0 && W_sock_errors == 0 && W_s200 > 0))" \
      "by status: ${W_statuses:-none}; socket errors: $W_sock_detail"
    stop_server "$SRV_PID"
    if [ "$HAS_ACCESS_LOG" = yes ]; then
      read_access_log "$S/access.log"
      fig "seq $seq, batching $mode: mean batch size (access log)" "$A_batch_mean"
      fig "seq $seq, batching $mode: requests by the size of their batch" "$A_batches"
    fi
    if [ "$mode" = off ]; then rps_off=$ok_rps; else rps_on=$ok_rps; fi
    S=$saved_s
  done
  local ratio
  ratio=$(fdiv "$rps_on" "$rps_off")
  fig "seq $seq: throughput ratio on / off" "${ratio:-n/a}"
  check "seq $seq: batching on gives >= 2x the throughput of batching off" "$(fge "$ratio" 2)" \
    "$rps_on / $rps_off = ${ratio:-n/a}"
  done
  rec note "Throughput here is 200 responses per second of wrk's run (wrk's Requests/sec counts every response). What batching can gain is bounded by the model's own cost at batch 1 and 8: on a 2-core machine bert-base b1 is bound by reading its weights, b8 by compute, so the gain falls as the sequence grows (kiln bench on the same file gives the kernel-level ratio)."
}

scenario_3() {
  local model=$OVERLOAD_MODEL file=$TINY
  if [ "$model" = bert-base ]; then file=$BERT_BASE; fi
  rec title "overload: $model, batching max 8 / queue 8, wrk -t2 -c256 -d15s"
  make_repo "$model" "$file" "$CONFIG_OVERLOAD"
  make_request
  start_server server "$S/repo" --access-log "$S/access.log"
  run_wrk "$S/wrk.txt" -t2 -c256 -d15s --latency --timeout 10s -s "$S/post.lua" "$(url_infer "$model")"
  stop_server "$SRV_PID"
  read_access_log "$S/access.log"
  fig "responses by status (wrk)" "${W_statuses:-none}"
  fig "responses by status (access log)" "${A_statuses:-none}"
  fig "200s/s" "$(fdiv "$W_s200" "$W_duration_s")"
  fig "accepted (200) requests: server ms p50 / p99 / max (access log)" "$A_ms_p50 / $A_ms_p99 / $A_ms_max"
  fig "all responses: latency p50 / p99 (wrk, 503s included)" "$W_p50_ms / $W_p99_ms"
  check "every non-200 is a 503" "$((W_s_other == 0 && W_sock_errors == 0 && W_s200 > 0))" \
    "non-200 non-503 responses: $W_s_other; socket errors: $W_sock_detail; 200s: $W_s200"
  check "every 503 has Retry-After" "$([ "$W_no_retry_after" = 0 ] && echo 1 || echo 0)" \
    "503s: $W_s503, without Retry-After: ${W_no_retry_after:-?}"
  check "the 256 connections overloaded it (some 503s)" "$((W_s503 > 0))" "503s: $W_s503"
  rec note "The server holds at most 8 (the batch running) + 8 (the queue) requests of $model at a time, whatever the model's speed; 256 connections each keep one request outstanding, so most are refused at any moment (the \"some 503s\" check proves it: were the HTTP layer slower than the model, the queue would never fill; then run with OVERLOAD_MODEL=bert-base). The p99 of the accepted requests is the server's own time (the access log's ms), since wrk's latency mixes in the fast 503s."
}

scenario_4() {
  rec title "SIGTERM under load: bert-tiny, wrk -t2 -c16, SIGTERM after 5 s"
  make_repo bert-tiny "$TINY" "$CONFIG_TINY"
  make_request
  start_server server "$S/repo" --access-log "$S/access.log"
  local w=(wrk -t2 -c16 -d60s --latency --timeout 10s -s "$S/post.lua" "$(url_infer bert-tiny)")
  cmd "$(qcmd "${w[@]}")" "> $S/wrk.txt &"
  "${w[@]}" >"$S/wrk.txt" 2>&1 &
  local wrk_pid=$!
  PIDS+=("$wrk_pid")
  cmd "sleep 5"
  sleep 5
  cmd "kill -TERM <kiln serve's pid>   # then wait for it to exit"
  stop_server "$SRV_PID"
  cmd "sleep 1; kill -INT <wrk's pid>   # wrk prints its summary and the Lua counts"
  sleep 1
  kill -INT "$wrk_pid" 2>/dev/null || true
  wait "$wrk_pid" || true
  load_vars W "${PY[@]}" wrk "$S/wrk.txt"
  read_access_log "$S/access.log"
  fig "server exit code; seconds from SIGTERM to exit" "$SRV_RC; $SRV_STOP_S"
  fig "200s received by wrk" "$W_s200"
  fig "requests logged by the server (by status)" "$A_lines (${A_statuses:-none})"
  fig "wrk socket errors (after the listener closed)" "$W_sock_detail"
  check "exit code 0" "$((SRV_RC == 0))" "exit $SRV_RC after ${SRV_STOP_S} s"
  check "every logged request has status 200" "$((A_lines > 0 && A_non200 == 0 && A_bad_lines == 0))" \
    "logged $A_lines, non-200 $A_non200, unreadable lines $A_bad_lines"
  check "0 accepted requests lost: wrk's 200s = the server's logged 200s" \
    "$((A_s200 > 0 && W_s200 == A_s200))" "wrk $W_s200, access log $A_s200"
  rec note "How the check works: the access log holds one line per request the server took (read and routed). SIGTERM must stop the listener but answer every request already taken, so every logged line must be a 200 (no 503 or 500 while draining), and wrk, which keeps running until a second after the server exited, must have received exactly as many 200 responses as the server logged: a request taken but never answered would be logged without wrk seeing it (or, if dropped before logging, would be missing from both; that case shows as wrk read errors). wrk's connect errors after the SIGTERM are its reconnects to the closed listener and are expected; a request sent on a keep-alive connection that the server closes at the same moment is the usual HTTP race and shows as a read error, not as a lost accepted request."
}

scenario_5() {
  rec title "reload under load: bert-tiny, wrk -t2 -c16 -d12s, POST load at 3 s and (version 2) 6 s; then a failing load"
  make_repo bert-tiny "$TINY" "$CONFIG_TINY" copy
  make_request
  start_server server "$S/repo"
  local load_url="http://127.0.0.1:$PORT/v2/repository/models/bert-tiny/load"
  local w=(wrk -t2 -c16 -d12s --latency --timeout 10s -s "$S/post.lua" "$(url_infer bert-tiny)")
  cmd "$(qcmd "${w[@]}")" "> $S/wrk.txt &"
  local t0
  t0=$(now_ms)
  "${w[@]}" >"$S/wrk.txt" 2>&1 &
  local wrk_pid=$!
  PIDS+=("$wrk_pid")
  cmd "sleep 3"
  sleep_until $((t0 + 3000))
  local t1
  t1=$(now_ms)
  http POST "$load_url" "$S/load1.json"
  local load1=$HTTP_STATUS load1_ms=$(($(now_ms) - t1))
  cmd "sleep 3   # to 6 s after wrk started"
  sleep_until $((t0 + 6000))
  cmd "$(qcmd cp -R "$S/repo/bert-tiny/1" "$S/repo/bert-tiny/2")"
  cp -R "$S/repo/bert-tiny/1" "$S/repo/bert-tiny/2"
  t1=$(now_ms)
  http POST "$load_url" "$S/load2.json"
  local load2=$HTTP_STATUS load2_ms=$(($(now_ms) - t1))
  wait "$wrk_pid" || die "wrk failed: $(tail -n 2 "$S/wrk.txt" | tr '\n' ' ')"
  load_vars W "${PY[@]}" wrk "$S/wrk.txt"
  http GET "http://127.0.0.1:$PORT/v2/models/bert-tiny" "$S/meta2.json"
  local versions
  versions=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1])).get("versions"))' "$S/meta2.json" 2>/dev/null || true)
  wrk_figures ""
  fig "load at 3 s: status, ms" "$load1, $load1_ms"
  fig "load at 6 s (version 2 added): status, ms" "$load2, $load2_ms"
  fig "versions after it" "${versions:-?}"
  check "both loads answered 200" "$([ "$load1" = 200 ] && [ "$load2" = 200 ] && echo 1 || echo 0)" \
    "$load1 ($(head -c 200 "$S/load1.json" | tr '\n\t' '  ')), $load2 ($(head -c 200 "$S/load2.json" | tr '\n\t' '  '))"
  check "0 non-2xx and 0 socket errors across the reloads" \
    "$((W_non2xx == 0 && W_sock_errors == 0 && W_s200 > 0))" \
    "by status: ${W_statuses:-none}; socket errors: $W_sock_detail"
  check "version 2 is served after the second load" "$([[ "$versions" == *"'2'"* ]] && echo 1 || echo 0)" \
    "versions: ${versions:-?}"

  # A load that fails: a corrupt version 3, loaded under load; the old version keeps answering.
  mkdir -p "$S/repo/bert-tiny/3"
  printf 'this is not an ONNX model\n' >"$S/repo/bert-tiny/3/model.onnx"
  cmd "mkdir -p $S/repo/bert-tiny/3 && printf 'this is not an ONNX model\\n' > $S/repo/bert-tiny/3/model.onnx"
  w=(wrk -t2 -c16 -d6s --latency --timeout 10s -s "$S/post.lua" "$(url_infer bert-tiny)")
  cmd "$(qcmd "${w[@]}")" "> $S/wrk-bad.txt &"
  t0=$(now_ms)
  "${w[@]}" >"$S/wrk-bad.txt" 2>&1 &
  wrk_pid=$!
  PIDS+=("$wrk_pid")
  cmd "sleep 2"
  sleep_until $((t0 + 2000))
  http POST "$load_url" "$S/load3.json"
  local load3=$HTTP_STATUS
  local load3_error
  load3_error=$(python3 -c 'import json,sys; e=json.load(open(sys.argv[1]))["error"]; assert isinstance(e, str); print(e)' "$S/load3.json" 2>/dev/null || true)
  wait "$wrk_pid" || die "wrk failed: $(tail -n 2 "$S/wrk-bad.txt" | tr '\n' ' ')"
  load_vars W "${PY[@]}" wrk "$S/wrk-bad.txt"
  http POST "$(url_infer bert-tiny)" "$S/after.json" "$S/body.json"
  local after=$HTTP_STATUS after_version
  after_version=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1])).get("model_version"))' "$S/after.json" 2>/dev/null || true)
  wrk_figures "failing load:"
  fig "failing load (corrupt version 3): status; error" "$load3; ${load3_error:-$(head -c 200 "$S/load3.json" | tr '\n\t' '  ')}"
  fig "an inference after it: status, model_version" "$after, ${after_version:-?}"
  check "the failing load answers 4xx/5xx with a JSON error" \
    "$([ "$load3" -ge 400 ] && [ "$load3" -le 599 ] && [ -n "$load3_error" ] && echo 1 || echo 0)" \
    "status $load3, error: ${load3_error:-none}"
  check "the old version keeps answering 200 (0 non-2xx, 0 socket errors during the failing load)" \
    "$((W_non2xx == 0 && W_sock_errors == 0 && W_s200 > 0))" \
    "by status: ${W_statuses:-none}; socket errors: $W_sock_detail"
  check "an inference after the failing load: 200 from version 2" \
    "$([ "$after" = 200 ] && [ "$after_version" = 2 ] && echo 1 || echo 0)" "status $after, model_version ${after_version:-?}"
  stop_server "$SRV_PID"
  fig "server exit code on SIGTERM" "$SRV_RC"
}

scenario_6() {
  rec title "RSS across 2000 bad requests (malformed JSON, wrong shape, unknown model, huge header): bert-tiny"
  make_repo bert-tiny "$TINY" "$CONFIG_TINY"
  make_request
  start_server server "$S/repo"
  rss() { awk '/^VmRSS:/ { print $2 }' "/proc/$SRV_PID/status"; }
  local rss_ready rss_before rss_after
  rss_ready=$(rss)
  local c=("${PY[@]}" bad-requests "$PORT" 200 --model bert-tiny --body "$S/body.json")
  cmd "$(qcmd "${c[@]}")   # the warm-up"
  load_vars B0 "${c[@]}"
  cmd "awk '/^VmRSS:/ { print \$2 }' /proc/<kiln serve's pid>/status   # before"
  rss_before=$(rss)
  c=("${PY[@]}" bad-requests "$PORT" 2000 --model bert-tiny --body "$S/body.json")
  cmd "$(qcmd "${c[@]}")"
  load_vars B "${c[@]}"
  cmd "awk '/^VmRSS:/ { print \$2 }' /proc/<kiln serve's pid>/status   # after"
  rss_after=$(rss)
  http GET "http://127.0.0.1:$PORT/v2/health/live" "$S/live.json"
  local live=$HTTP_STATUS growth=$((rss_after - rss_before))
  fig "VmRSS when ready / after 200 bad requests (before) / after 2000 more (after), kB" \
    "$rss_ready / $rss_before / $rss_after"
  fig "growth, kB" "$growth"
  fig "statuses: malformed JSON; wrong shape; unknown model; huge header (0: no reply)" \
    "$B_malformed_json; $B_wrong_shape; $B_unknown_model; $B_huge_header"
  check "RSS growth < 10 MiB" "$((growth < RSS_LIMIT_KB))" "$rss_before kB -> $rss_after kB (+$growth kB)"
  check "every bad request got a 4xx (no 5xx, no 2xx/3xx)" "$((B_n5xx == 0 && B_other == 0 && B_n4xx > 0))" \
    "4xx $B_n4xx, 5xx $B_n5xx, 2xx/3xx $B_other, no reply $B_no_reply"
  check "still live afterwards" "$([ "$live" = 200 ] && echo 1 || echo 0)" "GET /v2/health/live: $live"
  stop_server "$SRV_PID"
  fig "server exit code on SIGTERM" "$SRV_RC"
  rec note "Each bad request is sent on its own connection (Connection: close) by a small Python socket client (scripts/serve_load_report.py bad-requests), in turn: malformed JSON (400), inputs of rank 3 (400), an unknown model (404), a 20000-byte header (431). A reply cut off by the server closing the connection early (possible for the huge header) counts as \"no reply\"."
}

if [ "${1:-}" = __scenario ]; then
  N=$2
  S=$WORK/s$N
  rm -rf "$S"
  mkdir -p "$S"
  RES=$S/result.tsv
  : >"$RES"
  set -E
  trap 'ERR_LINE=$LINENO; ERR_CMD=$BASH_COMMAND' ERR
  trap on_exit EXIT
  trap 'exit 143' TERM
  trap 'exit 130' INT
  "scenario_$N"
  exit 0
fi

# ------------------------------------------------------------------------------------------------------
# The driver.
# ------------------------------------------------------------------------------------------------------

invocation="scripts/serve-load-test.sh${*:+ $*}"
only="1,2,3,4,5,6"
OUT=${OUT:-$WORK/report.md}
while [ $# -gt 0 ]; do
  case $1 in
    --only) only=${2:?--only needs a list, e.g. 1,3}; shift 2 ;;
    --out) OUT=${2:?--out needs a file}; shift 2 ;;
    -h | --help) usage; exit 0 ;;
    *) say "serve-load-test: unknown argument '$1' (see --help)"; exit 2 ;;
  esac
done
scenarios=()
IFS=',' read -r -a list <<<"$only"
for n in "${list[@]}"; do
  if ! [[ $n =~ ^[1-6]$ ]]; then say "serve-load-test: --only takes scenario numbers 1 to 6, not '$n'"; exit 2; fi
  scenarios+=("$n")
done
wants() { [[ " ${scenarios[*]} " == *" $1 "* ]]; }

command -v wrk >/dev/null || { say "serve-load-test: wrk is missing: scripts/install-deps.sh (or apt-get install wrk)"; exit 2; }
command -v python3 >/dev/null || { say "serve-load-test: python3 is missing"; exit 2; }
[ -x "$KILN" ] || { say "serve-load-test: no kiln binary at $KILN: make build (or set KILN)"; exit 2; }
case $OVERLOAD_MODEL in bert-base | bert-tiny) ;; *) say "serve-load-test: OVERLOAD_MODEL is bert-base or bert-tiny"; exit 2 ;; esac

serve_help=$("$KILN" serve --help 2>&1 || true)
export HAS_ACCESS_LOG=no
if grep -q -- '--access-log' <<<"$serve_help"; then HAS_ACCESS_LOG=yes; fi
if [ "$HAS_ACCESS_LOG" = no ]; then
  needs=()
  for n in 3 4; do if wants "$n"; then needs+=("$n"); fi; done
  if [ ${#needs[@]} -gt 0 ]; then
    say "serve-load-test: $KILN serve has no --access-log option (\`$KILN serve --help\` does not list it): this"
    say "binary predates the access log, which scenarios ${needs[*]} need. Rebuild it (make build), or leave"
    say "them out: --only $(for n in "${scenarios[@]}"; do [[ $n == 3 || $n == 4 ]] || printf '%s,' "$n"; done | sed 's/,$//')"
    exit 2
  fi
fi

mkdir -p "$WORK"
export BERT_BASE=${BERT_BASE:-}
bert_base_how=""
if wants 2 || { wants 3 && [ "$OVERLOAD_MODEL" = bert-base ]; }; then
  if [ -z "$BERT_BASE" ]; then
    # The built-in model's cache file (export/default_model.cc), else an export of the same preset.
    cache=${KILN_CACHE_DIR:-${XDG_CACHE_HOME:+$XDG_CACHE_HOME/kiln}}
    cache=${cache:-$HOME/.cache/kiln}
    if [ -f "$cache/bert-base-seed0-v1.onnx" ]; then
      BERT_BASE=$cache/bert-base-seed0-v1.onnx
      bert_base_how="$BERT_BASE (the built-in model of kiln run and kiln pipeline, cached)"
    else
      BERT_BASE=$WORK/bert-base.onnx
      if [ ! -f "$BERT_BASE" ]; then
        say "== exporting bert-base (random weights, seed 0) to $BERT_BASE"
        timeout 1200 "$KILN" export bert --preset bert-base --seed 0 -o "$WORK/bert-base.part.onnx" -q
        mv "$WORK/bert-base.part.onnx" "$BERT_BASE"
      fi
      bert_base_how="$BERT_BASE (\`$KILN export bert --preset bert-base --seed 0 -o $BERT_BASE\`)"
    fi
  else
    bert_base_how=$BERT_BASE
  fi
  [ -f "$BERT_BASE" ] || { say "serve-load-test: no bert-base model at $BERT_BASE"; exit 2; }
fi

cpu=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
avx512f=no
if grep -qw avx512f /proc/cpuinfo; then avx512f=yes; fi
commit=$(git rev-parse --short HEAD 2>/dev/null || echo "?")
if [ -n "$(git status --porcelain 2>/dev/null)" ]; then commit="$commit, with uncommitted changes"; fi
{
  printf 'date\t%s\n' "$(date -u '+%Y-%m-%d %H:%M UTC')"
  printf 'invocation\t%s\n' "$invocation"
  printf 'cpu\t%s\n' "${cpu:-unknown}"
  printf 'avx512f\t%s\n' "$avx512f"
  printf 'cores\t%s\n' "$(nproc)"
  printf 'threads\t%s\n' "$THREADS"
  printf 'http_threads\t%s\n' "$HTTP_THREADS"
  printf 'binary\t%s\n' "$KILN, built $(date -u -r "$KILN" '+%Y-%m-%d %H:%M UTC')"
  printf 'commit\t%s\n' "source at $commit"
  printf 'wrk\t%s\n' "$( (wrk -v 2>&1 || true) | head -n 1 | sed 's/ Copyright.*//')"
  printf 'loadavg\t%s\n' "$(cut -d' ' -f1-3 /proc/loadavg)"
  printf 'access_log\t%s\n' "$HAS_ACCESS_LOG"
  printf 'bert_base\t%s\n' "$bert_base_how"
  printf 'scenarios\t%s\n' "${scenarios[*]}"
} >"$WORK/meta.tsv"

say "kiln serve load tests: scenarios ${scenarios[*]}; $cpu (avx512f: $avx512f), $(nproc) cores; --threads $THREADS --http-threads $HTTP_THREADS"
# Each scenario in its own process under timeout (its own process group: on timeout all of it gets
# SIGTERM, its servers included); Ctrl-C here is passed on to it.
tpid=""
trap 'if [ -n "$tpid" ]; then kill -TERM "$tpid" 2>/dev/null || true; wait "$tpid" || true; fi; exit 130' INT TERM
for n in "${scenarios[@]}"; do
  say "== scenario $n (at most ${LIMITS[$n]} s)"
  rc=0
  timeout -k 30 "${LIMITS[$n]}" bash "$SELF" __scenario "$n" &
  tpid=$!
  wait "$tpid" || rc=$?
  tpid=""
  if [ "$rc" -eq 137 ]; then
    printf 'error\tkilled past its time limit of %s s\n' "${LIMITS[$n]}" >>"$WORK/s$n/result.tsv"
  fi
done
say ""
"${PY[@]}" report "$WORK" "$OUT"
