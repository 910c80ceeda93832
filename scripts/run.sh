#!/usr/bin/env bash
# run.sh BIN - start the gateway as a newcomer does with `make run`.
# On the first run (no .env here) it writes one from .env.example with a fresh
# random client token and admin token, prints them once, and starts anyway:
# /health works and model calls answer a clear 503 until API_KEYS is filled in.
set -euo pipefail
bin=$1
cd "$(dirname "$0")/.."

rand_token() { # 32 random alphanumerics from the kernel's CSPRNG
  local s=""
  while [ "${#s}" -lt 32 ]; do
    s+=$(head -c 256 /dev/urandom | LC_ALL=C tr -dc 'A-Za-z0-9')
  done
  echo "${s:0:32}"
}

if [ ! -f .env ]; then
  client="sk-$(rand_token)"
  admin="$(rand_token)"
  sed -e "s|^ALLOWED_TOKENS=.*|ALLOWED_TOKENS=[\"$client\"]|" \
      -e "s|^AUTH_TOKEN=.*|AUTH_TOKEN=$admin|" .env.example > .env
  chmod 600 .env
  cat <<MSG
------------------------------------------------------------------------
First run: wrote .env with fresh tokens (shown only this once):
  client token (ALLOWED_TOKENS): $client
  admin token  (AUTH_TOKEN):     $admin
Next: put your Gemini keys in .env (API_KEYS=key1,key2), then restart.
Point any OpenAI client at http://localhost:8000/v1 with the client token;
the status page is http://localhost:8000/admin (log in with the admin token).
------------------------------------------------------------------------
MSG
fi
exec "$bin"
