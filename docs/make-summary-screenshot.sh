#!/usr/bin/env bash
# Remakes docs/summary-report.png: a server on the sample attack log, a few incidents moved
# through the workflow, `siperctl report summary --format html` rendered by headless
# Chromium (Debian `chromium`, network off).
# Usage: docs/make-summary-screenshot.sh [BUILD_DIR]   (default build/release)
set -euo pipefail
cd "$(dirname "$0")/.."
b=$(realpath "${1:-build/release}")
qs=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$qs"' EXIT
cat >"$qs/server.yaml" <<EOF
data_dir: $qs/server
listen: 127.0.0.1:0
rules_dir: $PWD/rules/ruleset
institution:
  name: Örnek Büyükşehir Belediyesi
  some_name: Örnek BB SOME
  some_mailbox: some@ornek.bel.tr
EOF
"$b/server/siper-server" --config "$qs/server.yaml" 2>"$qs/server.err" &
for _ in $(seq 100); do [ -f "$qs/server/server.port" ] && break; sleep 0.2; done
export SIPER_SERVER=127.0.0.1:$(cat "$qs/server/server.port") SIPER_CA=$qs/server/pki/ca.pem \
  SIPER_CERT=$qs/server/pki/admin.pem SIPER_KEY=$qs/server/pki/admin.key
ctl() { "$b/cli/siperctl" "$@"; }
"$b/agent/siper-agent" enroll --server "$SIPER_SERVER" --token "$(ctl tokens create)" \
  --ca "$SIPER_CA" --state-dir "$qs/agent" >/dev/null
cp deploy/samples/attack.log "$qs/attack.log"
printf 'server: %s\nstate_dir: %s\nbatch_max_delay_ms: 100\nlogs:\n  - path: %s\n    start: beginning\n' \
  "$SIPER_SERVER" "$qs/agent" "$qs/attack.log" >"$qs/agent.yaml"
"$b/agent/siper-agent" run --config "$qs/agent.yaml" &
want=$(wc -l <"$qs/attack.log")
for _ in $(seq 150); do
  [ "$(ctl events search --limit 0 --json | wc -l)" -ge "$want" ] && break
  sleep 0.2
done
sleep 2  # incidents follow the stored alerts
mapfile -t ids < <(ctl incidents list --json | grep -o '"id":"INC-[0-9-]*"' | cut -d'"' -f4)
for to in triage investigating contained; do ctl incidents transition "${ids[0]}" --to $to >/dev/null; done
ctl incidents transition "${ids[1]}" --to closed --resolution false-positive >/dev/null
ctl incidents create --title "Tatbikat: oltalama e-postası" --rsit-class test --rsit-type test \
  --severity low >/dev/null
ctl incidents create --title "Oltalama e-postası, mali hizmetler" --rsit-class fraud \
  --rsit-type phishing --severity high >/dev/null
ctl report summary --since 1d --format html >"$qs/summary.html"
chromium --headless --no-sandbox --disable-gpu --disable-dev-shm-usage --no-first-run \
  --proxy-server=127.0.0.1:9 --user-data-dir="$qs/chromium" --window-size=1280,2200 \
  --screenshot="$PWD/docs/summary-report.png" "file://$qs/summary.html" 2>/dev/null
echo "wrote docs/summary-report.png"
