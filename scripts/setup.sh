#!/usr/bin/env bash
# Installs every Debian 12 package agentstore needs to build, test and benchmark, if
# missing. Safe to run again; needs root (or sudo) only when something is missing.
set -euo pipefail
packages=(
  build-essential cmake git pkg-config
  librocksdb-dev libflatbuffers-dev flatbuffers-compiler
  libboost-dev libhnswlib-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  nlohmann-json3-dev libspdlog-dev libcli11-dev libssl-dev zlib1g-dev
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
