#!/usr/bin/env bash
# deps.sh build|test|bench|fuzz - install the Debian (and npm) packages a
# target needs, only those missing.  Safe to run again and again.  test takes
# clang too: make test ends with a short run of the libFuzzer targets.
set -euo pipefail
cd "$(dirname "$0")/.."

want=(make gcc pkg-config libevent-dev libcurl4-gnutls-dev libjansson-dev libsqlite3-dev nettle-dev libhiredis-dev libssh2-1-dev libmimalloc-dev ca-certificates)
# The binary links libcurl, libssh2 and libcrypto statically (Makefile,
# BIN_STATIC_LIBS): the linker then needs the libraries libcurl loads itself
# (libssl-dev has libcrypto.a).
want+=(libssl-dev libnghttp2-dev libidn2-dev librtmp-dev libpsl-dev libgnutls28-dev libkrb5-dev
       libldap-dev libzstd-dev libbrotli-dev zlib1g-dev)
case "${1:-build}" in
  test)  want+=(libcmocka-dev nodejs npm curl chromium sqlite3 redis-server clang libclang-rt-dev) ;;
  bench) want+=(nginx-light wrk curl) ;;
  fuzz)  want+=(clang libclang-rt-dev) ;;
esac

missing=()
for p in "${want[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing+=("$p")
done
# nodejs may come from elsewhere than Debian: a working node + npm is enough.
if [ "${1:-}" = test ] && command -v node >/dev/null && command -v npm >/dev/null; then
  missing=("${missing[@]/nodejs}"); missing=("${missing[@]/npm}")
fi
read -r -a missing <<<"${missing[*]:-}"
if [ "${#missing[@]}" -gt 0 ]; then
  echo "deps: installing ${missing[*]}" >&2
  SUDO=; [ "$(id -u)" -eq 0 ] || SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if [ "${1:-}" = test ]; then
  if [ ! -d tests/e2e/node_modules ] || [ tests/e2e/package-lock.json -nt tests/e2e/node_modules ]; then
    (cd tests/e2e && npm ci --no-audit --no-fund --loglevel=error)
  fi
fi
