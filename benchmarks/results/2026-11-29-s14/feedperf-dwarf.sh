#!/usr/bin/env bash
# ../2026-11-29-s13/feedperf.sh with DWARF call graphs (perf at 4 kHz over 1.5 s, the stacks
# RocksDB and libc need for callers): SUBS subscribers on one connection (default 1000),
# 1000 users, 8 x DEPTH (default 16); binaries from $BIN_DIR (default /tmp/$BIN, BIN default
# B), into $OUT/perf$BIN$SUBS.data (default /tmp). Then: perf script -F comm,ip,sym -i FILE
# > s.txt; callers.py s.txt io-worker DrainSubscriptions,PushFeeds
bindir=${BIN_DIR:-/tmp/${BIN:-B}}
bin=$bindir/feed_bench
dir=$(mktemp -d "${TMPDIR:-/tmp}/feedperf.XXXXXX")
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf "$dir"' EXIT
$bindir/agentstored --data-dir "$dir/server" --port 0 --port-file "$dir/port" \
    --durability always --max-connections 4096 >"$dir/server.log" 2>&1 &
pid=$!
for _ in $(seq 100); do [ -s "$dir/port" ] && break; sleep 0.1; done
port=$(cat "$dir/port"); key=$(awk '/^service/{print $2}' "$dir/server/initial-keys")
$bin throughput --subscribers ${SUBS:-1000} --per-connection ${PER:-1000} --users 1000 --writers 8 --depth ${DEPTH:-16} --seconds 8 --port $port --key $key 2>$dir/bench.err &
bp=$!
until grep -q writing $dir/bench.err 2>/dev/null; do sleep 0.1; done; sleep 2
perf record -F 4000 --call-graph dwarf,32768 -p $pid,$bp -o ${OUT:-/tmp}/perf${BIN:-B}${SUBS:-1000}.data -- sleep 1.5 >/dev/null 2>&1
wait $bp
