#!/usr/bin/env bash
# agentctl import throughput (issue 13): writes a JSON Lines file of N records, starts
# agentstored on a private port in a temp dir with the given durability, and times
# `agentctl import` of the file (records per request: `batch`, agentctl's --batch; 1 is
# the one-record-per-request path). The mix:
#   chat      shaped like scale M's records (default; N = 1M: 100k users + 100k chats +
#             800k messages, each message adding itself to its chat's totals)
#   usage     10% users, 10% chats, 80% usage logs (each adding itself to its chat's totals)
#   memories  one user per 50 memories, each memory with a 384-d unit vector
# Usage: benchmarks/run_import_bench.sh [durability=always] [records=1000000] [batch=1000] [mix=chat]
# PERF=1 also records `perf record -g` of agentstored and agentctl into perf-*.data here;
# AGENTSTORED / AGENTCTL name other binaries (e.g. an older build, to compare).
set -euo pipefail
cd "$(dirname "$0")/.."
durability=${1:-always}
records=${2:-1000000}
batch=${3:-1000}
mix=${4:-chat}
dir=$(mktemp -d /tmp/agentstore-importbench.XXXXXX)
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf "$dir"' EXIT
python3 - "$records" "$mix" >"$dir/import.jsonl" <<'PY'
import sys, uuid, random, math
n, mix = int(sys.argv[1]), sys.argv[2]
rng = random.Random(42)
def uid(): return str(uuid.UUID(int=rng.getrandbits(128), version=4))
users = max(1, n // 50 if mix == "memories" else n // 10)
chats = 0 if mix == "memories" else users
rest = n - users - chats
ids = [(uid(), uid()) for _ in range(users)]
t0 = 1763596800000000
w = sys.stdout.write
for i, (u, c) in enumerate(ids):
    w('{"type":"users","record":{"id":"%s","email":"u%d@example.com","full_name":"User %d","created_at":%d,"updated_at":%d}}\n' % (u, i, i, t0 + i, t0 + i))
for i, (u, c) in enumerate(ids[:chats]):
    w('{"type":"chats","record":{"id":"%s","user_id":"%s","title":"chat %d","created_at":%d,"updated_at":%d}}\n' % (c, u, i, t0 + i, t0 + i))
for k in range(rest):
    u, c = ids[k % users]
    if mix == "chat":
        w('{"type":"messages","record":{"id":"%s","chat_id":"%s","user_id":"%s","role":"%s","parts":[{"type":"text","text":"message %d"}],"input_tokens":%d,"output_tokens":%d,"cost":%d,"created_at":%d}}\n'
          % (uid(), c, u, "user" if k % 2 == 0 else "assistant", k, k % 500, k % 700, k % 900, t0 + 1000 + k))
    elif mix == "usage":
        i, o = k % 500, k % 700
        w('{"type":"usage_logs","record":{"id":"%s","user_id":"%s","chat_id":"%s","agent_type":"chat","provider":"openai","model":"gpt-4o","input_tokens":%d,"output_tokens":%d,"total_tokens":%d,"input_cost":%d,"output_cost":%d,"total_cost":%d,"request_ts":%d,"response_ts":%d,"duration_ms":%d,"success":true}}\n'
          % (uid(), u, c, i, o, i + o, 3 * i, 12 * o, 3 * i + 12 * o, t0 + k, t0 + k + 900000, 900))
    else:
        v = [rng.gauss(0, 1) for _ in range(384)]
        s = math.sqrt(sum(x * x for x in v))
        w('{"type":"user_memory","record":{"id":"%s","user_id":"%s","memory_type":"fact","memory_key":"k%d","memory_value":{"content":"memory %d","tags":["t%d"]},"importance_score":0.5,"embedding":[%s],"created_at":%d,"updated_at":%d}}\n'
          % (uid(), u, k, k, k % 7, ",".join("%.6f" % (x / s) for x in v), t0 + k, t0 + k))
PY
server=${AGENTSTORED:-build/net/agentstored}
ctlbin=${AGENTCTL:-build/client/agentctl}
"$server" --data-dir "$dir/data" --port 0 --port-file "$dir/port" \
  --durability "$durability" --slow-op-us 10000000 >"$dir/log" 2>&1 &
pid=$!
for _ in $(seq 200); do
  [ -s "$dir/port" ] && break
  sleep 0.05
done
export AGENTSTORE_ADDR=127.0.0.1:$(cat "$dir/port")
export AGENTSTORE_KEY=$(awk '/^service/{print $2}' "$dir/data/initial-keys")
lines=$(wc -l <"$dir/import.jsonl")
echo "machine: $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg), durability $durability, $lines records ($mix mix), batch $batch"
if [ "${PERF:-0}" = 1 ]; then
  perf record -g -o perf-agentstored.data -p $pid 2>/dev/null &
  perf_pid=$!
  sleep 0.5
fi
# CPU seconds (user + system) the server spends, from /proc: with the machine shared,
# CPU per record says more than wall time.
server_cpu() { awk '{print ($14 + $15) / 100}' /proc/$pid/stat; }
cpu0=$(server_cpu)
start=$(date +%s.%N)
ctl=(/usr/bin/time -f "%U %S" -o "$dir/ctl.time" "$ctlbin")
[ "${PERF:-0}" = 1 ] && ctl=(perf record -g -o perf-agentctl.data -- "$ctlbin")
"${ctl[@]}" import --batch "$batch" "$dir/import.jsonl" </dev/null 2>"$dir/import.err" || { cat "$dir/import.err"; exit 1; }
end=$(date +%s.%N)
cpu1=$(server_cpu)
if [ "${PERF:-0}" = 1 ]; then kill -INT $perf_pid; wait $perf_pid || true; fi
tail -1 "$dir/import.err"
syncs=$("$ctlbin" status --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["wal_syncs"])')
ctl_cpu=$(awk '{print $1 + $2}' "$dir/ctl.time" 2>/dev/null || echo 0)
python3 -c "import sys; s=$end-$start; n=$lines; sc=$cpu1-$cpu0; cc=$ctl_cpu
print(f'import: {n} records in {s:.2f} s = {n/s/1000:.1f} k records/s, {$syncs} WAL syncs')
print(f'cpu: agentstored {sc:.2f} s ({sc/n*1e6:.1f} us/record), agentctl {cc:.2f} s ({cc/n*1e6:.1f} us/record); both: {n/(sc+cc)/1000:.1f} k records per CPU-second')"
