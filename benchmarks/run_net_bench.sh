#!/usr/bin/env bash
# Starts agentstored on a private port in a temp dir and runs load_bench's standard set:
# get_user and append_message at 50 connections with pipeline depth 1 and 16, and the
# last 20 messages at 8 connections. Results: a table on stdout, JSON lines in
# $OUT (default build/net_bench.jsonl). Usage: benchmarks/run_net_bench.sh [durability]
set -euo pipefail
cd "$(dirname "$0")/.."
durability=${1:-always}
out=${OUT:-build/net_bench.jsonl}
dir=$(mktemp -d /tmp/agentstore-netbench.XXXXXX)
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf "$dir"' EXIT
build/net/agentstored --data-dir "$dir/data" --port 0 --port-file "$dir/port" \
  --durability "$durability" --slow-op-us 1000000 >"$dir/log" 2>&1 &
pid=$!
for _ in $(seq 100); do
  [ -s "$dir/port" ] && break
  sleep 0.05
done
addr=127.0.0.1:$(cat "$dir/port")
key=$(awk '/^service/{print $2}' "$dir/data/initial-keys")
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), durability $durability"
run() { build/benchmarks/load_bench --addr "$addr" --key "$key" --json "$out" "$@"; }
run --workload get_user --connections 50 --pipeline 1
run --workload get_user --connections 50 --pipeline 16
run --workload append_message --connections 50 --pipeline 1
run --workload append_message --connections 50 --pipeline 16
run --workload last_20_messages --connections 8 --pipeline 1
