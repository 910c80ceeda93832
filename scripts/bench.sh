#!/usr/bin/env bash
# bench.sh BIN - `make bench`: one bounded, loopback-only run that measures
# nginx fed straight (a), nginx as a pure reverse proxy (b, e) and the
# gemini-balance binary BIN (c, d, f), all in front of the same nginx fake
# Gemini upstream, with wrk; prints requests/s, p50/p99, errors, RSS and the
# ratios gateway/nginx-proxy, and writes the table to <dir of BIN>/bench/.
#
#   (a) nginx fake upstream direct  POST /v1beta/models/m:generateContent
#   (b) nginx pure proxy            same request through the proxy
#   (c) gemini-balance OpenAI chat  POST /v1/chat/completions            ratio c/b
#   (d) gemini-balance chat stream  same with "stream":true (SSE)        ratio d/e
#   (e) nginx proxy streaming       POST ...:streamGenerateContent?alt=sse via the proxy
#   (f) gemini-balance native       POST /v1beta/models/m:generateContent ratio f/b
#   plus -c1 latency for (b) and (c).
#
# Environment: BENCH_DURATION seconds per wrk run (default 10), BENCH_CONNS
# (default "64 256"), BENCH_THREADS (default 2), BENCH_WARMUP seconds of
# unmeasured load before a case's first run (default 1, 0 = none),
# BENCH_REPEAT rounds (default 1; each round runs every case once, the table
# shows per column the median over the rounds and the sum of their errors),
# BENCH_KEEP=1 keeps the temp dir (configs, logs).
#
# The gateway runs with cwd a temp dir (no .env) and HOST, PORT, BASE_URL (the
# fake upstream), API_KEYS, ALLOWED_TOKENS, LOG_LEVEL=warn from the
# environment.  Gateway cases with no binary, or whose first curl gets a
# non-2xx answer, are reported as n/a instead of benchmarking errors.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BENCH_DIR=$ROOT/bench
BIN_ARG=${1:-build/gemini-balance}
case $BIN_ARG in /*) BIN=$BIN_ARG ;; *) BIN=$ROOT/$BIN_ARG ;; esac
OUT_DIR=$(dirname "$BIN")/bench

DURATION=${BENCH_DURATION:-10}
DURATION=${DURATION%s}
CONCS=${BENCH_CONNS:-64 256}
THREADS=${BENCH_THREADS:-2}
WARMUP=${BENCH_WARMUP:-1}
WARMUP=${WARMUP%s}
REPEAT=${BENCH_REPEAT:-1}
TOKEN=bench-token
MODEL=gemini-2.5-flash
NGINX=${NGINX:-$(command -v nginx || echo /usr/sbin/nginx)}

die() { echo "bench: $*" >&2; exit 1; }
log() { echo "bench: $*" >&2; }

[[ $DURATION =~ ^[0-9]+$ && $DURATION -gt 0 ]] || die "BENCH_DURATION must be whole seconds, got '$DURATION'"
[[ $WARMUP =~ ^[0-9]+$ ]] || die "BENCH_WARMUP must be whole seconds, got '$WARMUP'"
[[ $REPEAT =~ ^[0-9]+$ && $REPEAT -gt 0 ]] || die "BENCH_REPEAT must be a positive number, got '$REPEAT'"
[ -x "$NGINX" ] || die "nginx not found (apt-get install nginx-light)"
command -v wrk >/dev/null || die "wrk not found (apt-get install wrk)"
command -v curl >/dev/null || die "curl not found (apt-get install curl)"

# Loopback only: never let a proxy from the environment catch our traffic.
unset http_proxy HTTP_PROXY https_proxy HTTPS_PROXY all_proxy ALL_PROXY no_proxy NO_PROXY

# ---------------------------------------------------------------- cleanup
TMP=$(mktemp -d "${TMPDIR:-/tmp}/gb-bench.XXXXXX")
# nginx workers drop to "nobody" when started as root: they must read www/.
chmod 755 "$TMP"
PIDS=()

cleanup() {
    local rc=$? pid
    trap - EXIT INT TERM
    for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    if [ "${BENCH_KEEP:-0}" = 1 ]; then log "kept $TMP"; else rm -rf "$TMP"; fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ------------------------------------------------------------------ ports
# A port nobody answers on is taken as free; a lost race shows up as a bind
# failure and start_nginx simply tries another one.  Ports stay below the
# ephemeral range so wrk/nginx/curl outgoing connections cannot collide.
port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

pick_port() {
    local p
    for _ in $(seq 100); do
        p=$((20000 + RANDOM % 12000))
        port_in_use "$p" || { echo "$p"; return 0; }
    done
    die "no free port found"
}

# wait_port PORT PID: until PORT accepts connections; fails if PID died.
wait_port() {
    for _ in $(seq 100); do
        port_in_use "$1" && return 0
        kill -0 "$2" 2>/dev/null || return 1
        sleep 0.1
    done
    return 1
}

# ------------------------------------------------------------------ nginx
mkdir -p "$TMP/www/canned" "$TMP/tmp"
cp "$BENCH_DIR/generate-content.json" "$BENCH_DIR/stream-generate-content.sse" \
    "$BENCH_DIR/models-list.json" "$TMP/www/canned/"
chmod -R a+rX "$TMP/www"

# start_nginx NAME TEMPLATE [UPSTREAM_PORT]: sets NGINX_PORT.
start_nginx() {
    local name=$1 tpl=$2 up=${3:-} port conf pid try
    conf=$TMP/$name.conf
    for try in 1 2 3 4 5; do
        port=$(pick_port)
        sed -e "s|@DIR@|$TMP|g" -e "s|@PORT@|$port|g" -e "s|@UPSTREAM_PORT@|$up|g" \
            "$tpl" >"$conf"
        "$NGINX" -p "$TMP" -c "$conf" -e "$TMP/$name-stderr.log" \
            >"$TMP/$name-stdout.log" 2>&1 &
        pid=$!
        if wait_port "$port" "$pid"; then
            PIDS+=("$pid")
            NGINX_PORT=$port
            return 0
        fi
        kill -TERM "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
        log "$name: nginx did not come up on port $port (try $try):"
        tail -n 5 "$TMP/$name-stdout.log" "$TMP/$name-stderr.log" "$TMP/$name-error.log" 2>/dev/null >&2 || true
    done
    die "$name: nginx would not start"
}

start_nginx fake-upstream "$BENCH_DIR/nginx-fake-upstream.conf"
FAKE_PORT=$NGINX_PORT
start_nginx proxy "$BENCH_DIR/nginx-proxy.conf" "$FAKE_PORT"
PROXY_PORT=$NGINX_PORT
log "fake upstream on 127.0.0.1:$FAKE_PORT, nginx proxy on 127.0.0.1:$PROXY_PORT"

# ----------------------------------------------------------------- gateway
GW_PORT=
GW_PID=
GW_NOTE=
RSS_IDLE=n/a
RSS_IDLE_ANON=
RSS_IDLE_FILE=
RSS_PEAK=n/a

proc_kb() { awk -v k="$2:" '$1 == k { print $2 }' "/proc/$1/status" 2>/dev/null; }

# start_gateway: sets GW_PID and GW_PORT (empty when it did not come up).
# The port is picked here rather than PORT=0 + parsing "listening on": that
# line is an info-level log and LOG_LEVEL=warn hides it.  Ready = the port
# accepts connections; a lost port race (bind error) is retried.
start_gateway() {
    local port try
    for try in 1 2 3; do
        port=$(pick_port)
        (
            cd "$TMP/gw"
            exec env HOST=127.0.0.1 PORT="$port" \
                BASE_URL="http://127.0.0.1:$FAKE_PORT/v1beta" \
                API_KEYS=bench-k1,bench-k2,bench-k3,bench-k4 \
                ALLOWED_TOKENS=$TOKEN LOG_LEVEL=warn "$BIN"
        ) </dev/null >"$TMP/gw/stdout.log" 2>"$TMP/gw/stderr.log" &
        GW_PID=$!
        PIDS+=("$GW_PID")
        for _ in $(seq 150); do
            if port_in_use "$port"; then
                GW_PORT=$port
                return 0
            fi
            kill -0 "$GW_PID" 2>/dev/null || break
            sleep 0.1
        done
        kill -TERM "$GW_PID" 2>/dev/null || true
        wait "$GW_PID" 2>/dev/null || true
        log "gateway did not come up on port $port (try $try); its stderr:"
        tail -n 20 "$TMP/gw/stderr.log" >&2 || true
    done
    GW_PID=
}

if [ ! -x "$BIN" ]; then
    GW_NOTE="binary missing"
    log "no gateway binary at $BIN: gateway cases are n/a"
else
    mkdir -p "$TMP/gw"
    start_gateway
    if [ -z "$GW_PORT" ]; then
        GW_NOTE="gateway did not start"
        log "gateway would not start: gateway cases are n/a"
        GW_FAILED=1
    else
        sleep 0.5
        RSS_IDLE=$(proc_kb "$GW_PID" VmRSS)
        RSS_IDLE_ANON=$(proc_kb "$GW_PID" RssAnon)
        RSS_IDLE_FILE=$(proc_kb "$GW_PID" RssFile)
        log "gateway pid $GW_PID on 127.0.0.1:$GW_PORT, idle RSS ${RSS_IDLE} kB"
    fi
fi

# ------------------------------------------------------------------- cases
NATIVE_BODY=$BENCH_DIR/req-native.json
GEN_PATH=/v1beta/models/$MODEL:generateContent
SSE_PATH="/v1beta/models/$MODEL:streamGenerateContent?alt=sse"

declare -A URL BODY TITLE NOTE KIND
def_case() { URL[$1]=$2; BODY[$1]=$3; TITLE[$1]=$4; KIND[$1]=$5; NOTE[$1]=; }
def_case a "http://127.0.0.1:$FAKE_PORT$GEN_PATH" "$NATIVE_BODY" "nginx fake upstream direct" json
def_case b "http://127.0.0.1:$PROXY_PORT$GEN_PATH" "$NATIVE_BODY" "nginx pure proxy" json
def_case c "http://127.0.0.1:$GW_PORT/v1/chat/completions" "$BENCH_DIR/req-chat.json" \
    "gemini-balance chat (OpenAI)" json
def_case d "http://127.0.0.1:$GW_PORT/v1/chat/completions" "$BENCH_DIR/req-chat-stream.json" \
    "gemini-balance chat stream" sse
def_case e "http://127.0.0.1:$PROXY_PORT$SSE_PATH" "$NATIVE_BODY" "nginx proxy streaming" sse
def_case f "http://127.0.0.1:$GW_PORT$GEN_PATH" "$NATIVE_BODY" "gemini-balance native relay" json
CASES="a b c d e f"
GW_CASES=" c d f "

# check_case ID: one request with curl; sets NOTE[ID] to why it is n/a.
check_case() {
    local id=$1 code out=$TMP/check-$1.body
    if [[ $GW_CASES == *" $id "* && -z $GW_PORT ]]; then
        NOTE[$id]="n/a ($GW_NOTE)"
        return 0
    fi
    code=$(curl -sS --noproxy '*' -m 10 -o "$out" -w '%{http_code}' \
        -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' \
        --data-binary "@${BODY[$id]}" "${URL[$id]}" 2>>"$TMP/curl.log") || code=000
    if [[ $code != 2?? ]]; then
        NOTE[$id]="n/a (HTTP $code)"
        log "case $id (${TITLE[$id]}): HTTP $code, not benchmarked: $(head -c 200 "$out" 2>/dev/null | tr '\r\n' '  ')"
        return 0
    fi
    if [ "${KIND[$id]}" = sse ] && ! grep -q '^data: ' "$out"; then
        NOTE[$id]="n/a (no SSE events)"
        log "case $id (${TITLE[$id]}): 2xx without 'data:' lines, not benchmarked"
        return 0
    fi
    if [ "${KIND[$id]}" = json ] && ! grep -q '"candidates"\|"choices"' "$out"; then
        NOTE[$id]="n/a (unexpected body)"
        log "case $id (${TITLE[$id]}): 2xx with an unexpected body, not benchmarked"
    fi
}

for id in $CASES; do check_case "$id"; done
# The nginx cases are the baseline: if they fail the bench itself is broken.
for id in a b e; do
    [ -z "${NOTE[$id]}" ] || die "baseline case $id (${TITLE[$id]}) failed: ${NOTE[$id]}"
done
[ "$(grep -c '^data: ' "$TMP/check-e.body")" -eq 10 ] || die "fake upstream SSE body is not 10 events"

# ---------------------------------------------------------------------- wrk
rm -rf "$OUT_DIR/raw"
mkdir -p "$OUT_DIR/raw"
WRK_TIMEOUT=$((DURATION + WARMUP + 30))

# run_wrk ID CONC THREADS ROUND: one measured wrk run (after a warm-up in
# round 1); appends req/s, p50, p99 to the case's lists, adds up errors.
declare -A L_RPS L_P50 L_P99 N2 SE FAILED
run_wrk() {
    local id=$1 c=$2 t=$3 r=$4 k=$1:$2 raw=$OUT_DIR/raw/$1-c$2-r$4.txt line n2 se
    [ -z "${NOTE[$id]}" ] || return 0
    log "case $id c$c round $r: ${TITLE[$id]} (${DURATION}s)"
    if [ "$WARMUP" -gt 0 ] && [ "$r" = 1 ]; then
        BENCH_BODY_FILE=${BODY[$id]} BENCH_TOKEN=$TOKEN timeout "$WRK_TIMEOUT" \
            wrk -t"$t" -c"$c" -d"${WARMUP}s" -s "$BENCH_DIR/wrk.lua" "${URL[$id]}" \
            >/dev/null 2>&1 || true
    fi
    BENCH_BODY_FILE=${BODY[$id]} BENCH_TOKEN=$TOKEN timeout "$WRK_TIMEOUT" \
        wrk -t"$t" -c"$c" -d"${DURATION}s" --latency -s "$BENCH_DIR/wrk.lua" "${URL[$id]}" \
        >"$raw" 2>&1 || true
    line=$(grep '^BENCH ' "$raw" | tail -n 1 || true)
    if [ -z "$line" ]; then
        FAILED[$k]="error (see ${raw#"$ROOT"/})"
        log "case $id c$c: wrk gave no result: $(tail -n 3 "$raw" | tr '\n' ' ')"
        return 0
    fi
    L_RPS[$k]+="$(sed -n 's/.* rps=\([0-9]*\).*/\1/p' <<<"$line") "
    L_P50[$k]+="$(sed -n 's/.* p50_us=\([0-9]*\).*/\1/p' <<<"$line") "
    L_P99[$k]+="$(sed -n 's/.* p99_us=\([0-9]*\).*/\1/p' <<<"$line") "
    n2=$(sed -n 's/.* non2xx=\([0-9]*\).*/\1/p' <<<"$line")
    se=$(sed -n 's/.* sockerr=\([0-9]*\).*/\1/p' <<<"$line")
    N2[$k]=$((${N2[$k]:-0} + n2))
    SE[$k]=$((${SE[$k]:-0} + se))
}

# median of a list of whole numbers (lower middle for an even count)
median() { tr ' ' '\n' <<<"$1" | grep . | sort -n | awk '{ v[NR] = $1 } END { if (NR) print v[int((NR + 1) / 2)] }'; }

NRUNS=$(((6 * $(wc -w <<<"$CONCS") + 2) * REPEAT))
log "up to $NRUNS wrk runs of ${DURATION}s (+${WARMUP}s warm-up in round 1): about $((NRUNS * DURATION + (NRUNS / REPEAT) * WARMUP))s"
START=$(date +%s)
for r in $(seq "$REPEAT"); do
    for c in $CONCS; do
        t=$THREADS
        [ "$t" -le "$c" ] || t=$c
        for id in $CASES; do run_wrk "$id" "$c" "$t" "$r"; done
    done
    for id in b c; do run_wrk "$id" 1 1 "$r"; done
done

declare -A RPS P50 P99 ERR
for id in $CASES; do
    for c in $CONCS 1; do
        k=$id:$c
        if [ -n "${NOTE[$id]}" ]; then
            RPS[$k]=${NOTE[$id]}
            ERR[$k]=-
        elif [ -n "${FAILED[$k]:-}" ]; then
            RPS[$k]=${FAILED[$k]}
        elif [ -n "${L_RPS[$k]:-}" ]; then
            RPS[$k]=$(median "${L_RPS[$k]}")
            P50[$k]=$(median "${L_P50[$k]}")
            P99[$k]=$(median "${L_P99[$k]}")
            if [ "${N2[$k]}" = 0 ] && [ "${SE[$k]}" = 0 ]; then
                ERR[$k]=0
            else
                ERR[$k]="${N2[$k]} non2xx, ${SE[$k]} sock"
            fi
        fi
    done
done
ELAPSED=$(($(date +%s) - START))

if [ -n "$GW_PORT" ] && kill -0 "$GW_PID" 2>/dev/null; then
    RSS_PEAK=$(proc_kb "$GW_PID" VmHWM)
elif [ -n "$GW_PORT" ]; then
    RSS_PEAK="n/a (gateway exited)"
    GW_FAILED=1
fi

# ------------------------------------------------------------------- report
is_num() { [[ ${1:-} =~ ^[0-9]+(\.[0-9]+)?$ ]]; }
ms() { is_num "${1:-}" && awk -v u="$1" 'BEGIN { printf "%.3f", u / 1000 }' || echo "-"; }

# ratio ID BASE CONC TARGET: "0.53x (>= 0.50 ok)"
ratio() {
    local x=${RPS[$1:$3]:-} y=${RPS[$2:$3]:-}
    if is_num "$x" && is_num "$y"; then
        awk -v x="$x" -v y="$y" -v t="$4" -v n="$1/$2" 'BEGIN {
            r = x / y; printf "%s %.2fx (target >= %.2f: %s)", n, r, t, (r >= t ? "ok" : "MISS") }'
    else
        echo "-"
    fi
}

table() {
    local c id k r
    echo "| case | conc | req/s | p50 ms | p99 ms | errors | ratio vs nginx |"
    echo "|---|---:|---:|---:|---:|---|---|"
    for c in $CONCS; do
        for id in $CASES; do
            k=$id:$c
            case $id in
            c) r=$(ratio c b "$c" 0.40) ;;
            d) r=$(ratio d e "$c" 0.25) ;;
            f) r=$(ratio f b "$c" 0.50) ;;
            *) r= ;;
            esac
            echo "| ($id) ${TITLE[$id]} | $c | ${RPS[$k]:-} | $(ms "${P50[$k]:-}") | $(ms "${P99[$k]:-}") | ${ERR[$k]:-} | $r |"
        done
    done
    for id in b c; do
        k=$id:1
        r=
        if [ "$id" = c ] && is_num "${P50[c:1]:-}" && is_num "${P50[b:1]:-}"; then
            r=$(awk -v x="${P50[c:1]}" -v y="${P50[b:1]}" 'BEGIN {
                d = (x - y) / 1000; printf "p50 +%.3f ms over nginx (target <= 0.100: %s)", d, (d <= 0.1 ? "ok" : "MISS") }')
        fi
        echo "| ($id) ${TITLE[$id]} | 1 | ${RPS[$k]:-} | $(ms "${P50[$k]:-}") | $(ms "${P99[$k]:-}") | ${ERR[$k]:-} | $r |"
    done
}

rss_line() {
    local idle=$RSS_IDLE peak=$RSS_PEAK s=
    if is_num "$idle"; then
        s=$(awk -v k="$idle" -v a="${RSS_IDLE_ANON:-0}" -v f="${RSS_IDLE_FILE:-0}" 'BEGIN {
            printf "%.1f MB (target <= 10 MB: %s; anonymous %.1f MB, file-backed/shared libraries %.1f MB)",
                k / 1024, (k <= 10240 ? "ok" : "MISS"), a / 1024, f / 1024 }')
    else
        s=$idle
    fi
    is_num "$peak" && peak=$(awk -v k="$peak" 'BEGIN { printf "%.1f MB", k / 1024 }')
    echo "gateway RSS: idle VmRSS $s; peak VmHWM after load $peak"
}

CPU=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)
REPORT=$(
    echo "# gemini-balance bench results"
    echo
    echo "$(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) CPUs ($CPU), $(uname -sr)"
    echo "$("$NGINX" -v 2>&1 | sed 's/^nginx version: //'), wrk $(wrk -v 2>&1 | head -n 1 | awk '{print $2}'), ${DURATION}s per run (+${WARMUP}s warm-up), median of $REPEAT round(s), wrk -t$THREADS (-t1 at -c1), ${ELAPSED}s of load in all"
    echo "gateway: ${BIN#"$ROOT"/} (WORKERS default), everything on loopback on the same machine"
    echo
    table
    echo
    rss_line
)
mkdir -p "$OUT_DIR"
printf '%s\n' "$REPORT" >"$OUT_DIR/results.md"
echo
printf '%s\n' "$REPORT"
echo
log "written to $OUT_DIR/results.md (raw wrk output in $OUT_DIR/raw/)"
[ -z "${GW_FAILED:-}" ] || die "the gateway failed (see above)"
