#!/usr/bin/env bash
# user_memory search benchmarks: the exact-vs-HNSW sweep, then memory_bench in process
# and through a fresh agentstored (durability always) in a temp directory.
#   benchmarks/run_memory_bench.sh [memory_bench flags...]
set -euo pipefail
cd "$(dirname "$0")/.."
bin=build/benchmarks/memory_bench
[ -x "$bin" ] || { echo "build first: scripts/build.sh" >&2; exit 1; }
dir=$(mktemp -d /tmp/agentstore-memorybench.XXXXXX)
trap 'kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; rm -rf "$dir"' EXIT
"$bin" --threshold-sweep --sweep-ef 256
build/net/agentstored --data-dir "$dir/server" --port 0 --port-file "$dir/port" \
  --durability always >"$dir/server.log" 2>&1 &
pid=$!
for _ in $(seq 100); do [ -s "$dir/port" ] && break; sleep 0.1; done
key=$(awk '/^service/{print $2}' "$dir/server/initial-keys")
"$bin" --dir "$dir/engine" --addr "127.0.0.1:$(cat "$dir/port")" --key "$key" "$@"
