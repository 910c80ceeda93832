#!/usr/bin/env bash
# demo.sh BIN - the gateway wired to the fake Gemini upstream, no real key
# needed.  Prints curl lines that work, then waits; Ctrl-C stops both.
#
#   DEMO_PORT   gateway port (default 8000)
#
# The gateway runs in a temporary directory, so it does not read the
# repository's .env.
set -euo pipefail
cd "$(dirname "$0")/.."

bin="${1:-build/gemini-balance}"
case "$bin" in /*) ;; *) bin="$PWD/$bin" ;; esac
[ -x "$bin" ] || { echo "demo: gateway binary not found: $bin (run make)" >&2; exit 2; }
command -v node >/dev/null || { echo "demo: node is needed for the fake upstream" >&2; exit 2; }

port="${DEMO_PORT:-8000}"
token=sk-demo
tmp="$(mktemp -d -t gb-demo.XXXXXX)"
fake_pid= gw_pid= tail_pid=

cleanup() {
  trap - EXIT INT TERM
  for p in $gw_pid $fake_pid $tail_pid; do kill "$p" 2>/dev/null || true; done
  for p in $gw_pid $fake_pid $tail_pid; do wait "$p" 2>/dev/null || true; done
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'echo; echo "demo: stopping"; exit 0' INT TERM

# 1. the fake upstream on a free port
node tests/fake_upstream/server.js --port 0 >"$tmp/fake.out" 2>"$tmp/fake.err" &
fake_pid=$!
fake_url=
for _ in $(seq 100); do
  fake_url="$(sed -n 's/^fake-upstream listening on \(http:[^ ]*\)$/\1/p' "$tmp/fake.out")"
  [ -n "$fake_url" ] && break
  kill -0 "$fake_pid" 2>/dev/null || break
  sleep 0.1
done
if [ -z "$fake_url" ]; then
  echo "demo: the fake upstream did not start:" >&2
  cat "$tmp/fake.err" >&2
  exit 1
fi

# 2. the gateway, in an empty working directory, with a minimal environment
mkdir "$tmp/gw"
(
  cd "$tmp/gw"
  exec env -i PATH="$PATH" HOST=127.0.0.1 PORT="$port" \
    BASE_URL="$fake_url/v1beta" \
    API_KEYS='good-demo-1,good-demo-2,invalid-demo-3' \
    ALLOWED_TOKENS="$token" LOG_LEVEL=info \
    "$bin"
) 2>"$tmp/gw.log" &
gw_pid=$!
gw_url=
for _ in $(seq 100); do
  gw_url="$(sed -n 's/.*listening on \(http:\/\/[^ "]*\).*/\1/p' "$tmp/gw.log" | head -n1)"
  [ -n "$gw_url" ] && break
  kill -0 "$gw_pid" 2>/dev/null || break
  sleep 0.1
done
if [ -z "$gw_url" ]; then
  echo "demo: the gateway did not start:" >&2
  cat "$tmp/gw.log" >&2
  exit 1
fi
gw_url="${gw_url%/}"

cat <<EOF

gemini-balance demo
  gateway        $gw_url   (client token: $token)
  fake Gemini    $fake_url/v1beta
  key pool       good-demo-1, good-demo-2, invalid-demo-3 (the fake rejects the last one:
                 watch it get retried around and disabled after 3 failures)

Try:
  curl -sN $gw_url/v1/chat/completions -H 'Authorization: Bearer $token' -H 'Content-Type: application/json' \\
       -d '{"model":"gemini-2.5-flash","stream":true,"messages":[{"role":"user","content":"Hello there"}]}'

  curl -s $gw_url/v1/chat/completions -H 'Authorization: Bearer $token' -H 'Content-Type: application/json' \\
       -d '{"model":"gemini-2.5-flash","messages":[{"role":"user","content":"Hello there"}]}'

  curl -s $gw_url/v1/models -H 'Authorization: Bearer $token'

  curl -s $gw_url/health

  curl -s $fake_url/__requests     # what the fake upstream received

Gateway log follows.  Ctrl-C stops both.

EOF

tail -n +1 -f "$tmp/gw.log" >&2 &
tail_pid=$!
wait "$gw_pid" || true
echo "demo: the gateway exited" >&2
