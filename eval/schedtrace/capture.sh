#!/bin/bash
# capture.sh: record the kernel's scheduling events while a measured
# client runs beside 31 bursting clients, for analyze.py. Needs root and
# tracefs (/sys/kernel/tracing); laked must be running already.
#
#   eval/schedtrace/capture.sh OUTDIR [LAKECTL_FLAGS...]
#   python3 eval/schedtrace/analyze.py OUTDIR
#
# LAKECTL_FLAGS reach every lakectl (default: --socket /tmp/l.sock). The
# bursting clients run 8 s; 1.5 s in, the measured client
# (`lakectl bench --model 1 --count 300000 --rounds 1`) starts and 0.3 s
# later the trace records sched_switch and sched_wakeup for 0.3 s.
# laked is the newest process named laked (LAKED_PID: another).
# Environment: LAKECTL (default lakectl on PATH), BURST_PREFIX and
# BENCH_PREFIX (e.g. "taskset -c 0 nice -n 19") place the two processes.
set -euo pipefail
out=${1:?usage: capture.sh OUTDIR [LAKECTL_FLAGS...]}
shift
flags=("$@")
[ ${#flags[@]} -gt 0 ] || flags=(--socket /tmp/l.sock)
lakectl=${LAKECTL:-lakectl}
T=/sys/kernel/tracing
[ -w $T/tracing_on ] || { echo "capture.sh: $T not writable (root and tracefs needed)" >&2; exit 1; }
laked=${LAKED_PID:-$(pgrep -n -x laked)} || { echo "capture.sh: no laked running" >&2; exit 1; }
mkdir -p "$out"

cleanup() { echo 0 > $T/tracing_on; echo 0 > $T/events/enable; echo 1408 > $T/buffer_size_kb; }
trap cleanup EXIT
echo 0 > $T/tracing_on
echo > $T/trace
echo 65536 > $T/buffer_size_kb
echo 1 > $T/options/record-tgid
echo 0 > $T/events/enable
echo 1 > $T/events/sched/sched_switch/enable
echo 1 > $T/events/sched/sched_wakeup/enable

${BURST_PREFIX:-} "$lakectl" "${flags[@]}" burst --clients 31 --ring 64 --duration 8s > "$out/burst.log" 2>&1 &
burst=$!
sleep 1.5
${BENCH_PREFIX:-} "$lakectl" "${flags[@]}" bench --model 1 --count 300000 --rounds 1 --jitter=false > "$out/bench.log" 2>&1 &
client=$!
sleep 1
echo 1 > $T/tracing_on
sleep 0.3
echo 0 > $T/tracing_on
cat $T/trace > "$out/trace.txt"
echo "laked=$laked burst=$burst client=$client" > "$out/pids"
wait $client || true
wait $burst || true
grep -E "median|slept" "$out/bench.log" || true
echo "trace: $(wc -l < "$out/trace.txt") lines in $out/trace.txt"
