#!/usr/bin/env bash
# fuzz.sh - build the libFuzzer targets of tests/fuzz/ with clang (ASan +
# UBSan), seed their corpora from the recorded fixtures and run each one for
# FUZZ_SECONDS; exit non-zero when any target crashes, leaks, hangs or breaks
# an invariant (STYLE.md rules 21 and 24).
#
#   scripts/fuzz.sh                      every target, 60 s each, one at a time
#   FUZZ_SECONDS=600 FUZZ_JOBS=2 scripts/fuzz.sh
#   FUZZ_TARGETS="sse router" scripts/fuzz.sh
#   FUZZ_SECONDS=0 scripts/fuzz.sh       build and seed only
#
# Environment:
#   FUZZ_SECONDS   seconds per target (-max_total_time), default 60; 0: no run
#   FUZZ_TARGETS   targets to run (names of tests/fuzz/<name>_fuzz.c), default all
#   FUZZ_JOBS      targets run at the same time, default 1 (one per core is the most)
#   FUZZ_TIMEOUT   seconds one input may take before it counts as a hang, default 10
#   FUZZ_ARGS      more libFuzzer flags, e.g. "-max_len=65536 -only_ascii=1"
#   FUZZ_CC        clang binary, default clang
#   FUZZ_CFLAGS    more compiler flags for the targets (e.g. -DFOO to switch off
#                  the check of a reported, not yet fixed bug while fuzzing on)
#   FUZZ_BUILD     output directory, default build/fuzz
#   GB_FIXTURES    recorded bodies, default ../shared/fixtures
#
# Layout under FUZZ_BUILD: obj/ (src compiled with coverage instrumentation),
# libgb-fuzz.a (the linker takes from it only the objects a target needs),
# <name>_fuzz (the binaries), corpus/<name>/ (seeds + what libFuzzer found; kept
# between runs, so later runs start where earlier ones stopped), crashes/<name>/
# (crash-*, leak-*, timeout-* inputs), logs/<name>.log.
#
# Replay one input:   build/fuzz/sse_fuzz build/fuzz/crashes/sse/crash-<sha1>
# Minimise it:        build/fuzz/sse_fuzz -minimize_crash=1 -runs=100000 <file>
set -euo pipefail
cd "$(dirname "$0")/.."

FUZZ_SECONDS=${FUZZ_SECONDS:-60}
FUZZ_TARGETS=${FUZZ_TARGETS:-"sse translate_request translate_response config router"}
FUZZ_JOBS=${FUZZ_JOBS:-1}
FUZZ_TIMEOUT=${FUZZ_TIMEOUT:-10}
FUZZ_ARGS=${FUZZ_ARGS:-}
CC=${FUZZ_CC:-clang}
OUT=${FUZZ_BUILD:-build/fuzz}
FIX=${GB_FIXTURES:-../shared/fixtures}
# the same libraries as the Makefile (its PKGS line), so the two never drift
PKGS=$(sed -n 's/^PKGS *:= *//p' Makefile)
[ -n "$PKGS" ] || PKGS="libevent libevent_pthreads libcurl jansson sqlite3 libcrypto"

SAN="-fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer"
WARN="-Wall -Wextra -Werror -Wshadow -Wformat=2 -Wstrict-prototypes -Wmissing-prototypes -Wvla"
CFLAGS="-std=c11 -D_GNU_SOURCE -O1 -g $WARN $SAN -Isrc $(pkg-config --cflags $PKGS)"
LIBS="$(pkg-config --libs $PKGS) -lpthread -lm"

die() { echo "fuzz: $*" >&2; exit 1; }

# ---- toolchain -------------------------------------------------------------
command -v "$CC" >/dev/null || die "$CC not found (Debian: apt-get install clang)"
mkdir -p "$OUT/obj" "$OUT/gen" "$OUT/logs"
probe=$OUT/gen/probe.c
printf '#include <stddef.h>\n#include <stdint.h>\nint LLVMFuzzerTestOneInput(const uint8_t *d, size_t n);\nint LLVMFuzzerTestOneInput(const uint8_t *d, size_t n) { (void)d; (void)n; return 0; }\n' >"$probe"
if ! "$CC" -fsanitize=fuzzer,address,undefined "$probe" -o "$OUT/gen/probe" 2>"$OUT/logs/probe.log"; then
  ver=$("$CC" -dumpversion | cut -d. -f1)
  die "clang cannot link libFuzzer (libclang_rt.fuzzer missing): apt-get install libclang-rt-$ver-dev (see $OUT/logs/probe.log)"
fi

# ---- src objects, rebuilt when the .c or a header it includes changed -------
stale() { # stale OBJ SRC: 0 when OBJ must be rebuilt
  local o=$1 s=$2 d=${1%.o}.d f
  [ -f "$o" ] && [ -f "$d" ] || return 0
  [ "$s" -nt "$o" ] && return 0
  for f in $(sed -e 's/^[^:]*://' -e 's/\\$//' "$d"); do
    [ -e "$f" ] || return 0
    [ "$f" -nt "$o" ] && return 0
  done
  return 1
}

objs=()
for s in $(ls src/*.c src/*/*.c | grep -v '^src/main\.c$'); do
  o=$OUT/obj/${s%.c}.o
  objs+=("$o")
  if stale "$o" "$s"; then
    mkdir -p "$(dirname "$o")"
    echo "fuzz: cc $s" >&2
    # fuzzer-no-link: coverage counters for libFuzzer, no main()
    $CC $CFLAGS -fsanitize=fuzzer-no-link -MMD -MP -c "$s" -o "$o"
  fi
done
if [ ! -f "$OUT/gen/admin_page.o" ] || [ src/admin/page.html -nt "$OUT/gen/admin_page.o" ]; then
  scripts/embed.sh gb_admin_page src/admin/page.html >"$OUT/gen/admin_page.c"
  $CC -std=c11 -O1 -c "$OUT/gen/admin_page.c" -o "$OUT/gen/admin_page.o"
fi
objs+=("$OUT/gen/admin_page.o")
rm -f "$OUT/libgb-fuzz.a"
ar rcs "$OUT/libgb-fuzz.a" "${objs[@]}"

# ---- targets ----------------------------------------------------------------
for t in $FUZZ_TARGETS; do
  [ -f "tests/fuzz/${t}_fuzz.c" ] || die "no target tests/fuzz/${t}_fuzz.c"
  echo "fuzz: link ${t}_fuzz" >&2
  # shellcheck disable=SC2086
  $CC $CFLAGS ${FUZZ_CFLAGS:-} -fsanitize=fuzzer -Itests/fuzz "tests/fuzz/${t}_fuzz.c" "$OUT/libgb-fuzz.a" \
    $LIBS -o "$OUT/${t}_fuzz"
done

# ---- seed corpora -------------------------------------------------------------
# Seeds are copied under their fixture names (cp -n: never over what libFuzzer
# added).  A missing fixtures directory only leaves the corpora thinner.
seed() { # seed TARGET FILE...
  local t=$1 f
  shift
  mkdir -p "$OUT/corpus/$t"
  for f in "$@"; do
    [ -f "$f" ] && cp -n "$f" "$OUT/corpus/$t/seed-$(basename "$f")"
  done
  return 0
}
seed_text() { # seed_text TARGET NAME TEXT (printf %b escapes)
  mkdir -p "$OUT/corpus/$1"
  printf '%b' "$3" >"$OUT/corpus/$1/seed-$2"
}
shopt -s nullglob
[ -d "$FIX" ] || echo "fuzz: no fixtures at $FIX: corpora get only the built-in seeds" >&2

seed sse "$FIX"/gemini/*.sse "$FIX"/openai/*.sse
seed_text sse lf 'data: {"a":1}\n\ndata: x\ndata:  y\n\n'
seed_text sse cr 'data:a\rdata\r\r:comment\revent: e\rid: 1\rretry: 5\rdata: b\r\r'
seed_text sse crlf-split ': ping\r\n\r\ndata: {"candidates":[]}\r\n\r\ndata: tail'
seed_text sse fields 'event: message\nid: 7\ndat: no\nData: no\ndatax: no\ndata\n\ndata:\n\n'

seed translate_request "$FIX"/openai/*.request.json "$FIX"/gemini/*.request.json
seed_text translate_request chat-parts '{"model":"gemini-2.5-flash-search","stream":true,"stream_options":{"include_usage":true},"n":2,"temperature":0.5,"top_p":1,"max_tokens":10,"max_completion_tokens":20,"stop":["x","y"],"presence_penalty":0,"frequency_penalty":1,"seed":7,"reasoning_effort":"low","messages":[{"role":"system","content":"s"},{"role":"developer","content":[{"type":"text","text":"d"}]},{"role":"user","content":[{"type":"text","text":"hi"},{"type":"image_url","image_url":{"url":"data:image/png;base64,iVBORw0KGgo="}},{"type":"image_url","image_url":{"url":"https://example.com/a.png"}},{"type":"input_audio","input_audio":{"data":"UklGRg==","format":"wav"}},{"type":"file","file":{"filename":"a.pdf","file_data":"JVBERi0="}}]},{"role":"assistant","content":"ok","tool_calls":[{"id":"c1","type":"function","function":{"name":"f","arguments":"{\\"a\\":1}"},"extra_content":{"google":{"thought_signature":"sig"}}}]},{"role":"tool","tool_call_id":"c1","content":"{\\"r\\":2}"},{"role":"tool","tool_call_id":"c1","content":"plain"}],"tools":[{"type":"function","function":{"name":"f","description":"d","parameters":{"type":"object","properties":{"a":{"type":["integer","null"]},"b":{"$ref":"#/$defs/B"}},"required":["a","zz"],"$defs":{"B":{"anyOf":[{"type":"string","enum":["x",1,true,null]},{"type":"null"}]}}}}}],"tool_choice":{"type":"function","function":{"name":"f"}},"response_format":{"type":"json_schema","json_schema":{"name":"n","schema":{"type":"object","properties":{"x":{"type":"array"}},"additionalProperties":false}}}}'
seed_text translate_request gemini3 '{"model":"gemini-3-pro-preview","reasoning_effort":"high","tool_choice":"required","messages":[{"role":"user","content":"q"},{"role":"assistant","content":null,"tool_calls":[{"id":"a","type":"function","function":{"name":"g","arguments":"{}"}}]},{"role":"tool","tool_call_id":"a","content":"[1,2]"}],"tools":[{"type":"function","function":{"name":"g"}}]}'
seed_text translate_request plain '{"model":"gemini-2.5-flash","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"system","content":"s"},{"role":"user","content":"hi \\u00e9\\n"},{"role":"assistant","content":""},{"content":"q","role":"user"},{"role":"developer","content":""}]}'
seed_text translate_request system-only '{ "messages" : [ {"role":"developer","content":"a"}, {"role":"system","content":"b"} ], "model" : "models/gemini-2.0-flash" }'
seed_text translate_request embeddings '{"model":"models/text-embedding-004","input":["a","b","c"],"dimensions":8,"encoding_format":"base64","user":"u"}'
seed_text translate_request schema '{"$schema":"x","type":"object","title":"T","properties":{"n":{"$ref":"#"},"l":{"type":"array","items":[{"type":"number","format":"float","minimum":0}],"minItems":1},"o":{"oneOf":[{"type":"string","format":"date-time","pattern":"^a"},{"type":"integer","format":"int64"}]},"c":{"const":3},"m":{"allOf":[{"properties":{"p":{"type":"boolean"}},"required":["p"]},{"description":"d"}]}},"propertyOrdering":["n","zz"],"definitions":{"D":{"type":"string"}}}'

seed translate_response "$FIX"/gemini/*.sse $(ls "$FIX"/gemini/*.json 2>/dev/null | grep -v '\.request\.json$' || true)
seed_text translate_response blocked '{"promptFeedback":{"blockReason":"SAFETY"},"usageMetadata":{"promptTokenCount":3,"totalTokenCount":3}}'
seed_text translate_response multi 'data: {"candidates":[{"index":1,"content":{"parts":[{"text":"a","thought":true},{"executableCode":{"language":"PYTHON","code":"print(1)\\n"}},{"codeExecutionResult":{"outcome":"OUTCOME_FAILED","output":"x"}},{"functionCall":{"name":"f","args":{"a":1}},"thoughtSignature":"s"}]},"groundingMetadata":{"groundingChunks":[{"web":{"uri":"https://a","title":"A"}}]}}]}\ndata: {"candidates":[{"index":1,"finishReason":"STOP"}],"usageMetadata":{"promptTokenCount":1,"candidatesTokenCount":2,"thoughtsTokenCount":3,"cachedContentTokenCount":1}}\n'

seed config .env.example
cat >"$OUT/corpus/config/seed-quoting" <<'ENV'
export ALLOWED_TOKENS="t1,t2"
API_KEYS=["k1", "k2"]
# comment
  BASE_URL = https://x.example/v1/// # trailing
AUTH_TOKEN='lit "q" #x'
PORT=0
WORKERS=4
SAFETY_SETTINGS=[]
THINKING_BUDGET_MAP={"gemini-2.5-flash":1024,"m":-1}
LOG_LEVEL=debug
LOG_FORMAT=json
KEY_STRATEGY=random
MAX_REQUEST_BYTES=1024
PROXY="http://p\n\"q\\"
SHOW_SEARCH_LINK=off
ENV
seed_text config list-only ' a , b,,c ,'

mkdir -p "$OUT/corpus/router"
i=0
for p in / "" /health /v1/chat/completions /v1/chat/completions/ "//v1//models?x=1" \
         "/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse&key=k" \
         /v1/models/gemini-2.5-flash /hf/v1/embeddings /v1beta/openai/chat/completions \
         "/admin/api/keys#frag" /metrics "///" "/a//b///c////" "?q" "#f" "http://host/v1/models" "*"; do
  printf '%s' "$p" >"$OUT/corpus/router/seed-path-$i"
  i=$((i + 1))
done

# ---- run ------------------------------------------------------------------------
[ "$FUZZ_SECONDS" -gt 0 ] || { echo "fuzz: built in $OUT (FUZZ_SECONDS=0: not run)"; exit 0; }

run_one() { # run_one TARGET: runs it, leaves the log, returns its status
  local t=$1 dict=()
  mkdir -p "$OUT/crashes/$t"
  [ -f "tests/fuzz/$t.dict" ] && dict=("-dict=tests/fuzz/$t.dict")
  # shellcheck disable=SC2086
  "$OUT/${t}_fuzz" -max_total_time="$FUZZ_SECONDS" -timeout="$FUZZ_TIMEOUT" \
    -print_final_stats=1 -artifact_prefix="$OUT/crashes/$t/" "${dict[@]}" $FUZZ_ARGS \
    "$OUT/corpus/$t" >"$OUT/logs/$t.log" 2>&1
}

report() { # report TARGET STATUS: one summary line (and the crash when there is one)
  local t=$1 st=$2 log=$OUT/logs/$1.log execs rate cov ft corp
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
  cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | cut -d' ' -f2 || true)
  ft=$(grep -o 'ft: [0-9]*' "$log" | tail -1 | cut -d' ' -f2 || true)
  corp=$(grep -o 'corp: [0-9]*' "$log" | tail -1 | cut -d' ' -f2 || true)
  printf 'fuzz: %-20s %s  execs %s  exec/s %s  cov %s  ft %s  corpus %s\n' "$t" \
    "$([ "$st" -eq 0 ] && echo ok || echo FAILED)" "${execs:-?}" "${rate:-?}" "${cov:-?}" \
    "${ft:-?}" "${corp:-?}"
  if [ "$st" -ne 0 ]; then
    grep -E 'ERROR: |invariant broken|SUMMARY: |Test unit written to' "$log" | head -20 |
      sed 's/^/fuzz:   /' || true
    echo "fuzz:   full log: $log"
  fi
}

fail=0
set -- $FUZZ_TARGETS
while [ $# -gt 0 ]; do
  pids=() names=()
  for _ in $(seq 1 "$FUZZ_JOBS"); do
    [ $# -gt 0 ] || break
    echo "fuzz: run $1 for ${FUZZ_SECONDS}s" >&2
    run_one "$1" &
    pids+=($!) names+=("$1")
    shift
  done
  for k in "${!pids[@]}"; do
    st=0
    wait "${pids[$k]}" || st=$?
    report "${names[$k]}" "$st"
    [ "$st" -eq 0 ] || fail=1
  done
done
exit $fail
