#!/usr/bin/env bash
# Per-thread-role CPU (us per append) of agentstored and feed_bench during one throughput run.
# $1 = subscribers (default 1000); binaries from $BIN_DIR (default /tmp/B); DEPTH in flight
# per writer (default 16). Counts utime+stime of each thread over 5 s of an 8 s run.
bindir=${BIN_DIR:-/tmp/B}; subs=${1:-1000}
dir=$(mktemp -d "${TMPDIR:-/tmp}/cpu.XXXXXX")
bp=; trap 'kill $pid $bp 2>/dev/null; wait $pid 2>/dev/null; rm -rf "$dir"' EXIT
$bindir/agentstored --data-dir "$dir/server" --port 0 --port-file "$dir/port" --durability always --max-connections 4096 >"$dir/server.log" 2>&1 &
pid=$!
for _ in $(seq 100); do [ -s "$dir/port" ] && break; sleep 0.1; done
port=$(cat "$dir/port"); key=$(awk '/^service/{print $2}' "$dir/server/initial-keys")
$bindir/feed_bench throughput --subscribers $subs --per-connection 1000 --users 1000 --writers 8 --depth ${DEPTH:-16} --seconds 8 --port $port --key $key 2>$dir/bench.err >$dir/bench.out &
bp=$!
until grep -q writing $dir/bench.err 2>/dev/null; do sleep 0.05; done; sleep 1
snap() { for t in /proc/$1/task/*; do echo "$(cat $t/comm) $(awk '{print $14+$15}' $t/stat)"; done | awk '{a[$1]+=$2} END{for(k in a) print k, a[k]}'; }
snap $pid > $dir/s1; c1=$(awk '{print $14+$15}' /proc/$bp/stat); t1=$(date +%s.%N)
sleep 5
snap $pid > $dir/s2; c2=$(awk '{print $14+$15}' /proc/$bp/stat); t2=$(date +%s.%N)
wait $bp
cat $dir/bench.out
rate=$(grep -o '[0-9]* durable' $dir/bench.out | cut -d' ' -f1)
hz=$(getconf CLK_TCK)
join $dir/s1 $dir/s2 | awk -v r=$rate -v w="$(echo "$t2-$t1"|bc)" -v hz=$hz '{printf "%-16s %6.2f us/append\n", $1, ($3-$2)/hz*1e6/(r*w)}'
echo "feed_bench       $(echo "scale=2; ($c2-$c1)/$hz*1000000/($rate*($t2-$t1))" | bc) us/append"
