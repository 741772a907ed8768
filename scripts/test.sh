#!/usr/bin/env bash
# What CI runs (.ci/run): builds and runs every test through CTest (benchmarks are built but
# never run here) and the TypeScript client's tests, then the sanitizer stage: the request
# path's suites under AddressSanitizer + UndefinedBehaviorSanitizer (build-asan) and a
# bounded fuzz pass of the request path there. Any failed test or sanitizer finding fails
# the run; the fuzzer prints the failing input (hex) and writes it to
# build-asan/dispatch-fuzz-crash.bin (replay: build-asan/tests/dispatch_fuzz FILE).
#   AGENTSTORE_SANITIZERS=subset the default: dispatch_test, engine_rules_test and
#                                collections_test under the sanitizers, then fuzz
#   AGENTSTORE_SANITIZERS=full   the whole suite under the sanitizers, then fuzz: its build
#                                alone is over 17 min on 2 cores, past CI's budget (README)
#   AGENTSTORE_SANITIZERS=0      skip the sanitizer stage (quick local runs; CI never sets it)
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

scripts/build.sh "$@"
stage "release build"
ctest --test-dir build --output-on-failure -j"$(nproc)" --timeout 600
stage "release suite"
# The TypeScript client: generated from this build, tested against its agentstored.
(cd clients/typescript && AGENTSTORE_BUILD_DIR="$PWD/../../build" npm run --silent build &&
  AGENTSTORED="$PWD/../../build/net/agentstored" npm test)
stage "typescript client"

mode="${AGENTSTORE_SANITIZERS:-subset}"
if [[ "$mode" == 1 ]]; then mode=subset; fi
case "$mode" in
  0 | off) echo "test.sh: sanitizer stage skipped (AGENTSTORE_SANITIZERS=$mode)"; exit 0 ;;
  full | subset) ;;
  *) echo "test.sh: AGENTSTORE_SANITIZERS must be full, subset or 0" >&2; exit 2 ;;
esac

launcher=()
command -v ccache >/dev/null && launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache -DCMAKE_C_COMPILER_LAUNCHER=ccache)
# -O1 -g1: file:line stacks at less compile time than -O2 (the build is most of the stage);
# benchmarks off (the Release build compiles them; nothing runs them here).
cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -g1" -DCMAKE_C_FLAGS_RELWITHDEBINFO="-O1 -g1" \
  -DAGENTSTORE_SANITIZE=address,undefined -DAGENTSTORE_BUILD_BENCHMARKS=OFF \
  "${launcher[@]}" >/dev/null
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
if [[ "$mode" == full ]]; then
  cmake --build build-asan -j"$(nproc)"
  stage "sanitizer build"
  ctest --test-dir build-asan --output-on-failure -j"$(nproc)" --timeout 900 || suite_status=$?
else
  suites=(dispatch_test engine_rules_test collections_test)
  cmake --build build-asan -j"$(nproc)" --target dispatch_fuzz "${suites[@]}"
  stage "sanitizer build (subset)"
  for t in "${suites[@]}"; do
    echo "test.sh: $t under ASan+UBSan"
    build-asan/tests/"$t" --gtest_brief=1 || suite_status=$?
  done
fi
check_logs
if ((suite_status)); then exit "$suite_status"; fi
stage "sanitizer suite ($mode)"
# The fuzz pass reports to stderr, with its input, as it dies.
export ASAN_OPTIONS="${ASAN_OPTIONS/log_path=$logs\/asan:/}"
build-asan/tests/dispatch_fuzz --seconds "${AGENTSTORE_FUZZ_SECONDS:-60}" --seed "$(date +%s)" \
  --crash-file build-asan/dispatch-fuzz-crash.bin
stage "fuzzing"
