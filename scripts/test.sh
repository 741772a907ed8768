#!/usr/bin/env bash
# What CI runs (.ci/run). By default one build, build-asan (AddressSanitizer +
# UndefinedBehaviorSanitizer), holds everything: every CTest test runs there, the
# TypeScript client's tests run against its agentstored, a bounded fuzz pass of the request
# path follows, and the benchmarks are compiled there (never run) so they cannot bit-rot.
# No Release build: a second full build does not fit CI's budget of well under 30 minutes
# on 2 cores (README, "Sanitizers and fuzzing", has the CPU-seconds). Any failed test or
# sanitizer finding fails the run; the fuzzer prints the failing input (hex) and writes it
# to build-asan/dispatch-fuzz-crash.bin (replay: build-asan/tests/dispatch_fuzz FILE).
#   AGENTSTORE_SANITIZERS=full   the default (CI): as above
#   AGENTSTORE_SANITIZERS=0      no sanitizers: the Release build (scripts/build.sh), the
#                                Release suite through CTest, the TypeScript tests against
#                                the Release agentstored (quick local runs; CI never sets it)
#   AGENTSTORE_FUZZ_SECONDS=N    fuzz time budget (default 60)
set -euo pipefail
cd "$(dirname "$0")/.."
start=$(date +%s)
stage_start=$start
stage() {  # prints how long the stage that just ended took, and the total so far
  local now
  now=$(date +%s)
  echo "test.sh: $1 took $((now - stage_start)) s (total $((now - start)) s)"
  stage_start=$now
}
mode="${AGENTSTORE_SANITIZERS:-full}"
case "$mode" in
  0 | off) mode=off ;;
  1 | full) mode=full ;;
  *) echo "test.sh: AGENTSTORE_SANITIZERS must be full or 0" >&2; exit 2 ;;
esac

ts_tests() {  # the TypeScript client: generated from build dir $1, tested against its agentstored
  (cd clients/typescript && AGENTSTORE_BUILD_DIR="$PWD/../../$1" npm run --silent build &&
    AGENTSTORED="$PWD/../../$1/net/agentstored" npm test)
}

if [[ "$mode" == off ]]; then
  scripts/build.sh "$@"
  stage "release build"
  ctest --test-dir build --output-on-failure -j"$(nproc)" --timeout 600
  stage "release suite"
  ts_tests build
  stage "typescript client"
  echo "test.sh: sanitizer build skipped (AGENTSTORE_SANITIZERS=0)"
  exit 0
fi

launcher=()
command -v ccache >/dev/null && launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache -DCMAKE_C_COMPILER_LAUNCHER=ccache)
# -O1 -g1: file:line stacks at less compile time than -O2 (the build is most of the run);
# the tests' and benchmarks' own code is built at -O0 (tests/ and benchmarks/CMakeLists.txt).
cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -g1" -DCMAKE_C_FLAGS_RELWITHDEBINFO="-O1 -g1" \
  -DAGENTSTORE_SANITIZE=address,undefined -DAGENTSTORE_BUILD_BENCHMARKS=ON \
  "${launcher[@]}" "$@" >/dev/null
# AddressSanitizer reports of every process (test binaries and the agentstored / agentctl
# processes tests start, whose stderr goes to temp files) go to build-asan/sanitizer-logs,
# checked after the suite: a report in a child process fails the run even when the test
# that started it did not notice. (GCC's UBSan runtime ignores log_path: its reports go to
# stderr only, and -fno-sanitize-recover makes the process abort.)
logs="$PWD/build-asan/sanitizer-logs"
rm -rf "$logs" && mkdir -p "$logs"
export ASAN_OPTIONS="detect_leaks=1:abort_on_error=1:log_path=$logs/asan:${ASAN_OPTIONS:-}"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:${UBSAN_OPTIONS:-}"
check_logs() {
  if compgen -G "$logs/*" >/dev/null; then
    for f in "$logs"/*; do
      echo "==== $f"
      cat "$f"
    done
    echo "test.sh: sanitizer reports above ($logs)" >&2
    exit 1
  fi
}
suite_status=0
cmake --build build-asan -j"$(nproc)"
stage "sanitizer build"
ctest --test-dir build-asan --output-on-failure -j"$(nproc)" --timeout 900 || suite_status=$?
stage "sanitizer suite"
ts_tests build-asan || suite_status=$?
stage "typescript client (against the sanitizer build's agentstored)"
check_logs
if ((suite_status)); then exit "$suite_status"; fi
# The fuzz pass reports to stderr, with its input, as it dies.
export ASAN_OPTIONS="${ASAN_OPTIONS/log_path=$logs\/asan:/}"
build-asan/tests/dispatch_fuzz --seconds "${AGENTSTORE_FUZZ_SECONDS:-60}" --seed "$(date +%s)" \
  --crash-file build-asan/dispatch-fuzz-crash.bin
stage "fuzzing"
