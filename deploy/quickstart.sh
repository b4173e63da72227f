#!/usr/bin/env bash
# Installs what is needed, builds Siper, and runs it on embedded defaults:
# starts a server, enrolls a local agent, feeds it the sample attack log
# (deploy/samples/attack.log), and shows the alerts it raised.
# Everything lives under var/quickstart/ and is replaced on each run.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
./deploy/install-deps.sh
build=build/release
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DSIPER_BUILD_TESTS=OFF -DSIPER_BUILD_BENCH=OFF >/dev/null
cmake --build "$build" -j "$(nproc)" --target siper-server siper-agent siperctl

qs=$root/var/quickstart
rm -rf "$qs"
mkdir -p "$qs"
server_pid=""
agent_pid=""
cleanup() {
  [ -n "$agent_pid" ] && kill "$agent_pid" 2>/dev/null && wait "$agent_pid" 2>/dev/null || true
  [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null || true
}
trap cleanup EXIT

echo "== starting siper-server (data in var/quickstart/server)"
"$build/server/siper-server" --data-dir "$qs/server" --listen 127.0.0.1:0 \
  --rules "$root/rules/ruleset" 2>"$qs/server.err" &
server_pid=$!
for _ in $(seq 1 300); do
  [ -f "$qs/server/server.port" ] && break
  kill -0 "$server_pid" 2>/dev/null || { cat "$qs/server.err"; exit 1; }
  sleep 0.1
done
port=$(cat "$qs/server/server.port")
export SIPER_SERVER=127.0.0.1:$port SIPER_CA=$qs/server/pki/ca.pem \
  SIPER_CERT=$qs/server/pki/admin.pem SIPER_KEY=$qs/server/pki/admin.key
ctl() { "$build/cli/siperctl" "$@"; }

echo "== enrolling a local agent with a one-time token"
token=$(ctl tokens create --ttl 10m)
"$build/agent/siper-agent" enroll --server "$SIPER_SERVER" --token "$token" \
  --ca "$SIPER_CA" --state-dir "$qs/agent"

echo "== importing an IOC feed in USOM's list format (deploy/samples/usom-url-list.txt)"
ctl ioc import --feed usom --file deploy/samples/usom-url-list.txt
cp deploy/samples/attack.log "$qs/attack.log"
# A name server on web1 resolves one of the listed phishing names.
echo "$(date -u '+%b %e %H:%M:%S') web1 named[812]: client 192.0.2.10#53211 (hesap-guncelle-bankasi.example): query: hesap-guncelle-bankasi.example IN A + (192.0.2.1)" >>"$qs/attack.log"
cat >"$qs/agent.yaml" <<YAML
server: $SIPER_SERVER
state_dir: $qs/agent
batch_max_delay_ms: 100
logs:
  - path: $qs/attack.log
    start: beginning
YAML
echo "== running the agent on the sample attack log"
"$build/agent/siper-agent" run --config "$qs/agent.yaml" &
agent_pid=$!
want=$(wc -l <"$qs/attack.log")
for _ in $(seq 1 300); do
  have=$(ctl events search --limit 0 --json | wc -l)
  [ "$have" -ge "$want" ] && break
  sleep 0.2
done
echo "   $have of $want lines stored"
echo
# The registry (last seen, events) is written about once a second, off the
# acknowledgement path: wait until it shows this run's events.
for _ in $(seq 1 25); do
  ctl agents list --json | grep -q "\"events\":${have}[,}]" && break
  sleep 0.2
done
ctl agents list
echo
echo "== alerts (one of them the USOM IOC hit)"
ctl alerts list --limit 0
echo
echo "== incidents (alerts grouped per attacker and host)"
inc=""
for _ in $(seq 1 50); do
  inc=$(ctl incidents list --json | grep '203.0.113.45' | grep -o '"id":"INC-[0-9-]*"' | head -1 | cut -d'"' -f4)
  [ -n "$inc" ] && break
  sleep 0.2
done
ctl incidents list
echo
echo "== USOM report for the SSH brute force from 203.0.113.45 ($inc), Markdown"
[ -n "$inc" ] && ctl report usom "$inc" --format md
echo
echo "Done: $have events stored, $(ctl alerts list --limit 0 --json | wc -l) alerts. To explore, start the server again:"
echo "  $build/server/siper-server --data-dir var/quickstart/server --listen 127.0.0.1:$port &"
echo "  export SIPER_SERVER=127.0.0.1:$port SIPER_CA=var/quickstart/server/pki/ca.pem \\"
echo "         SIPER_CERT=var/quickstart/server/pki/admin.pem SIPER_KEY=var/quickstart/server/pki/admin.key"
echo "  $build/cli/siperctl events search --query 'Failed password'"
echo "  $build/cli/siperctl incidents show $inc"
echo "  $build/cli/siperctl report usom $inc --format stix --lang en"
echo "  $build/cli/siperctl rules test --rules rules/ruleset --input deploy/samples/attack.log"
[ "$have" -ge "$want" ] && [ -n "$inc" ]
