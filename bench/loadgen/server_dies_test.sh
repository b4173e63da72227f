#!/bin/bash
# ctest loadgen_server_dies: the server is killed mid-run; siper_loadgen must
# end with its own error naming that (exit 1), not crash ("pure virtual method
# called" / SIGABRT came from writes started on streams gRPC had finished).
set -u
loadgen="$1"
work="$(mktemp -d /tmp/siper-loadgen-dies-XXXXXX)"
trap 'rm -rf "$work"' EXIT
"$loadgen" --agents 10 --rate 2000 --batch 4 --linger-ms 20 --warmup 1 --duration 30 \
  --raw-records 0 --work-dir "$work/run" 2>"$work/err" &
gen=$!
pid=""
for _ in $(seq 1 600); do
  pid="$(sed -n 's/^server .* pid \([0-9]*\),.*/\1/p' "$work/err")"
  [ -n "$pid" ] && break
  sleep 0.1
done
if [ -z "$pid" ]; then
  echo "no server pid in siper_loadgen's output:"; cat "$work/err"; kill "$gen"; exit 1
fi
# Let the streams run, then take the server away mid-stream.
for _ in $(seq 1 600); do grep -q "events/s stored" "$work/err" && break; sleep 0.1; done
sleep 1
kill -9 "$pid"
wait "$gen"
rc=$?
cat "$work/err"
if [ "$rc" -ne 1 ]; then echo "FAIL: siper_loadgen exited $rc, expected 1"; exit 1; fi
if ! grep -q "siper-server exited" "$work/err"; then
  echo "FAIL: no 'siper-server exited' message"; exit 1
fi
echo "OK: siper_loadgen reported the server's death and exited 1"
