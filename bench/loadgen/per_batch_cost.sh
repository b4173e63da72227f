#!/bin/bash
# The server's CPU per batch: two fixed-rate runs at the same event rate, one with small
# and one with large batches (the batch size set through --linger-ms), and the fit
#   server CPU per event = e + c / batch
# through both, so c is the CPU a batch costs beyond its events. Usage:
#   bench/loadgen/per_batch_cost.sh LOADGEN [RATE [SMALL LARGE [extra loadgen args...]]]
# e.g. bench/loadgen/per_batch_cost.sh build/release/bench/loadgen/siper_loadgen 10000 20 200 \
#        --server-bin /tmp/main/siper-server
# Prints one line per run (batch, µs/event, µs/batch, context switches/batch, minor page
# faults/batch, resident MiB, generator µs/event, load average) and the fit. Run it on a quiet machine: CPU per event includes
# what contention costs (cache misses, preemption).
set -euo pipefail
loadgen=${1:?usage: per_batch_cost.sh LOADGEN [RATE [SMALL LARGE [args...]]]}
rate=${2:-10000}
small=${3:-20}
large=${4:-200}
shift $(($# < 4 ? $# : 4))
agents=100
here=$(cd "$(dirname "$0")" && pwd)
declare -A cpu
for batch in "$small" "$large"; do
  linger=$(awk -v b="$batch" -v a="$agents" -v r="$rate" 'BEGIN { printf "%.3f", b * a * 1000 / r }')
  load=$(cut -d' ' -f1 /proc/loadavg)
  out=$("$loadgen" --agents "$agents" --rate "$rate" --linger-ms "$linger" --warmup 5 \
        --duration 15 --raw-records 1000 --server-yaml "$here/no-incidents.yaml" --json "$@" |
        tail -1)
  read -r b e pb cs g st mf rss < <(python3 -c '
import json, sys
j = json.loads(sys.argv[1])
print(j["batch_events"], j["server_cpu_us_per_event"], j["server_cpu_us_per_batch"],
      j["server_context_switches_per_batch"], j["generator_cpu_us_per_event"],
      j["events_per_s_stored"], j["server_minor_faults_per_batch"], j["server_rss_mib"])' "$out")
  cpu[$batch]=$e
  printf 'batch %5s: %8.0f ev/s stored, server %6.1f us/event, %7.0f us/batch, %5.1f ctx switches/batch, %5.1f minor faults/batch, %4.0f MiB RSS; generator %5.1f us/event (load %s..%s)\n' \
    "$b" "$st" "$e" "$pb" "$cs" "$mf" "$rss" "$g" "$load" "$(cut -d' ' -f1 /proc/loadavg)"
done
awk -v s="$small" -v l="$large" -v cs="${cpu[$small]}" -v cl="${cpu[$large]}" 'BEGIN {
  c = (cs - cl) / (1 / s - 1 / l); e = cl - c / l;
  printf "fit: e = %.1f us per event, c = %.0f us per batch\n", e, c }'
