#!/usr/bin/env bash
# Installs every Debian 12 package agentstore needs to build, test and benchmark, if
# missing. Safe to run again; needs root (or sudo) only when something is missing.
set -euo pipefail
packages=(
  build-essential cmake git pkg-config
  librocksdb-dev libflatbuffers-dev flatbuffers-compiler
  libboost-dev libhnswlib-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  nlohmann-json3-dev libspdlog-dev libcli11-dev libssl-dev zlib1g-dev libxxhash-dev libabsl-dev
  libpq-dev libhiredis-dev
)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q "${missing[@]}"
fi

# The TypeScript client (clients/typescript): Node.js and npm from Debian if missing,
# then the package's pinned dependencies from the npm registry.
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  echo "setup: installing nodejs npm"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q nodejs npm
fi
# Without the registry the server still builds; only the TypeScript tests then fail.
(cd "$(dirname "$0")/../clients/typescript" && npm ci --no-audit --no-fund --loglevel=error) ||
  echo "setup: npm ci failed in clients/typescript (no npm registry?); its tests will fail" >&2
