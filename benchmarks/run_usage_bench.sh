#!/usr/bin/env bash
# Usage accounting through the server: track_agent_usage and limit_check at 50
# connections with pipeline depth 1 and 16 (1000 users, one tenant; every check walks a
# global, a tenant and a per-user limit), then, when a data directory loaded by
# usage_bench --keep is given, one user's month summary against that store (5M logs).
# Results: a table on stdout, JSON lines in $OUT (default build/usage_bench.jsonl).
# Usage: benchmarks/run_usage_bench.sh [durability] [usage_bench data dir]
set -euo pipefail
cd "$(dirname "$0")/.."
durability=${1:-always}
loaded=${2:-}
out=${OUT:-build/usage_bench.jsonl}
dir=$(mktemp -d /tmp/agentstore-usagebench.XXXXXX)
pid=
cleanup() {
  if [ -n "$pid" ]; then kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
  rm -rf "$dir"
}
trap cleanup EXIT

start() {  # start DATA_DIR DURABILITY
  rm -f "$dir/port"
  build/net/agentstored --data-dir "$1" --port 0 --port-file "$dir/port" \
    --durability "$2" --slow-op-us 1000000 >"$dir/log" 2>&1 &
  pid=$!
  for _ in $(seq 600); do [ -s "$dir/port" ] && break; sleep 0.1; done
  addr=127.0.0.1:$(cat "$dir/port")
}
stop() {
  kill "$pid"; wait "$pid" 2>/dev/null || true; pid=
}
run() { build/benchmarks/load_bench --addr "$addr" --key "$key" --json "$out" "$@"; }

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
start "$dir/data" "$durability"
key=$(awk '/^service/{print $2}' "$dir/data/initial-keys")
run --workload track_agent_usage --connections 50 --pipeline 1 --messages 0
run --workload track_agent_usage --connections 50 --pipeline 16 --messages 0
run --workload limit_check --connections 50 --pipeline 1 --messages 0
run --workload limit_check --connections 50 --pipeline 16 --messages 0
stop

if [ -n "$loaded" ]; then
  start "$loaded" none
  key=$(awk '/^service/{print $2}' "$loaded/initial-keys" 2>/dev/null || true)
  if [ -z "$key" ]; then echo "no initial-keys in $loaded" >&2; exit 1; fi
  run --workload usage_summary_month --connections 8 --pipeline 1 --existing
  run --workload usage_summary_month --connections 50 --pipeline 16 --existing
  stop
fi
