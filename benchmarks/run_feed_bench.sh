#!/usr/bin/env bash
# Change-feed benchmarks through a fresh agentstored (durability always) in a temp
# directory: commit-to-callback latency with 1, 100 and 1000 subscribers, durable write
# throughput with 0 vs 1000 subscribers (a connection each, 64 per connection, and all on
# one connection; and 0 subscribers writing to the same 1000 users; 16 and 1 appends in
# flight per writer), catch-up from 1M changes back.
#   benchmarks/run_feed_bench.sh [--changes N] [--seconds S]
set -euo pipefail
cd "$(dirname "$0")/.."
bin=build/benchmarks/feed_bench
[ -x "$bin" ] || { echo "build first: scripts/build.sh" >&2; exit 1; }
changes=1000000
seconds=10
while [ $# -gt 0 ]; do
  case "$1" in
    --changes) changes=$2; shift 2 ;;
    --seconds) seconds=$2; shift 2 ;;
    *) echo "unknown flag $1" >&2; exit 2 ;;
  esac
done
dir=$(mktemp -d "${TMPDIR:-/tmp}/agentstore-feedbench.XXXXXX")
pid=
start_server() {
  rm -rf "$dir/server" "$dir/port"
  build/net/agentstored --data-dir "$dir/server" --port 0 --port-file "$dir/port" \
    --durability always --max-connections 4096 >"$dir/server.log" 2>&1 &
  pid=$!
  for _ in $(seq 100); do [ -s "$dir/port" ] && break; sleep 0.1; done
  port=$(cat "$dir/port")
  key=$(awk '/^service/{print $2}' "$dir/server/initial-keys")
}
stop_server() { kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; }
trap 'stop_server; rm -rf "$dir"' EXIT
ulimit -n 65536 2>/dev/null || true
run() { echo "# load: $(cut -d' ' -f1-3 /proc/loadavg)"; "$bin" "$@" --port "$port" --key "$key"; }

# Subscribers each on a connection of their own, then 64 and 1000 to a connection (FeedChannel,
# what an app server following its users' screens would use).
for n in 1 100 1000; do
  start_server; run latency --subscribers "$n" --writes 3000; stop_server
done
start_server; run latency --subscribers 1000 --per-connection 64 --writes 3000; stop_server
start_server; run latency --subscribers 1000 --per-connection 1000 --writes 3000; stop_server
for n in 0 1000; do
  start_server; run throughput --subscribers "$n" --writers 8 --seconds "$seconds"; stop_server
done
# No subscriber, but the writers spread over the same 1000 users' chats as the rows with
# 1000 subscribers (the row above writes to 8): what the feed itself costs is the
# difference between this row and those.
start_server; run throughput --subscribers 0 --users 1000 --writers 8 --seconds "$seconds"
stop_server
start_server; run throughput --subscribers 1000 --per-connection 64 --writers 8 --seconds "$seconds"
stop_server
# All 1000 on one connection, as an app server process multiplexes its users (up to 1024).
start_server; run throughput --subscribers 1000 --per-connection 1000 --writers 8 --seconds "$seconds"
stop_server
# The same two at one append in flight per writer (each waits for its fsync, the shape
# of compare.sh's durable rows): the writers leave the CPU idle between syncs.
for n in 0 1000; do
  start_server
  run throughput --subscribers "$n" --per-connection 1000 --users 1000 --writers 8 --depth 1 \
    --seconds "$seconds"
  stop_server
done
start_server; run catchup --changes "$changes"; stop_server
