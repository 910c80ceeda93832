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
#   (g) gemini-balance chat stream of 100 upstream events (model bench-long):
#       only for the CPU an event adds, (g - d) / 90 per event
#   (h) libevent floor relay (bench/floor-relay.c, built here): (f)'s request
#       through a bare evhttp server -> evhttp client relay, one thread per
#       CPU, no libcurl, no token, no JSON, no store: the floor any design on
#       evhttp stands on; f - h is what the gateway's native relay adds
#   plus -c1 latency for (b) and (c).
#
# CPU per request: around every measured wrk run the script reads utime+stime
# (/proc/PID/stat fields 14+15, clock ticks, all threads) of the server of
# the case - the gateway process; for nginx the master plus its workers - and
# divides the difference by the requests wrk completed; for the stream cases
# (d, e) also per upstream event, two ways: the request's whole cost / 10
# (the fake stream has 10 events), and what an event adds: (CPU per request
# of g, a 100-event stream, minus that of d) / 90.  Targets: (c) <= 40 us per
# request, (d) <= 4 us per event.  Printed as a separate table after the
# main one.
#
# Slowloris (unless BENCH_SLOWLORIS=0): latency of BENCH_SLOW_CLIENTS (default
# 8) normal wrk clients of (c) the gateway's chat and (b) the nginx pure proxy,
# once alone and once while bench/slowloris.js (node) holds BENCH_SLOWLORIS
# (default 2000) connections open against the same server, each trickling one
# byte per second of a request head that never ends (closed ones are reopened).
# The number of trickling connections actually open is sampled once a second
# (by the trickler, and by ss on the server side).
#
# Environment: BENCH_DURATION seconds per wrk run (default 10), BENCH_CONNS
# (default "64 256"), BENCH_THREADS (default 2), BENCH_WARMUP seconds of
# unmeasured load before a case's first run (default 1, 0 = none),
# BENCH_REPEAT rounds (default 1; each round runs every case once, the table
# shows per column the median over the rounds and the sum of their errors),
# BENCH_KEEP=1 keeps the temp dir (configs, logs), BENCH_SLOWLORIS trickling
# connections (default 2000, 0 = no slowloris case), BENCH_SLOW_CLIENTS wrk
# connections of the slowloris case (default 8).
#
# Memory (run after the throughput cases unless BENCH_MEMORY=0;
# BENCH_ONLY_MEMORY=1 runs it alone, without wrk): RSS of a fresh gateway and
# of a fresh nginx pure proxy (bench/nginx-proxy-mem.conf, master + workers)
# before and after holding, from bench/memclient.js (node),
#   (m1) BENCH_MEM_IDLE (default 5000) idle keep-alive connections, each after
#        one `GET /health HTTP/1.1`                       target <= 2.5 KB each
#   (m2) BENCH_MEM_STREAMS (default 10000, capped by the open-files limit: a
#        stream holds two descriptors) chat streams in flight, POST
#        /v1/chat/completions "stream":true (nginx: the native SSE request),
#        against bench/slow-upstream.js, which trickles one event per second
#        per stream and never ends one on its own        target <= 32 KB each
#   (m3) the same streams as POST ...:streamGenerateContent?alt=sse through
#        the gateway's native relay (information, no target)
# plus the idle RSS of the fresh gateway (target <= 10 MB).  While m2, m3 and
# nginx's streams are held, the server's CPU over BENCH_MEM_CPU_SECONDS
# (default 5) divided by the events slow-upstream.js wrote meanwhile (its
# SIGUSR1 count): the CPU per event that arrives on its own, as from Google
# (target for m2: <= 4 us).  The gateway gets
# the env above plus CLIENT_TIMEOUT=600; everything is restarted per case.
# The table is appended to results.md.  BENCH_MEM_TIMEOUT (default 90) bounds
# the setup of one case in seconds.
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
ONLY_MEMORY=${BENCH_ONLY_MEMORY:-0}
MEMORY=${BENCH_MEMORY:-1}
[ "$ONLY_MEMORY" != 1 ] || MEMORY=1
MEM_IDLE=${BENCH_MEM_IDLE:-5000}
MEM_STREAMS=${BENCH_MEM_STREAMS:-10000}
MEM_TIMEOUT=${BENCH_MEM_TIMEOUT:-90}
MEM_CPU_SECONDS=${BENCH_MEM_CPU_SECONDS:-5}
SLOW_N=${BENCH_SLOWLORIS:-2000}
SLOW_CLIENTS=${BENCH_SLOW_CLIENTS:-8}
CLK_TCK=$(getconf CLK_TCK 2>/dev/null || echo 100)
TOKEN=bench-token
MODEL=gemini-2.5-flash
NGINX=${NGINX:-$(command -v nginx || echo /usr/sbin/nginx)}

die() { echo "bench: $*" >&2; exit 1; }
log() { echo "bench: $*" >&2; }
is_num() { [[ ${1:-} =~ ^[0-9]+(\.[0-9]+)?$ ]]; }

[[ $DURATION =~ ^[0-9]+$ && $DURATION -gt 0 ]] || die "BENCH_DURATION must be whole seconds, got '$DURATION'"
[[ $WARMUP =~ ^[0-9]+$ ]] || die "BENCH_WARMUP must be whole seconds, got '$WARMUP'"
[[ $REPEAT =~ ^[0-9]+$ && $REPEAT -gt 0 ]] || die "BENCH_REPEAT must be a positive number, got '$REPEAT'"
[ -x "$NGINX" ] || die "nginx not found (apt-get install nginx-light)"
[ "$ONLY_MEMORY" = 1 ] || command -v wrk >/dev/null || die "wrk not found (apt-get install wrk)"
[[ $MEM_IDLE =~ ^[0-9]+$ && $MEM_STREAMS =~ ^[0-9]+$ && $MEM_TIMEOUT =~ ^[0-9]+$ ]] ||
    die "BENCH_MEM_IDLE, BENCH_MEM_STREAMS and BENCH_MEM_TIMEOUT must be whole numbers"
[[ $SLOW_N =~ ^[0-9]+$ && $SLOW_CLIENTS =~ ^[0-9]+$ && $SLOW_CLIENTS -gt 0 ]] ||
    die "BENCH_SLOWLORIS must be a whole number and BENCH_SLOW_CLIENTS a positive one"
[[ $CLK_TCK =~ ^[0-9]+$ && $CLK_TCK -gt 0 ]] || CLK_TCK=100
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
# the 100-event stream of case g: the 9 text events 11 times, then the last
# (finishReason and the final usage); events are separated by blank lines
awk 'BEGIN { RS = "\r\n\r\n"; ORS = "\r\n\r\n" } NF { ev[++n] = $0 }
    END { for (i = 0; i < 11; i++) for (j = 1; j < n; j++) print ev[j]; print ev[n] }' \
    "$BENCH_DIR/stream-generate-content.sse" >"$TMP/www/canned/stream-generate-content-100.sse"
chmod -R a+rX "$TMP/www"

# start_nginx NAME TEMPLATE [UPSTREAM_PORT]: sets NGINX_PORT and NGINX_PID.
start_nginx() {
    local name=$1 tpl=$2 up=${3:-} port conf pid try
    conf=$TMP/$name.conf
    for try in 1 2 3 4 5; do
        port=$(pick_port)
        sed -e "s|@DIR@|$TMP|g" -e "s|@PORT@|$port|g" -e "s|@UPSTREAM_PORT@|$up|g" \
            -e "s|@NOFILE@|${MEM_NOFILE:-16384}|g" "$tpl" >"$conf"
        "$NGINX" -p "$TMP" -c "$conf" -e "$TMP/$name-stderr.log" \
            >"$TMP/$name-stdout.log" 2>&1 &
        pid=$!
        if wait_port "$port" "$pid"; then
            PIDS+=("$pid")
            NGINX_PORT=$port
            NGINX_PID=$pid
            return 0
        fi
        kill -TERM "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
        log "$name: nginx did not come up on port $port (try $try):"
        tail -n 5 "$TMP/$name-stdout.log" "$TMP/$name-stderr.log" "$TMP/$name-error.log" 2>/dev/null >&2 || true
    done
    die "$name: nginx would not start"
}

# ----------------------------------------------------------------- gateway
GW_PORT=
GW_PID=
GW_NOTE=
RSS_IDLE=n/a
RSS_IDLE_ANON=
RSS_IDLE_FILE=
RSS_PEAK=n/a

proc_kb() { awk -v k="$2:" '$1 == k { print $2 }' "/proc/$1/status" 2>/dev/null; }

# start_gateway [DIR [BASE_URL [NAME=VALUE...]]]: sets GW_PID and GW_PORT
# (empty when it did not come up).  DIR (default $TMP/gw, must exist) is its
# cwd and holds its logs; BASE_URL defaults to the nginx fake upstream.
# The port is picked here rather than PORT=0 + parsing "listening on": that
# line is an info-level log and LOG_LEVEL=warn hides it.  Ready = the port
# accepts connections; a lost port race (bind error) is retried.
start_gateway() {
    local dir=${1:-$TMP/gw} base=${2:-http://127.0.0.1:$FAKE_PORT/v1beta} port try
    shift $(($# < 2 ? $# : 2))
    GW_PORT=
    for try in 1 2 3; do
        port=$(pick_port)
        (
            cd "$dir"
            exec env HOST=127.0.0.1 PORT="$port" \
                BASE_URL="$base" \
                API_KEYS=bench-k1,bench-k2,bench-k3,bench-k4 \
                ALLOWED_TOKENS=$TOKEN LOG_LEVEL=warn "$@" "$BIN"
        ) </dev/null >"$dir/stdout.log" 2>"$dir/stderr.log" &
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
        tail -n 20 "$dir/stderr.log" >&2 || true
    done
    GW_PID=
}

# ------------------------------------------------------------------ memory
# (BENCH_MEMORY, see the top): each case starts its own processes, holds the
# connections with bench/memclient.js and reads VmRSS/RssAnon before/after.
MEM_SRC=127.0.0.2,127.0.0.3,127.0.0.4,127.0.0.5
declare -A MB MA MBA MAA MN MREQ MNOTE MEV MEVU MEVS

# alive PID: running and not a zombie waiting to be reaped.
alive() { kill -0 "$1" 2>/dev/null && ! grep -q '^State:[[:space:]]*Z' "/proc/$1/status" 2>/dev/null; }

# stop_pid PID: TERM, KILL after 3 s, reap, forget.
stop_pid() {
    local pid=$1 p keep=()
    [ -n "$pid" ] || return 0
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 30); do alive "$pid" || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    for p in "${PIDS[@]}"; do [ "$p" = "$pid" ] || keep+=("$p"); done
    PIDS=("${keep[@]}")
}

# child_pids PID: the processes whose parent is PID.
child_pids() {
    if command -v pgrep >/dev/null; then
        pgrep -P "$1" || true
    else
        # /proc/*/stat: after the ")" closing the name come state, ppid, ...
        awk -v p="$1" '{ sub(/.*\) /, ""); if ($2 == p) { split(FILENAME, f, "/"); print f[3] } }' \
            /proc/[0-9]*/stat 2>/dev/null || true
    fi
}

# tree_kb PID KEY: /proc status KEY (VmRSS, RssAnon) of PID plus its
# children (nginx: master + workers), in kB.
tree_kb() {
    local sum=0 p v
    for p in "$1" $(child_pids "$1"); do
        v=$(proc_kb "$p" "$2")
        sum=$((sum + ${v:-0}))
    done
    echo "$sum"
}

# cpu_ticks PID: "utime stime" (/proc/PID/stat fields 14 and 15, clock
# ticks, all threads) of PID plus its children (nginx: master + workers).
cpu_ticks() {
    local su=0 ss=0 p u s
    for p in "$1" $(child_pids "$1"); do
        # the name in field 2 may hold spaces: count the fields after its ")"
        read -r u s < <(awk '{ sub(/.*\) /, ""); print $12, $13 }' "/proc/$p/stat" 2>/dev/null || true) || true
        su=$((su + ${u:-0}))
        ss=$((ss + ${s:-0}))
    done
    echo "$su $ss"
}

# raise_nofile: the soft open-files limit as far as the hard one allows (at
# most 65536), also for the servers started from here; sets MEM_NOFILE.
raise_nofile() {
    local hard want=65536
    hard=$(ulimit -Hn)
    [ "$hard" = unlimited ] || [ "$hard" -ge "$want" ] || want=$hard
    ulimit -n "$want" 2>/dev/null || true
    MEM_NOFILE=$(ulimit -n)
}

# start_slow_upstream TAG: bench/slow-upstream.js; sets UP_PORT, UP_PID and
# UP_PF (its port file; up_events reads its event count).
start_slow_upstream() {
    local pf=$TMP/slow-up-$1.port
    UP_PF=$pf
    UP_PORT=
    node "$BENCH_DIR/slow-upstream.js" "$pf" "$BENCH_DIR/stream-generate-content.sse" 1000 600 \
        </dev/null >"$TMP/slow-up-$1.log" 2>&1 &
    UP_PID=$!
    PIDS+=("$UP_PID")
    for _ in $(seq 100); do
        [ -s "$pf" ] && break
        alive "$UP_PID" || break
        sleep 0.1
    done
    [ -s "$pf" ] || { log "slow upstream did not start: $(tail -n 3 "$TMP/slow-up-$1.log" | tr '\n' ' ')"; return 1; }
    UP_PORT=$(cat "$pf")
}

# up_events: the number of events the slow upstream has written so far, or
# empty if it did not answer within 2 s.
up_events() {
    rm -f "$UP_PF.events"
    kill -USR1 "$UP_PID" 2>/dev/null || return 0
    for _ in $(seq 20); do
        [ -s "$UP_PF.events" ] && break
        sleep 0.1
    done
    cat "$UP_PF.events" 2>/dev/null || true
}

# mem_warm KIND PORT PATH: a few requests before "before" is read, so one-time
# set-up (first request, first upstream handle) is not counted per connection.
mem_warm() {
    local kind=$1 port=$2 path=$3 p pids=()
    for _ in 1 2 3 4; do
        if [ "$kind" = idle ]; then
            curl -sS --noproxy '*' -m 5 -o /dev/null "http://127.0.0.1:$port$path" 2>/dev/null &
        else
            curl -sS --noproxy '*' -N -m 1 -o /dev/null -H "Authorization: Bearer $TOKEN" \
                -H 'Content-Type: application/json' --data-binary "@$4" \
                "http://127.0.0.1:$port$path" 2>/dev/null &
        fi
        pids+=($!)
    done
    for p in "${pids[@]}"; do wait "$p" || true; done
    sleep 0.5
}

# mem_measure WHO KIND PID PORT PATH BODY N: reads RSS of PID (and children),
# has memclient open and hold N connections (KIND idle: GET PATH; else POST
# BODY to PATH, streaming), waits 2 s, reads RSS again, lets go.  Results in
# MB/MA/MBA/MAA/MN/MNOTE[WHO:KIND].
mem_measure() {
    local who=$1 kind=$2 pid=$3 port=$4 path=$5 body=$6 n=$7 k=$1:$2 st line hp
    local mode=stream args=()
    [ "$kind" = idle ] && mode=idle
    st=$TMP/mem-$who-$kind.status
    mem_warm "$kind" "$port" "$path" "$body"
    MB[$k]=$(tree_kb "$pid" VmRSS)
    MBA[$k]=$(tree_kb "$pid" RssAnon)
    args=(--mode "$mode" --port "$port" --n "$n" --path "$path" --src "$MEM_SRC"
        --parallel 256 --timeout "$MEM_TIMEOUT" --status "$st")
    [ "$mode" = idle ] || args+=(--body "$body" --token "$TOKEN")
    log "memory $who $kind: opening $n connections to 127.0.0.1:$port$path"
    node "$BENCH_DIR/memclient.js" "${args[@]}" </dev/null >"$TMP/mem-$who-$kind.log" 2>&1 &
    hp=$!
    PIDS+=("$hp")
    for _ in $(seq $(((MEM_TIMEOUT + 15) * 5))); do
        grep -q '^READY' "$st" 2>/dev/null && break
        alive "$hp" || break
        sleep 0.2
    done
    line=$(grep '^READY' "$st" 2>/dev/null || true)
    if [ -z "$line" ]; then
        MNOTE[$k]="n/a (memclient: $(tail -n 2 "$TMP/mem-$who-$kind.log" | tr '\n' ' '))"
        stop_pid "$hp"
        return 0
    fi
    sleep 2 # let the first events flow and the allocator settle
    MA[$k]=$(tree_kb "$pid" VmRSS)
    MAA[$k]=$(tree_kb "$pid" RssAnon)
    alive "$pid" || MNOTE[$k]="n/a (server exited)"
    if [ "$mode" = stream ] && alive "$pid"; then
        # CPU per trickled event: every event arrives on its own, as from
        # Google, so each costs the server a read and a write
        local e0 e1 c0 c1 u0 s0 u1 s1
        e0=$(up_events)
        c0=$(cpu_ticks "$pid")
        sleep "$MEM_CPU_SECONDS"
        c1=$(cpu_ticks "$pid")
        e1=$(up_events)
        if is_num "$e0" && is_num "$e1" && [ "$e1" -gt "$e0" ]; then
            read -r u0 s0 <<<"$c0"
            read -r u1 s1 <<<"$c1"
            MEV[$k]=$((e1 - e0))
            MEVU[$k]=$(awk -v d=$((u1 + s1 - u0 - s0)) -v hz="$CLK_TCK" -v n=$((e1 - e0)) \
                'BEGIN { printf "%.2f", d * 1e6 / hz / n }')
            MEVS[$k]=$(awk -v d=$((s1 - s0)) -v hz="$CLK_TCK" -v n=$((e1 - e0)) \
                'BEGIN { printf "%.2f", d * 1e6 / hz / n }')
        fi
    fi
    stop_pid "$hp"
    MN[$k]=$(sed -n 's/.* ok=\([0-9]*\).*/\1/p' <<<"$line")
    line+=" $(grep '^END' "$st" 2>/dev/null || true)"
    log "memory $who $kind: $line, RSS ${MB[$k]} -> ${MA[$k]} kB (anon ${MBA[$k]} -> ${MAA[$k]})"
    if [[ $line != *" fail=0 "* ]]; then
        MNOTE[$k]+="${MNOTE[$k]:+; }$(sed -n 's/.* fail=\([0-9]*\).* reasons=\([^ ]*\).*/\1 failed: \2/p' <<<"$line")"
    fi
    if [[ $line == *" dropped="* && $line != *" dropped=0"* ]]; then
        MNOTE[$k]+="${MNOTE[$k]:+; }$(sed -n 's/.* dropped=\([0-9]*\).*/\1 closed by the server before the end/p' <<<"$line")"
    fi
    [ "${MN[$k]:-0}" -gt 0 ] || MNOTE[$k]="n/a (no connection held)"
    return 0
}

# mem_gateway KIND PATH BODY N: a fresh gateway in front of a fresh slow
# upstream, measured by mem_measure.
mem_gateway() {
    local kind=$1 dir=$TMP/gw-mem-$1
    if [ ! -x "$BIN" ]; then
        MNOTE[gw:$kind]="n/a (binary missing)"
        return 0
    fi
    start_slow_upstream "gw-$kind" || { MNOTE[gw:$kind]="n/a (slow upstream)"; return 0; }
    mkdir -p "$dir"
    start_gateway "$dir" "http://127.0.0.1:$UP_PORT/v1beta" CLIENT_TIMEOUT=600
    if [ -z "$GW_PORT" ]; then
        MNOTE[gw:$kind]="n/a (gateway did not start)"
        GW_FAILED=1
    else
        sleep 0.5
        if [ "$kind" = idle ]; then
            MEM_GW_IDLE=$(proc_kb "$GW_PID" VmRSS)
            MEM_GW_IDLE_ANON=$(proc_kb "$GW_PID" RssAnon)
        fi
        mem_measure gw "$kind" "$GW_PID" "$GW_PORT" "$2" "$3" "$4"
        [[ ${MNOTE[gw:$kind]:-} != *"server exited"* ]] || GW_FAILED=1
        stop_pid "$GW_PID"
    fi
    stop_pid "$UP_PID"
}

# mem_nginx KIND PATH BODY N: a fresh nginx pure proxy (nginx-proxy-mem.conf)
# in front of a fresh slow upstream.
mem_nginx() {
    local kind=$1
    start_slow_upstream "ngx-$kind" || { MNOTE[ngx:$kind]="n/a (slow upstream)"; return 0; }
    start_nginx "proxy-mem-$kind" "$BENCH_DIR/nginx-proxy-mem.conf" "$UP_PORT"
    sleep 0.5
    if [ "$kind" = idle ]; then
        MEM_NGX_IDLE=$(tree_kb "$NGINX_PID" VmRSS)
        MEM_NGX_IDLE_ANON=$(tree_kb "$NGINX_PID" RssAnon)
    fi
    mem_measure ngx "$kind" "$NGINX_PID" "$NGINX_PORT" "$2" "$3" "$4"
    stop_pid "$NGINX_PID"
    stop_pid "$UP_PID"
}

mb() { awk -v k="$1" 'BEGIN { printf "%.1f MB", k / 1024 }'; }

# pu_kb WHO:KIND: RSS growth per held connection in KB, empty if not measured.
pu_kb() {
    [ -n "${MN[$1]:-}" ] && [[ ${MNOTE[$1]:-} != n/a* ]] || return 0
    awk -v b="${MB[$1]}" -v a="${MA[$1]}" -v n="${MN[$1]}" 'BEGIN { printf "%.2f", (a - b) / n }'
}

# per_unit WHO:KIND: "2.31 KB (anon 2.20)", or why it is n/a.
per_unit() {
    local k=$1 pu
    pu=$(pu_kb "$k")
    if [ -n "$pu" ]; then
        awk -v p="$pu" -v b="${MBA[$k]}" -v a="${MAA[$k]}" -v n="${MN[$k]}" \
            'BEGIN { printf "%s KB (anon %.2f)", p, (a - b) / n }'
        [ -z "${MNOTE[$k]:-}" ] || echo -n "; ${MNOTE[$k]}"
    else
        echo -n "${MNOTE[$k]:-n/a}"
    fi
}

# mem_row TITLE KIND NGINX_KIND TARGET_KB|-
mem_row() {
    local title=$1 kind=$2 k=gw:$2 target=$4 pu n status=- before=- after=-
    pu=$(pu_kb "$k")
    n=${MN[$k]:-${MREQ[$kind]}}
    [ "$n" = "${MREQ[$kind]}" ] || n="$n of ${MREQ[$kind]}"
    if [ -n "$pu" ]; then
        before="$(mb "${MB[$k]}")"
        after="$(mb "${MA[$k]}")"
        [ "$target" = - ] ||
            status=$(awk -v p="$pu" -v t="$target" 'BEGIN { print (p <= t ? "ok" : "MISS") }')
    fi
    if [ "$target" = - ]; then target="(information)"; else target="<= $target KB"; fi
    echo "| $title | $n | $before | $after | $(per_unit "$k") | $(per_unit "ngx:$3") | $target | $status |"
}

mem_table() {
    local s=- idle=- ngx=-
    echo "| case | N | gateway RSS before | after | per unit, gateway | per unit, nginx pure proxy | target | status |"
    echo "|---|---:|---:|---:|---|---|---|---|"
    mem_row "(m1) idle keep-alive connections (after one GET /health)" idle idle 2.5
    mem_row "(m2) chat streams in flight (/v1/chat/completions, stream:true)" chat stream 32
    mem_row "(m3) native SSE relay streams in flight (:streamGenerateContent?alt=sse)" native stream -
    if is_num "${MEM_GW_IDLE:-}"; then
        idle="$(mb "$MEM_GW_IDLE") (anon $(mb "$MEM_GW_IDLE_ANON"))"
        s=$(awk -v k="$MEM_GW_IDLE" 'BEGIN { print (k <= 10240 ? "ok" : "MISS") }')
    fi
    is_num "${MEM_NGX_IDLE:-}" && ngx="$(mb "$MEM_NGX_IDLE") (anon $(mb "$MEM_NGX_IDLE_ANON")), master + workers"
    echo "| idle RSS of a fresh gateway (before any request) | - | $idle | - | - | $ngx | <= 10 MB | $s |"
}

# ev_row TITLE WHO:KIND TARGET_US|-: a row of the trickled-event CPU table.
ev_row() {
    local k=$2 status=- target=$3
    if ! is_num "${MEVU[$k]:-}"; then
        echo "| $1 | ${MN[$k]:-n/a} | n/a | n/a | n/a | - | - |"
        return 0
    fi
    [ "$target" = - ] || status=$(awk -v u="${MEVU[$k]}" -v t="$target" 'BEGIN { print (u <= t ? "ok" : "MISS") }')
    if [ "$target" = - ]; then target="(information)"; else target="<= $target us per event"; fi
    echo "| $1 | ${MN[$k]} | ${MEV[$k]} | ${MEVU[$k]} | ${MEVS[$k]} | $target | $status |"
}

# memory_bench: runs the memory cases and sets MEM_REPORT.
memory_bench() {
    local s0
    s0=$(date +%s)
    command -v node >/dev/null || {
        MEM_REPORT="## Memory"$'\n\n'"not measured: node not found (the memory cases use bench/memclient.js)"
        log "node not found: memory cases skipped"
        return 0
    }
    # Every descriptor counts: raise the soft limit as far as the hard one
    # allows (also for the servers started from here).
    raise_nofile
    MREQ[idle]=$MEM_IDLE
    MREQ[chat]=$MEM_STREAMS
    local cap_idle=$((MEM_NOFILE - 200)) cap_streams=$(((MEM_NOFILE - 200) / 2 / 100 * 100)) caps=
    if [ "$MEM_IDLE" -gt "$cap_idle" ]; then
        caps+="idle connections capped from $MEM_IDLE to $cap_idle; "
        MREQ[idle]=$cap_idle
    fi
    if [ "$MEM_STREAMS" -gt "$cap_streams" ]; then
        caps+="streams capped from $MEM_STREAMS to $cap_streams (a proxied stream holds two descriptors); "
        MREQ[chat]=$cap_streams
    fi
    MREQ[native]=${MREQ[chat]}
    [ -z "$caps" ] || log "open-files limit $MEM_NOFILE: ${caps%; }"
    local SSE_NATIVE="/v1beta/models/$MODEL:streamGenerateContent?alt=sse"
    mem_gateway idle /health "" "${MREQ[idle]}"
    mem_nginx idle /health "" "${MREQ[idle]}"
    mem_gateway chat /v1/chat/completions "$BENCH_DIR/req-chat-stream.json" "${MREQ[chat]}"
    mem_gateway native "$SSE_NATIVE" "$BENCH_DIR/req-native.json" "${MREQ[native]}"
    mem_nginx stream "$SSE_NATIVE" "$BENCH_DIR/req-native.json" "${MREQ[chat]}"
    MEM_REPORT=$(
        echo "## Memory"
        echo
        echo "$(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) CPUs, open-files limit $MEM_NOFILE, $(($(date +%s) - s0))s in all; VmRSS (RssAnon) before and after holding N connections at once, per unit = (after - before) / N"
        echo "gateway: ${BIN#"$ROOT"/} with CLIENT_TIMEOUT=600, one fresh process per case; nginx: nginx-proxy-mem.conf, master + workers summed"
        echo "streams: slow-upstream.js trickles one event per second per stream; the client reads them"
        [ -z "$caps" ] || echo "limits: ${caps%; }"
        echo
        mem_table
        echo
        echo "### CPU per trickled stream event"
        echo
        echo "While the streams above are held, each gets one event a second from slow-upstream.js, each in its own write, as from Google: the server's utime+stime over ${MEM_CPU_SECONDS}s / the events the upstream wrote in that time (each is read, translated for chat, and written to a client)."
        echo
        echo "| case | streams | events | CPU us per event | of which sys | target | status |"
        echo "|---|---:|---:|---:|---:|---|---|"
        ev_row "(m2) gateway, chat streams (translated)" gw:chat 4
        ev_row "(m3) gateway, native SSE relay" gw:native -
        ev_row "nginx pure proxy, native SSE" ngx:stream -
    )
}

if [ "$ONLY_MEMORY" = 1 ]; then
    memory_bench
    mkdir -p "$OUT_DIR"
    printf '# gemini-balance bench results (memory only)\n\n%s\n' "$MEM_REPORT" >"$OUT_DIR/results.md"
    echo
    printf '%s\n' "$MEM_REPORT"
    echo
    log "written to $OUT_DIR/results.md"
    [ -z "${GW_FAILED:-}" ] || die "the gateway failed (see above)"
    exit 0
fi

# the slowloris case holds BENCH_SLOWLORIS more connections in the server
# (and in node): raise the soft open-files limit before anything starts
[ "$SLOW_N" = 0 ] || raise_nofile

start_nginx fake-upstream "$BENCH_DIR/nginx-fake-upstream.conf"
FAKE_PORT=$NGINX_PORT
FAKE_PID=$NGINX_PID
start_nginx proxy "$BENCH_DIR/nginx-proxy.conf" "$FAKE_PORT"
PROXY_PORT=$NGINX_PORT
PROXY_PID=$NGINX_PID
log "fake upstream on 127.0.0.1:$FAKE_PORT, nginx proxy on 127.0.0.1:$PROXY_PORT"

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

# start_floor: builds bench/floor-relay.c and starts it in front of the fake
# upstream; sets FLOOR_PID and FLOOR_PORT (empty, with FLOOR_NOTE, when not).
start_floor() {
    local port try cc=${CC:-cc}
    FLOOR_PORT=
    FLOOR_PID=
    # shellcheck disable=SC2046 # pkg-config prints several words
    if ! "$cc" -std=c11 -D_GNU_SOURCE -O2 -o "$TMP/floor-relay" "$BENCH_DIR/floor-relay.c" \
        $(pkg-config --cflags --libs libevent 2>/dev/null || echo -levent) -lpthread 2>"$TMP/floor-build.log"; then
        FLOOR_NOTE="floor relay did not build"
        log "$FLOOR_NOTE: $(head -c 300 "$TMP/floor-build.log")"
        return 0
    fi
    for try in 1 2 3; do
        port=$(pick_port)
        "$TMP/floor-relay" "$port" "$FAKE_PORT" </dev/null >"$TMP/floor.log" 2>&1 &
        FLOOR_PID=$!
        if wait_port "$port" "$FLOOR_PID"; then
            PIDS+=("$FLOOR_PID")
            FLOOR_PORT=$port
            return 0
        fi
        kill -TERM "$FLOOR_PID" 2>/dev/null || true
        wait "$FLOOR_PID" 2>/dev/null || true
        log "floor relay did not come up on port $port (try $try): $(tail -n 3 "$TMP/floor.log")"
    done
    FLOOR_PID=
    FLOOR_NOTE="floor relay did not start"
}
start_floor

# ------------------------------------------------------------------- cases
NATIVE_BODY=$BENCH_DIR/req-native.json
GEN_PATH=/v1beta/models/$MODEL:generateContent
SSE_PATH="/v1beta/models/$MODEL:streamGenerateContent?alt=sse"

# SRV: pid whose CPU (with its children) a case's wrk runs are charged to.
declare -A URL BODY TITLE NOTE KIND SRV
def_case() { URL[$1]=$2; BODY[$1]=$3; TITLE[$1]=$4; KIND[$1]=$5; SRV[$1]=$6; NOTE[$1]=; }
def_case a "http://127.0.0.1:$FAKE_PORT$GEN_PATH" "$NATIVE_BODY" "nginx fake upstream direct" json "$FAKE_PID"
def_case b "http://127.0.0.1:$PROXY_PORT$GEN_PATH" "$NATIVE_BODY" "nginx pure proxy" json "$PROXY_PID"
def_case c "http://127.0.0.1:$GW_PORT/v1/chat/completions" "$BENCH_DIR/req-chat.json" \
    "gemini-balance chat (OpenAI)" json "$GW_PID"
def_case d "http://127.0.0.1:$GW_PORT/v1/chat/completions" "$BENCH_DIR/req-chat-stream.json" \
    "gemini-balance chat stream" sse "$GW_PID"
def_case e "http://127.0.0.1:$PROXY_PORT$SSE_PATH" "$NATIVE_BODY" "nginx proxy streaming" sse "$PROXY_PID"
def_case f "http://127.0.0.1:$GW_PORT$GEN_PATH" "$NATIVE_BODY" "gemini-balance native relay" json "$GW_PID"
def_case g "http://127.0.0.1:$GW_PORT/v1/chat/completions" "$BENCH_DIR/req-chat-stream-100.json" \
    "gemini-balance chat stream, 100 events" sse "$GW_PID"
def_case h "http://127.0.0.1:$FLOOR_PORT$GEN_PATH" "$NATIVE_BODY" \
    "libevent floor relay (no libcurl, no JSON)" json "$FLOOR_PID"
CASES="a b c d e f g h"
GW_CASES=" c d f g "

# check_case ID: one request with curl; sets NOTE[ID] to why it is n/a.
check_case() {
    local id=$1 code out=$TMP/check-$1.body
    if [[ $GW_CASES == *" $id "* && -z $GW_PORT ]]; then
        NOTE[$id]="n/a ($GW_NOTE)"
        return 0
    fi
    if [ "$id" = h ] && [ -z "$FLOOR_PORT" ]; then
        NOTE[$id]="n/a ($FLOOR_NOTE)"
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
# slowloris case: s<x> = case <x> with BENCH_SLOW_CLIENTS clients alone, S<x>
# the same while the trickler holds its connections (same URL, same server)
SLOW_CASES=
if [ "$SLOW_N" != 0 ]; then
    for id in c b; do
        for v in s S; do
            def_case "$v$id" "${URL[$id]}" "${BODY[$id]}" "${TITLE[$id]}" "${KIND[$id]}" "${SRV[$id]}"
            NOTE[$v$id]=${NOTE[$id]}
        done
        SLOW_CASES+="$id "
    done
    command -v node >/dev/null || {
        for id in $SLOW_CASES; do NOTE[S$id]="n/a (node not found)"; done
        log "node not found: the slowloris runs are skipped"
    }
fi
# The nginx cases are the baseline: if they fail the bench itself is broken.
for id in a b e; do
    [ -z "${NOTE[$id]}" ] || die "baseline case $id (${TITLE[$id]}) failed: ${NOTE[$id]}"
done
[ "$(grep -c '^data: ' "$TMP/check-e.body")" -eq 10 ] || die "fake upstream SSE body is not 10 events"
# the gateway's chunks: one per event, plus the closing [DONE]
if [ -z "${NOTE[g]}" ] && [ "$(grep -c '^data: ' "$TMP/check-g.body")" -ne 101 ]; then
    NOTE[g]="n/a (not 100 events)"
    log "case g: $(grep -c '^data: ' "$TMP/check-g.body") data lines, want 101: not benchmarked"
fi

# ---------------------------------------------------------------------- wrk
rm -rf "$OUT_DIR/raw"
mkdir -p "$OUT_DIR/raw"
WRK_TIMEOUT=$((DURATION + WARMUP + 30))

# run_wrk ID CONC THREADS ROUND: one measured wrk run (after a warm-up in
# round 1); appends req/s, p50, p99 and CPU microseconds per request of the
# case's server (cpu_ticks right before and after the measured run / the
# requests wrk completed) to the case's lists, adds up errors.
declare -A L_RPS L_P50 L_P99 L_CPU L_SYS N2 SE FAILED
run_wrk() {
    local id=$1 c=$2 t=$3 r=$4 k=$1:$2 raw=$OUT_DIR/raw/$1-c$2-r$4.txt line n2 se
    local srv=${SRV[$1]:-} t0= t1= nreq u0 s0 u1 s1
    [ -z "${NOTE[$id]}" ] || return 0
    log "case $id c$c round $r: ${TITLE[$id]} (${DURATION}s)"
    if [ "$WARMUP" -gt 0 ] && [ "$r" = 1 ]; then
        BENCH_BODY_FILE=${BODY[$id]} BENCH_TOKEN=$TOKEN timeout "$WRK_TIMEOUT" \
            wrk -t"$t" -c"$c" -d"${WARMUP}s" -s "$BENCH_DIR/wrk.lua" "${URL[$id]}" \
            >/dev/null 2>&1 || true
    fi
    [ -z "$srv" ] || t0=$(cpu_ticks "$srv")
    BENCH_BODY_FILE=${BODY[$id]} BENCH_TOKEN=$TOKEN timeout "$WRK_TIMEOUT" \
        wrk -t"$t" -c"$c" -d"${DURATION}s" --latency -s "$BENCH_DIR/wrk.lua" "${URL[$id]}" \
        >"$raw" 2>&1 || true
    [ -z "$srv" ] || t1=$(cpu_ticks "$srv")
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
    nreq=$(sed -n 's/.* requests=\([0-9]*\).*/\1/p' <<<"$line")
    if [ -n "$t0" ] && [ -n "$t1" ] && [ "${nreq:-0}" -gt 0 ] && alive "$srv"; then
        read -r u0 s0 <<<"$t0"
        read -r u1 s1 <<<"$t1"
        L_CPU[$k]+="$(awk -v d=$((u1 + s1 - u0 - s0)) -v hz="$CLK_TCK" -v n="$nreq" \
            'BEGIN { printf "%.2f", d * 1e6 / hz / n }') "
        L_SYS[$k]+="$(awk -v d=$((s1 - s0)) -v hz="$CLK_TCK" -v n="$nreq" \
            'BEGIN { printf "%.2f", d * 1e6 / hz / n }') "
    fi
}

# slow_run ID ROUND: the slowloris pair of case ID (c or b): wrk with
# BENCH_SLOW_CLIENTS connections alone (case sID), then again (case SID) while
# bench/slowloris.js holds BENCH_SLOWLORIS trickling connections to the same
# server.  The trickler reports how many are open once a second; ss counts
# the server's established connections from the trickler's addresses too.
declare -A SL_MIN SL_MAX SS_MIN SS_MAX SL_CLOSED SL_NOTE
slow_run() {
    local id=$1 r=$2 t=$THREADS port st tp sp line samples ss_file
    [ "$t" -le "$SLOW_CLIENTS" ] || t=$SLOW_CLIENTS
    run_wrk "s$id" "$SLOW_CLIENTS" "$t" "$r"
    [ -z "${NOTE[S$id]}" ] || return 0
    port=${URL[$id]#http://127.0.0.1:}
    port=${port%%/*}
    st=$TMP/slowloris-$id-r$r.status
    ss_file=$TMP/slowloris-$id-r$r.ss
    log "slowloris $id round $r: opening $SLOW_N trickling connections to 127.0.0.1:$port"
    node "$BENCH_DIR/slowloris.js" --port "$port" --n "$SLOW_N" --status "$st" \
        --src "$SLOW_SRC" --max-seconds $((WRK_TIMEOUT + 60)) \
        </dev/null >"$TMP/slowloris-$id-r$r.log" 2>&1 &
    tp=$!
    PIDS+=("$tp")
    for _ in $(seq 200); do
        grep -q '^READY' "$st" 2>/dev/null && break
        alive "$tp" || break
        sleep 0.2
    done
    line=$(grep '^READY' "$st" 2>/dev/null || true)
    if [ -z "$line" ]; then
        SL_NOTE[$id]="trickler did not start: $(tail -n 2 "$TMP/slowloris-$id-r$r.log" | tr '\n' ' ')"
        log "slowloris $id: ${SL_NOTE[$id]}"
        stop_pid "$tp"
        return 0
    fi
    log "slowloris $id: $line"
    (
        exec >"$ss_file"
        while :; do
            ss -Htn state established "( sport = :$port and ( $SLOW_SS_DST ) )" 2>/dev/null | wc -l
            sleep 1
        done
    ) &
    sp=$!
    PIDS+=("$sp")
    run_wrk "S$id" "$SLOW_CLIENTS" "$t" "$r"
    stop_pid "$sp"
    stop_pid "$tp"
    alive "${SRV[$id]}" || { SL_NOTE[$id]="the server exited"; [ "$id" = b ] || GW_FAILED=1; }
    # open connections: trickler samples, and ss samples (server side)
    samples=$(sed -n 's/^SAMPLE .* open=\([0-9]*\).*/\1/p' "$st")
    samples+=" $(sed -n 's/.* open=\([0-9]*\).*/\1/p' <<<"$line")"
    minmax SL_MIN SL_MAX "$id" "$samples"
    command -v ss >/dev/null && minmax SS_MIN SS_MAX "$id" "$(cat "$ss_file" 2>/dev/null)"
    line=$(grep '^END' "$st" 2>/dev/null || true)
    SL_CLOSED[$id]=$((${SL_CLOSED[$id]:-0} + $(sed -n 's/.* closed=\([0-9]*\).*/\1/p' <<<"$line" | grep . || echo 0)))
    log "slowloris $id: ${line:-no END line}; open min ${SL_MIN[$id]:-?} max ${SL_MAX[$id]:-?} (ss: ${SS_MIN[$id]:-?}-${SS_MAX[$id]:-?})"
}

# minmax MINVAR MAXVAR KEY "numbers...": folds the numbers into
# MINVAR[KEY] / MAXVAR[KEY] (kept over rounds).
minmax() {
    local -n lo=$1 hi=$2
    local v
    for v in $4; do
        [[ $v =~ ^[0-9]+$ ]] || continue
        [ -n "${lo[$3]:-}" ] && [ "${lo[$3]}" -le "$v" ] || lo[$3]=$v
        [ -n "${hi[$3]:-}" ] && [ "${hi[$3]}" -ge "$v" ] || hi[$3]=$v
    done
}

# median of a list of whole numbers (lower middle for an even count)
median() { tr ' ' '\n' <<<"$1" | grep . | sort -n | awk '{ v[NR] = $1 } END { if (NR) print v[int((NR + 1) / 2)] }'; }

SLOW_SRC=127.0.0.2,127.0.0.3
SLOW_SS_DST="dst 127.0.0.2 or dst 127.0.0.3"
NRUNS=$(((8 * $(wc -w <<<"$CONCS") + 2 + 2 * $(wc -w <<<"$SLOW_CASES")) * REPEAT))
log "up to $NRUNS wrk runs of ${DURATION}s (+${WARMUP}s warm-up in round 1): about $((NRUNS * DURATION + (NRUNS / REPEAT) * WARMUP))s"
START=$(date +%s)
for r in $(seq "$REPEAT"); do
    for c in $CONCS; do
        t=$THREADS
        [ "$t" -le "$c" ] || t=$c
        for id in $CASES; do run_wrk "$id" "$c" "$t" "$r"; done
    done
    for id in b c; do run_wrk "$id" 1 1 "$r"; done
    for id in $SLOW_CASES; do slow_run "$id" "$r"; done
done

declare -A RPS P50 P99 ERR CPUR CPUS
for id in $CASES $(for x in $SLOW_CASES; do echo "s$x S$x"; done); do
    for c in $CONCS 1 $SLOW_CLIENTS; do
        k=$id:$c
        [ -z "${RPS[$k]:-}" ] || continue
        [ -z "${L_CPU[$k]:-}" ] || CPUR[$k]=$(median "${L_CPU[$k]}")
        [ -z "${L_SYS[$k]:-}" ] || CPUS[$k]=$(median "${L_SYS[$k]}")
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
ms() { is_num "${1:-}" && awk -v u="$1" 'BEGIN { printf "%.3f", u / 1000 }' || echo "-"; }

# ratio ID BASE CONC TARGET: "0.53x (>= 0.50 ok)"; TARGET 0: none
ratio() {
    local x=${RPS[$1:$3]:-} y=${RPS[$2:$3]:-}
    if is_num "$x" && is_num "$y"; then
        awk -v x="$x" -v y="$y" -v t="$4" -v n="$1/$2" 'BEGIN {
            r = x / y
            if (t > 0) printf "%s %.2fx (target >= %.2f: %s)", n, r, t, (r >= t ? "ok" : "MISS")
            else printf "%s %.2fx (no target)", n, r }'
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
            h) r=$(ratio h b "$c" 0) ;;
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

# cpu_row ID CONC: one row of the CPU table.
cpu_row() {
    local id=$1 c=$2 k=$1:$2 us=${CPUR[$1:$2]:-} sys=${CPUS[$1:$2]:--} ev=- add=- target=- status=-
    if ! is_num "$us"; then
        us=${NOTE[$id]:-${FAILED[$k]:-n/a}}
        [[ $us == n/a* || $us == error* ]] || us="n/a ($us)"
    fi
    if is_num "$us" && [ "${KIND[$id]}" = sse ] && [ "$id" != g ]; then
        ev=$(awk -v u="$us" 'BEGIN { printf "%.2f", u / 10 }')
    fi
    if [ "$id" = g ] && is_num "$us"; then
        ev=$(awk -v u="$us" 'BEGIN { printf "%.2f", u / 100 }')
    fi
    if [ "$id" = d ] && is_num "$us" && is_num "${CPUR[g:$c]:-}"; then
        add=$(awk -v d="$us" -v g="${CPUR[g:$c]}" 'BEGIN { printf "%.2f", (g - d) / 90 }')
    fi
    case $id in
    h)
        is_num "$us" && is_num "${CPUR[f:$c]:-}" &&
            status=$(awk -v h="$us" -v f="${CPUR[f:$c]}" 'BEGIN { printf "floor; (f) adds %+.0f us over it", f - h }')
        ;;
    c)
        target="<= 40 us per request"
        is_num "$us" && status=$(awk -v u="$us" 'BEGIN { print (u <= 40 ? "ok" : "MISS") }')
        ;;
    d)
        target="<= 4 us per event"
        is_num "$ev" && status="whole / 10: $(awk -v u="$ev" 'BEGIN { print (u <= 4 ? "ok" : "MISS") }')"
        is_num "$add" && status+="; added: $(awk -v u="$add" 'BEGIN { print (u <= 4 ? "ok" : "MISS") }')"
        ;;
    esac
    echo "| ($id) ${TITLE[$id]} | $c | $us | $sys | $ev | $add | $target | $status |"
}

cpu_table() {
    local c id
    echo "| case | conc | CPU us per request | of which sys | per upstream event, whole / events | added per event, (g - d) / 90 | target | status |"
    echo "|---|---:|---:|---:|---:|---:|---|---|"
    for c in $CONCS; do
        for id in $CASES; do cpu_row "$id" "$c"; done
    done
    for id in b c; do cpu_row "$id" 1; done
}

# slow_cells ID: the "req/s | p50 | p99 | errors | CPU" cells of a slowloris row
slow_cells() {
    local k=$1:$SLOW_CLIENTS
    echo -n "${RPS[$k]:-} | $(ms "${P50[$k]:-}") | $(ms "${P99[$k]:-}") | ${ERR[$k]:-} | ${CPUR[$k]:--}"
}

slow_table() {
    local id k0 k1 open vs
    echo "| case | trickling connections open | req/s | p50 ms | p99 ms | errors | CPU us per request | with / without |"
    echo "|---|---|---:|---:|---:|---|---:|---|"
    for id in $SLOW_CASES; do
        k0=s$id:$SLOW_CLIENTS
        k1=S$id:$SLOW_CLIENTS
        echo "| ($id) ${TITLE[$id]}, without slowloris | 0 | $(slow_cells "s$id") | |"
        if [ -n "${SL_NOTE[$id]:-}" ]; then
            open="n/a (${SL_NOTE[$id]})"
        elif [ -n "${SL_MIN[$id]:-}" ]; then
            open="${SL_MIN[$id]}-${SL_MAX[$id]} of $SLOW_N"
            [ -z "${SS_MIN[$id]:-}" ] || open+=" (ss, server side: ${SS_MIN[$id]}-${SS_MAX[$id]})"
            open+="; ${SL_CLOSED[$id]:-0} closed by the server"
        else
            open=${NOTE[S$id]:-n/a}
        fi
        vs=
        if is_num "${RPS[$k0]:-}" && is_num "${RPS[$k1]:-}" && is_num "${P99[$k0]:-}" && is_num "${P99[$k1]:-}"; then
            vs=$(awk -v r0="${RPS[$k0]}" -v r1="${RPS[$k1]}" -v a0="${P50[$k0]}" -v a1="${P50[$k1]}" \
                -v b0="${P99[$k0]}" -v b1="${P99[$k1]}" 'BEGIN {
                printf "req/s %.2fx, p50 %.2fx, p99 %.2fx", r1 / r0, (a0 ? a1 / a0 : 0), (b0 ? b1 / b0 : 0) }')
        fi
        echo "| ($id) ${TITLE[$id]}, with $SLOW_N slowloris | $open | $(slow_cells "S$id") | $vs |"
    done
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
    echo
    echo "## CPU per request"
    echo
    echo "utime+stime of the case's server (gateway: its process, all threads; nginx: master + workers) over the measured wrk run / requests completed, median of $REPEAT round(s); clock tick $((1000000 / CLK_TCK)) us; per upstream event = per request / its events (10; g: 100), and what one event adds = (g - d) / 90"
    echo
    cpu_table
    if [ -n "$SLOW_CASES" ]; then
        echo
        echo "## Slowloris"
        echo
        echo "wrk -c$SLOW_CLIENTS, ${DURATION}s, alone and while bench/slowloris.js holds $SLOW_N connections to the same server, each trickling one byte per second of a request head that never ends (closed ones reopened); open = min-max of once-a-second samples; median of $REPEAT round(s)"
        echo
        slow_table
    fi
)
mkdir -p "$OUT_DIR"
printf '%s\n' "$REPORT" >"$OUT_DIR/results.md"
echo
printf '%s\n' "$REPORT"
echo
if [ "$MEMORY" = 1 ]; then
    # the throughput processes are done: free their memory and descriptors
    for pid in "${PIDS[@]}"; do stop_pid "$pid"; done
    memory_bench
    printf '\n%s\n' "$MEM_REPORT" >>"$OUT_DIR/results.md"
    printf '%s\n\n' "$MEM_REPORT"
fi
log "written to $OUT_DIR/results.md (raw wrk output in $OUT_DIR/raw/)"
[ -z "${GW_FAILED:-}" ] || die "the gateway failed (see above)"
