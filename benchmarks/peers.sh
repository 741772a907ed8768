# Sourced by compare.sh and node/run.sh: starting the systems they compare, each in a
# directory under $tmp on a free loopback port, the same way in every benchmark (so a
# peer's setup, e.g. PostgreSQL's best honest durable configuration, is stated once).
# The caller sets `tmp` (a temp dir, mode 755) and `pids=()` and traps peers_cleanup.
pgbin=/usr/lib/postgresql/15/bin
pg_as=()
# PostgreSQL refuses to run as root: run it as the postgres user then.
if [ "$(id -u)" -eq 0 ]; then pg_as=(runuser -u postgres --); fi

peers_cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  if [ -f "$tmp/pg/postmaster.pid" ]; then
    "${pg_as[@]}" "$pgbin/pg_ctl" -D "$tmp/pg" -m fast stop >/dev/null 2>&1 || true
  fi
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$tmp"
}

# A loopback port nobody listens on.
free_port() {
  local p
  while :; do
    p=$((20000 + RANDOM % 40000))
    (echo >"/dev/tcp/127.0.0.1/$p") 2>/dev/null || { echo "$p"; return; }
  done
}

# start_postgres SYNCHRONOUS_COMMIT: PostgreSQL 15 in $tmp/pg with a database `bench`;
# sets pg_port.
# Production-like: durable commits (synchronous_commit on, fsync on, full_page_writes on);
# memory sized for the dataset; loopback only. Its best honest setup for durable writes
# (issue 11): every commit still waits for its WAL fsync, but the WAL each commit writes
# is kept small: no checkpoint during the run (checkpoint_timeout, max_wal_size), so the
# pages a write touches need no full-page image each time, and images are lz4-compressed.
start_postgres() {
  pg_port=$(free_port)
  mkdir -p "$tmp/pg"
  if [ "$(id -u)" -eq 0 ]; then chown postgres "$tmp/pg"; fi
  "${pg_as[@]}" "$pgbin/initdb" -D "$tmp/pg" -U postgres -A trust >"$tmp/initdb.log" 2>&1
  cat >>"$tmp/pg/postgresql.conf" <<CONF
listen_addresses = '127.0.0.1'
port = $pg_port
unix_socket_directories = '$tmp/pg'
synchronous_commit = $1
fsync = on
full_page_writes = on
shared_buffers = 1GB
max_connections = 200
max_wal_size = 16GB
checkpoint_timeout = 1h
wal_compression = lz4
wal_buffers = 64MB
CONF
  "${pg_as[@]}" "$pgbin/pg_ctl" -D "$tmp/pg" -l "$tmp/pg/log" -w start >/dev/null
  "${pg_as[@]}" "$pgbin/psql" -h 127.0.0.1 -p "$pg_port" -U postgres -qc "CREATE DATABASE bench" \
    >/dev/null
}

# start_agentstored BINARY DURABILITY: agentstored on $tmp/agentstore; sets as_port and key
# (the service key it printed on creating the store).
start_agentstored() {
  "$1" --data-dir "$tmp/agentstore" --host 127.0.0.1 --port 0 --port-file "$tmp/as.port" \
    --durability "$2" --slow-op-us 1000000 >"$tmp/agentstored.log" 2>&1 &
  pids+=($!)
  for _ in $(seq 200); do [ -s "$tmp/as.port" ] && break; sleep 0.05; done
  as_port=$(cat "$tmp/as.port")
  key=$(awk '/^service/{print $2}' "$tmp/agentstore/initial-keys")
}
