#!/usr/bin/env bash
# valgrind.sh [TEST_FILE...] - end-to-end suites with every gateway the tests
# start running under valgrind memcheck.
#
#   scripts/valgrind.sh                                  # the default suites
#   scripts/valgrind.sh tests/e2e/failover.test.js       # some suites
#
# Default suites: chat_sdk, streaming, failover, native (tests/e2e/).
#
# Each gateway runs as
#   valgrind --leak-check=full --errors-for-leak-kinds=definite
#            --error-exitcode=99 --log-file=DIR/vg.<pid>.log gemini-balance
# (GB_WRAPPER, read by tests/e2e/lib/harness.js, which also gives every time
# limit 4x more room).  A gateway with a memory error or a definite leak exits
# 99, which the harness's stop() reports as an unclean exit (the suite
# fails); afterwards every log is scanned, so errors of gateways that exited
# on their own are caught too.  Exits non-zero when a test failed or any
# valgrind log reports an error.
#
# Environment: GB_BIN (default build/gemini-balance), VALGRIND_EXTRA (more
# valgrind options, e.g. "--track-origins=yes"), VALGRIND_LOGS (directory for
# the logs; default a fresh temp dir, kept when something failed).
set -euo pipefail
cd "$(dirname "$0")/.."

command -v valgrind >/dev/null || { echo "valgrind.sh: valgrind is not installed (apt-get install valgrind)" >&2; exit 2; }
: "${GB_BIN:=$PWD/build/gemini-balance}"
case "$GB_BIN" in /*) ;; *) GB_BIN="$PWD/$GB_BIN" ;; esac
export GB_BIN

logdir="${VALGRIND_LOGS:-$(mktemp -d "${TMPDIR:-/tmp}/gb-valgrind.XXXXXX")}"
mkdir -p "$logdir"
case "$logdir" in *' '*) echo "valgrind.sh: the log directory must not contain spaces: $logdir" >&2; exit 2 ;; esac

export GB_WRAPPER="valgrind --leak-check=full --errors-for-leak-kinds=definite --error-exitcode=99 --num-callers=40 --log-file=$logdir/vg.%p.log ${VALGRIND_EXTRA:-}"
# valgrind is slow to start: give "listening on" more time
export GB_START_TIMEOUT_MS="${GB_START_TIMEOUT_MS:-30000}"

if [ "$#" -gt 0 ]; then
  files=("$@")
else
  files=(tests/e2e/chat_sdk.test.js tests/e2e/streaming.test.js tests/e2e/failover.test.js tests/e2e/native.test.js)
fi

echo "valgrind.sh: ${files[*]}; logs in $logdir" >&2
test_rc=0
scripts/e2e.sh "${files[@]}" || test_rc=$?

# Scan every gateway's log: errors (memory errors and definite leaks both
# count in the ERROR SUMMARY with --errors-for-leak-kinds=definite).
bad=0
runs=0
for f in "$logdir"/vg.*.log; do
  [ -e "$f" ] || continue
  runs=$((runs + 1))
  if grep -Eq 'ERROR SUMMARY: [1-9]|definitely lost: [1-9]|Process terminating with default action' "$f"; then
    bad=$((bad + 1))
    echo "==== valgrind reported an error: $f" >&2
    cat "$f" >&2
  elif ! grep -q 'ERROR SUMMARY: 0 errors' "$f"; then
    # no summary: the process was killed (SIGKILL) before valgrind could report
    echo "valgrind.sh: note: no error summary in $f (gateway killed?)" >&2
  fi
done

echo "valgrind.sh: $runs gateway runs under valgrind, $bad with errors; tests exit status $test_rc" >&2
if [ "$bad" -ne 0 ] || [ "$test_rc" -ne 0 ]; then
  echo "valgrind.sh: FAILED (logs kept in $logdir)" >&2
  exit 1
fi
[ -n "${VALGRIND_LOGS:-}" ] || rm -rf "$logdir"
echo "valgrind.sh: OK" >&2
