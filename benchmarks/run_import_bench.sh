#!/usr/bin/env bash
# agentctl import throughput (issue 13): writes a JSON Lines file of N records shaped
# like scale M (100k users, each with one chat holding messages; default N = 1M:
# 100k users + 100k chats + 800k messages), starts agentstored on a private port in a
# temp dir with the given durability, and times `agentctl import` of the file (records
# per request: `batch`, agentctl's --batch; 1 is the one-record-per-request path).
# Usage: benchmarks/run_import_bench.sh [durability=always] [records=1000000] [batch=1000]
set -euo pipefail
cd "$(dirname "$0")/.."
durability=${1:-always}
records=${2:-1000000}
batch=${3:-1000}
dir=$(mktemp -d /tmp/agentstore-importbench.XXXXXX)
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf "$dir"' EXIT
python3 - "$records" >"$dir/import.jsonl" <<'PY'
import sys, uuid, random
n = int(sys.argv[1])
users = max(1, n // 10)
msgs = n - 2 * users
rng = random.Random(42)
def uid(): return str(uuid.UUID(int=rng.getrandbits(128), version=4))
ids = [(uid(), uid()) for _ in range(users)]
t0 = 1763596800000000
w = sys.stdout.write
for i, (u, c) in enumerate(ids):
    w('{"type":"users","record":{"id":"%s","email":"u%d@example.com","full_name":"User %d","created_at":%d,"updated_at":%d}}\n' % (u, i, i, t0 + i, t0 + i))
for i, (u, c) in enumerate(ids):
    w('{"type":"chats","record":{"id":"%s","user_id":"%s","title":"chat %d","created_at":%d,"updated_at":%d}}\n' % (c, u, i, t0 + i, t0 + i))
for k in range(msgs):
    u, c = ids[k % users]
    w('{"type":"messages","record":{"id":"%s","chat_id":"%s","user_id":"%s","role":"%s","parts":[{"type":"text","text":"message %d"}],"input_tokens":%d,"output_tokens":%d,"cost":%d,"created_at":%d}}\n'
      % (uid(), c, u, "user" if k % 2 == 0 else "assistant", k, k % 500, k % 700, k % 900, t0 + 1000 + k))
PY
build/net/agentstored --data-dir "$dir/data" --port 0 --port-file "$dir/port" \
  --durability "$durability" --slow-op-us 10000000 >"$dir/log" 2>&1 &
pid=$!
for _ in $(seq 200); do
  [ -s "$dir/port" ] && break
  sleep 0.05
done
export AGENTSTORE_ADDR=127.0.0.1:$(cat "$dir/port")
export AGENTSTORE_KEY=$(awk '/^service/{print $2}' "$dir/data/initial-keys")
lines=$(wc -l <"$dir/import.jsonl")
echo "machine: $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg), durability $durability, $lines records, batch $batch"
start=$(date +%s.%N)
build/client/agentctl import --batch "$batch" "$dir/import.jsonl" </dev/null 2>"$dir/import.err" || { cat "$dir/import.err"; exit 1; }
end=$(date +%s.%N)
tail -1 "$dir/import.err"
syncs=$(build/client/agentctl status --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["wal_syncs"])')
python3 -c "import sys; s=$end-$start; print(f'import: {$lines} records in {s:.2f} s = {$lines/s/1000:.1f} k records/s, {$syncs} WAL syncs')"
