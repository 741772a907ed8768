#!/usr/bin/env bash
# Interleaved A/B of the 8 x DEPTH durable write rate, 0 subscribers (1000 users) vs 1000
# subscribers on one connection, for the binaries in $A_DIR and $B_DIR (default /tmp/A and
# /tmp/B: agentstored and feed_bench of each build). ROUNDS rounds, SECS s per run; order
# alternates per round. Each server's data directory is under $TMPDIR, removed on exit.
secs=${SECS:-6}; rounds=${ROUNDS:-3}
dir=$(mktemp -d "${TMPDIR:-/tmp}/ab4.XXXXXX")
bins() { if [ "$1" = A ]; then echo "${A_DIR:-/tmp/A}"; else echo "${B_DIR:-/tmp/B}"; fi; }
run() {  # $1 = A|B, $2 = subscribers
  rm -rf "$dir/server" "$dir/port"
  "$(bins $1)/agentstored" --data-dir "$dir/server" --port 0 --port-file "$dir/port" \
    --durability always --max-connections 4096 >"$dir/server.log" 2>&1 &
  pid=$!
  for _ in $(seq 100); do [ -s "$dir/port" ] && break; sleep 0.1; done
  port=$(cat "$dir/port"); key=$(awk '/^service/{print $2}' "$dir/server/initial-keys")
  "$(bins $1)/feed_bench" throughput --subscribers $2 --per-connection 1000 --users 1000 --writers 8 --depth ${DEPTH:-16} --seconds $secs --port $port --key $key 2>/dev/null | grep -o '[0-9]* durable' | cut -d' ' -f1 >"$dir/rate"
  kill $pid; wait $pid 2>/dev/null; pid=
  rate=$(cat "$dir/rate")
}
pid=; trap '[ -n "$pid" ] && kill "$pid" 2>/dev/null; rm -rf "$dir"' EXIT
for r in $(seq $rounds); do
  if [ $((r % 2)) = 1 ]; then order="A B"; else order="B A"; fi
  line="r$r"
  # run in this shell (not $(...)), so the EXIT trap can stop a server still running
  for b in $order; do run $b 0; z=$rate; run $b 1000; s=$rate; line="$line $b: $z/$s=$(echo "scale=3; $s/$z" | bc)"; done
  echo "$line ($(cut -d' ' -f1 /proc/loadavg))"
done
