#!/usr/bin/env bash
# e2e.sh [TEST_FILE...] - black-box tests of the gateway binary with Node's
# test runner, the official openai package and the fake Gemini upstream.
#
#   GB_BIN=/abs/path/gemini-balance scripts/e2e.sh            # every suite
#   scripts/e2e.sh tests/e2e/failover.test.js                 # some suites
#
# Environment: GB_BIN (default build/gemini-balance), E2E_CONCURRENCY (test
# files run at once, default 1), GB_WRAPPER (e.g. "valgrind -q
# --error-exitcode=99"), GB_E2E_VERBOSE=1 (copy the gateway's stderr).
# Exits non-zero when any test fails.
set -euo pipefail
cd "$(dirname "$0")/.."

: "${GB_BIN:=$PWD/build/gemini-balance}"
case "$GB_BIN" in /*) ;; *) GB_BIN="$PWD/$GB_BIN" ;; esac
if [ ! -x "$GB_BIN" ]; then
  echo "e2e: gateway binary not found or not executable: $GB_BIN (run make first)" >&2
  exit 2
fi
export GB_BIN

command -v node >/dev/null || { echo "e2e: node is not installed (make test-deps)" >&2; exit 2; }
if [ ! -d tests/e2e/node_modules/openai ]; then
  (cd tests/e2e && npm ci --no-audit --no-fund --loglevel=error)
fi

# Loopback only: never let a proxy from the environment catch test traffic.
unset http_proxy https_proxy HTTP_PROXY HTTPS_PROXY all_proxy ALL_PROXY
export NO_PROXY='*'

if [ "$#" -gt 0 ]; then files=("$@"); else files=(tests/e2e/*.test.js); fi
exec node --test --test-concurrency="${E2E_CONCURRENCY:-1}" --test-timeout=120000 "${files[@]}"
