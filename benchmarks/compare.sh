#!/usr/bin/env bash
# One command for issue 6's comparison: agentstore vs PostgreSQL 15 vs Redis 7 on the same
# dataset, workloads, connections and threads, on this machine, over loopback only.
# Installs the peers (Debian packages) if missing, starts each in a temp dir on a private
# port, loads the dataset, runs agentstore-bench against each, stops everything, and
# writes comparison.md / comparison.json / *.png into the output directory.
#
#   benchmarks/compare.sh [--scale S|M] [--seconds N] [--warmup N] [--connections N]
#                         [--workloads LIST] [--out DIR] [--durability always|batch|none]
#                         [--no-tarantool]
#   benchmarks/compare.sh --replot DIR   # the report and charts again from DIR/*.json
#   benchmarks/compare.sh --collections only|also [--seconds N] [--connections N] [--depth N]
#       # the journal_entries collection vs the same PostgreSQL table (collections_bench);
#       # "only" skips the other workloads; --depth N: N requests in flight per connection
#
# AGENTSTORE_BUILD_DIR (default ./build) names the build whose agentstored and benchmark
# binaries run, e.g. a build of an older commit for a before/after comparison.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

scale=S seconds=5 warmup=1 connections=8 durability=always out=build/compare
workloads="" replot="" collections="" tarantool=1 depth=""
while (($#)); do
  case $1 in
    --scale) scale=$2; shift 2 ;;
    --seconds) seconds=$2; shift 2 ;;
    --warmup) warmup=$2; shift 2 ;;
    --connections) connections=$2; shift 2 ;;
    --depth) depth=$2; shift 2 ;;
    --workloads) workloads=$2; shift 2 ;;
    --durability) durability=$2; shift 2 ;;
    --replot) replot=$2; shift 2 ;;
    --collections) collections=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --no-tarantool) tarantool=0; shift ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
build=$(cd "${AGENTSTORE_BUILD_DIR:-$root/build}" && pwd)
bench=$build/benchmarks/agentstore-bench
agentstored=$build/net/agentstored

# comparison.md / comparison.json from the three run reports, then the charts.
report() {
  local ins=(--in "$out/agentstore.json" --in "$out/postgres.json" --in "$out/redis.json")
  [ -f "$out/redis-always.json" ] && ins+=(--in "$out/redis-always.json")
  "$bench" compare "${ins[@]}" --out-dir "$out" --command "$1" >/dev/null
  local chart ylabel file scale_of
  scale_of=$(grep -m1 -o '"scale": *"[SM]"' "$out/agentstore.json" | grep -o '[SM]"$' | tr -d '"')
  for chart in throughput p99; do
    if [ $chart = throughput ]; then ylabel="ops/s (log scale)"; file=throughput.dat
    else ylabel="p99 latency, ms (log scale)"; file=p99.dat; fi
    gnuplot <<EOF
set terminal pngcairo size 1100,500 font ",10" noenhanced
set output "$out/$chart.png"
set datafile missing "-"
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.8 border -1
set key top right
set xtics rotate by -35
set ylabel "$ylabel"
set logscale y
set title "$chart by workload, scale $scale_of: agentstore vs PostgreSQL vs Redis (same connections)"
plot "$out/$file" using 2:xtic(1) title columnheader(2), '' using 3 title columnheader(3), '' using 4 title columnheader(4)$([ -f "$out/redis-always.json" ] && echo ", '' using 5 title columnheader(5)")
EOF
  done
}
if [ -n "$replot" ]; then
  out=$(cd "$replot" && pwd)
  report "$(sed -n 's/^Command: `\(.*\)`$/\1/p' "$out/comparison.md")"
  echo "report: $out/comparison.md, $out/throughput.png, $out/p99.png"
  exit 0
fi
{ [ -x "$bench" ] || [ "$collections" = only ]; } && [ -x "$agentstored" ] || {
  echo "build first: cmake -S . -B build && cmake --build build --target agentstore-bench agentstored" >&2
  exit 1
}

# Peers and gnuplot from Debian packages, if missing.
need=()
command -v redis-server >/dev/null || need+=(redis-server)
[ -x /usr/lib/postgresql/15/bin/initdb ] || need+=(postgresql-15)
command -v gnuplot >/dev/null || need+=(gnuplot-nox)
if ((${#need[@]})); then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -q && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q "${need[@]}"
fi
mkdir -p "$out"
out=$(cd "$out" && pwd)
tmp=$(mktemp -d /tmp/agentstore-compare.XXXXXX)
chmod 755 "$tmp"
pids=()
source "$root/benchmarks/peers.sh"
trap peers_cleanup EXIT

start_postgres on

redis_port=$(free_port)
mkdir -p "$tmp/redis"
cat >"$tmp/redis/redis.conf" <<EOF
bind 127.0.0.1
port $redis_port
dir $tmp/redis
daemonize no
save ""
appendonly yes
appendfsync everysec
maxmemory 0
protected-mode yes
EOF
redis-server "$tmp/redis/redis.conf" >"$tmp/redis/log" 2>&1 &
pids+=($!)
# The same with appendfsync always (an fsync before each reply, shared by the commands of
# one event-loop pass): the durable peer for the durable write rows.
redis_always_port=$(free_port)
mkdir -p "$tmp/redis-always"
sed -e "s/^port .*/port $redis_always_port/" -e "s|^dir .*|dir $tmp/redis-always|" \
  -e "s/^appendfsync .*/appendfsync always/" "$tmp/redis/redis.conf" >"$tmp/redis-always/redis.conf"
redis-server "$tmp/redis-always/redis.conf" >"$tmp/redis-always/log" 2>&1 &
pids+=($!)

start_agentstored "$agentstored" "$durability"
for _ in $(seq 200); do redis-cli -p "$redis_port" ping >/dev/null 2>&1 && break; sleep 0.05; done

if [ -n "$collections" ]; then
  echo "== collections: journal_entries, agentstore (durability $durability) vs postgres =="
  "$build/benchmarks/collections_bench" --port "$as_port" --key "$key" --pg-port "$pg_port" \
    --pg-user postgres --pg-database bench --seconds "$seconds" --connections "$connections" \
    ${depth:+--depth "$depth"} --declaration "$root/examples/collections/journal_entries.json" | tee "$out/collections.md"
  [ "$collections" = only ] && exit 0
fi
common=(--scale "$scale" --seconds "$seconds" --warmup "$warmup" --connections "$connections")
[ -n "$workloads" ] && common+=(--workloads "$workloads")
echo "== agentstore (durability $durability) =="
"$bench" run --system agentstore --port "$as_port" --key "$key" "${common[@]}" \
  --json "$out/agentstore.json" --csv "$out/agentstore.csv"
echo "== postgres =="
"$bench" run --system postgres --port "$pg_port" --pg-user postgres --pg-database bench \
  "${common[@]}" --json "$out/postgres.json" --csv "$out/postgres.csv"
echo "== redis =="
"$bench" run --system redis --port "$redis_port" "${common[@]}" \
  --json "$out/redis.json" --csv "$out/redis.csv"
# Durable write rows only (what appendfsync changes), labelled redis-always.
durable_rows="append_message,append_message:p16,append_message:p16:c4,append_message:p16:c1,track_agent_usage,chat_turn"
if [ -n "$workloads" ]; then
  durable_rows=$(tr ',' '\n' <<<"$workloads" | grep -E '^(append_message|track_agent_usage|chat_turn)' | paste -sd, || true)
fi
if [ -n "$durable_rows" ]; then
  echo "== redis (appendfsync always) =="
  "$bench" run --system redis --port "$redis_always_port" --scale "$scale" --seconds "$seconds" \
    --warmup "$warmup" --connections "$connections" --workloads "$durable_rows" \
    --json "$out/redis-always.json" --csv "$out/redis-always.csv"
  sed -i 's/"system": *"redis"/"system": "redis-always"/' "$out/redis-always.json"
fi

# Tarantool 2.6 through its own client (net.box), in its benchmark's shapes: select beside
# agentstore's get_user and replace with wal_mode=fsync beside durable append_message, in
# the same shapes (:p16:c4 = 64 in flight over 4 connections, :p16:c1 = 16 on 1). Skipped
# with --no-tarantool.
if [ "$tarantool" = 1 ]; then
  echo "== tarantool (select and replace, wal fsync, net.box) =="
  "$root/benchmarks/tarantool/run.sh" --seconds "$seconds" --ops "select replace" --wal fsync \
    >"$out/tarantool.jsonl"
  cat "$out/tarantool.jsonl"
fi

cmdline="benchmarks/compare.sh --scale $scale --seconds $seconds --warmup $warmup --connections $connections --durability $durability${workloads:+ --workloads $workloads}"
report "$cmdline"
if [ -s "$out/tarantool.jsonl" ]; then
  python3 - "$out" >>"$out/comparison.md" <<'PY'
import json, sys
out = sys.argv[1]
rows = {r["workload"]: r for r in json.load(open(f"{out}/agentstore.json"))["results"]}
print("\n## Against Tarantool 2.6 (net.box, wal_mode=fsync), same shapes, same run\n")
print("get_user beside select by primary key; durable append_message beside replace of a")
print("15-field tuple (both acknowledged only after the fsync covering them).\n")
print("| agentstore workload | shape | agentstore ops/s, p50 ms | Tarantool op | Tarantool ops/s, p50 ms | ratio |")
print("|---|---|---|---|---|---|")
ours = {"select": "get_user", "replace": "append_message"}
for line in open(f"{out}/tarantool.jsonl"):
    t = json.loads(line)
    if t["in_flight"] != 16 * t["connections"] or t["op"] not in ours:
        continue
    name = f"{ours[t['op']]}:p16:c{t['connections']}"
    a = rows.get(name)
    if not a or a.get("status") != "ok":
        continue
    print(f"| {name} | {t['in_flight']} in flight on {t['connections']} connection(s) | "
          f"{a['throughput']:.0f}, {a['p50_us'] / 1000:.2f} | {t['op']} | "
          f"{t['ops_per_sec']}, {t['p50_ms']:.2f} | "
          f"{a['throughput'] / max(t['ops_per_sec'], 1):.2f}x |")
PY
fi
cat "$out/comparison.md"
echo
echo "report: $out/comparison.md, $out/comparison.json, $out/throughput.png, $out/p99.png"
