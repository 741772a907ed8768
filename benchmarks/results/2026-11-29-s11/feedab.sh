#!/usr/bin/env bash
# Interleaved A/B: durable write throughput, 0 subscribers (1000 users) vs 1000 subscribers (PER per connection, default 64); DEPTH= appends in flight per writer, ROUNDS=, SECS=.
cd "$(dirname "$0")/../../.."  # the repository root
bin=build/benchmarks/feed_bench
secs=${SECS:-5}; rounds=${ROUNDS:-3}
dir=$(mktemp -d "${TMPDIR:-/tmp}/feedab.XXXXXX")
start_server() {
  rm -rf "$dir/server" "$dir/port"
  build/net/agentstored --data-dir "$dir/server" --port 0 --port-file "$dir/port" \
    --durability always --max-connections 4096 >"$dir/server.log" 2>&1 &
  pid=$!
  for _ in $(seq 100); do [ -s "$dir/port" ] && break; sleep 0.1; done
  port=$(cat "$dir/port"); key=$(awk '/^service/{print $2}' "$dir/server/initial-keys")
}
stop_server() { kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; }
trap 'stop_server; rm -rf "$dir"' EXIT
for r in $(seq $rounds); do
  start_server; echo "r$r zero: $($bin throughput --subscribers 0 --users 1000 --writers 8 --depth ${DEPTH:-16} --seconds $secs --port $port --key $key 2>&1 | grep -v '^throughput: writing' | tr '\n' ' ')"; stop_server
  start_server; echo "r$r subs: $($bin throughput --subscribers 1000 --per-connection ${PER:-64} --writers 8 --depth ${DEPTH:-16} --seconds $secs --port $port --key $key 2>&1 | grep -v '^throughput: writing' | tr '\n' ' ')"; stop_server
done
