#!/usr/bin/env bash
# A/B catch-up from 1M changes back: /tmp/agentstored.old (before) vs /tmp/agentstored.new (after), interleaved; copy the two builds there first. Run from anywhere: it works in the repository root.
cd "$(dirname "$0")/../../.."  # the repository root
dir= pid=
trap '[ -n "$pid" ] && kill "$pid" 2>/dev/null; [ -n "$dir" ] && rm -rf "$dir"' EXIT
for r in $(seq ${ROUNDS:-3}); do for b in old new; do
dir=$(mktemp -d "${TMPDIR:-/tmp}/cuab.XXXXXX")
/tmp/agentstored.$b --data-dir "$dir/server" --port 0 --port-file "$dir/port" --durability always >"$dir/server.log" 2>&1 &
pid=$!
for _ in $(seq 100); do [ -s "$dir/port" ] && break; sleep 0.1; done
port=$(cat "$dir/port"); key=$(awk '/^service/{print $2}' "$dir/server/initial-keys")
echo "$b r$r: $(build/benchmarks/feed_bench catchup --changes ${CH:-1000000} --port $port --key $key 2>&1 | grep -v '^catchup: subscribing')"
kill $pid; wait $pid; pid=; rm -rf "$dir"; dir=
done; done
