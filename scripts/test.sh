#!/usr/bin/env bash
# Builds and runs every test through CTest (benchmarks are built but never run here).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/build.sh "$@"
ctest --test-dir build --output-on-failure -j"$(nproc)" --timeout 600
# The TypeScript client: generated from this build, tested against its agentstored.
(cd clients/typescript && AGENTSTORE_BUILD_DIR="$PWD/../../build" npm run --silent build &&
  AGENTSTORED="$PWD/../../build/net/agentstored" npm test)
