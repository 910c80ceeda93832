# gemini-balance - plain make + pkg-config (STYLE.md rule 20).
#
#   make run        install what is missing, build, write .env on first run, start
#   make test       install what is missing, then: build, unit + end-to-end
#                   tests; the same under ASan + UBSan (build-san); every
#                   libFuzzer target for TEST_FUZZ_SECONDS (build/fuzz-ci).
#                   Prints each phase's time; about 8 min on 2 cores.
#   make demo       fake Gemini upstream + gateway wired to it, no real key needed
#   make sanitize   every test under ASan + UBSan (the second phase of make test)
#   make valgrind   end-to-end suites with the gateway under valgrind memcheck
#   make fuzz       libFuzzer targets (FUZZ_SECONDS each)
#   make bench      nginx direct / nginx proxy / gemini-balance, side by side
#   make format / format-check

BUILD    ?= build
CC       ?= cc
PKGS     := libevent libevent_pthreads libcurl jansson sqlite3 nettle hiredis libssh2
WARN     := -Wall -Wextra -Werror -Wshadow -Wformat=2 -Wstrict-prototypes \
            -Wmissing-prototypes -Wvla
OPT      ?= -O2 -g
CFLAGS   += -std=c11 -D_GNU_SOURCE $(OPT) $(WARN) -Isrc $(SAN)
LDFLAGS  += $(SAN)
PKG_CFLAGS = $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   = $(shell pkg-config --libs $(PKGS) 2>/dev/null) -lpthread -lm
# mimalloc serves every malloc of the gateway binary (first among its
# libraries, so libcurl's, jansson's and libevent's calls resolve to it too):
# ~12-15% fewer instructions per request than glibc's malloc and less memory
# per stream (docs/BENCHMARKS.md).  Not under sanitizers or valgrind, which
# bring their own allocator, nor in unit tests and fuzz targets.
MALLOC_LIBS ?= $(if $(SAN),,-lmimalloc)
# The gateway binary takes the libraries only it uses in statically (idle
# RSS, issue 6): a shared library costs its relocations, symbol tables and
# whole 64 KB windows of code and data however little of it runs, while
# linked in only the objects used are there.  libcurl needs libssh2, and
# libssh2 OpenSSL's libcrypto: shared, libcrypto.so alone was 1.4 MB of
# resident relocations and symbol tables at start-up; linked in, only the
# parts libssh2 refers to are there, never initialised (main.c).  What
# libcurl loads itself (GnuTLS, nghttp2, Kerberos, LDAP, ...) stays shared.
# Unit tests and fuzz targets keep linking everything shared (PKG_LIBS).
BIN_STATIC_LIBS := -levent_extra -levent_pthreads -levent_core -ljansson -lhiredis -lsqlite3 \
                   -lcurl-gnutls -lssh2 -lcrypto
BIN_SHARED_LIBS  = $(filter-out -lcurl -lssh2,$(shell pkg-config --static --libs-only-l libcurl \
                   2>/dev/null)) -lnettle -lpthread -lm -ldl
# packed relative relocations (DT_RELR): a few KB of table instead of 24
# bytes read per relocation at start-up
BIN_LDFLAGS := -Wl,-z,pack-relative-relocs -Wl,--as-needed

SRCS      := $(sort $(wildcard src/*.c src/*/*.c))
LIB_SRCS  := $(filter-out src/main.c,$(SRCS))
LIB_OBJS  := $(LIB_SRCS:%.c=$(BUILD)/%.o) $(BUILD)/gen/admin_page.o
TEST_SRCS := $(sort $(wildcard tests/unit/*/*_test.c))
TEST_BINS := $(TEST_SRCS:tests/unit/%_test.c=$(BUILD)/tests/%_test)
BIN       := $(BUILD)/gemini-balance

NPROC     := $(shell nproc 2>/dev/null || echo 1)
SAN_FLAGS := -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
# the short fuzz run of make test: seconds per target, and its own directory
# (build/fuzz is left to long campaigns of make fuzz)
TEST_FUZZ_SECONDS ?= 30
TEST_FUZZ_BUILD   ?= build/fuzz-ci
# $(call timed,PHASE,COMMAND): run COMMAND, then say how long PHASE took
timed = t0=$$(date +%s); $(2) && echo "make test: $(1) passed in $$(( $$(date +%s) - t0 )) s"

.PHONY: all deps test-deps run test unit e2e suite suite-san fuzz-short demo sanitize valgrind \
        fuzz bench format format-check clean

all: $(BIN)

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(PKG_CFLAGS) -MMD -MP -c $< -o $@

# the admin page is compiled into the binary
$(BUILD)/gen/admin_page.c: src/admin/page.html scripts/embed.sh
	@mkdir -p $(dir $@)
	scripts/embed.sh gb_admin_page $< > $@

$(BUILD)/gen/admin_page.o: $(BUILD)/gen/admin_page.c
	$(CC) $(CFLAGS) -c $< -o $@

$(BUILD)/libgb.a: $(LIB_OBJS)
	@rm -f $@
	ar rcs $@ $^

$(BIN): $(BUILD)/src/main.o $(BUILD)/libgb.a
	$(CC) $(LDFLAGS) $(BIN_LDFLAGS) -o $@ $^ $(MALLOC_LIBS) -Wl,-Bstatic $(BIN_STATIC_LIBS) \
		-Wl,-Bdynamic $(BIN_SHARED_LIBS)

$(BUILD)/tests/%_test: tests/unit/%_test.c $(BUILD)/libgb.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(PKG_CFLAGS) -Itests/unit -MMD -MP $< -o $@ $(BUILD)/libgb.a \
		$(PKG_LIBS) $(shell pkg-config --libs cmocka)

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)

deps:
	@scripts/deps.sh build

test-deps:
	@scripts/deps.sh test

run: deps
	@$(MAKE) --no-print-directory all
	@scripts/run.sh $(BIN)

unit: $(TEST_BINS)
	@scripts/unit.sh $(TEST_BINS)

e2e: $(BIN)
	@GB_BIN=$(abspath $(BIN)) scripts/e2e.sh

test: test-deps
	@$(call timed,unit + e2e,$(MAKE) --no-print-directory suite)
	@$(call timed,unit + e2e under ASan + UBSan,$(MAKE) --no-print-directory suite-san)
	@$(call timed,fuzz $(TEST_FUZZ_SECONDS) s per target,$(MAKE) --no-print-directory fuzz-short)

# build (in parallel), then the unit tests, then the black-box tests
suite:
	@$(MAKE) --no-print-directory -j$(NPROC) all $(TEST_BINS)
	@$(MAKE) --no-print-directory unit
	@$(MAKE) --no-print-directory e2e

suite-san:
	@$(MAKE) --no-print-directory BUILD=build-san OPT="-O1 -g" SAN="$(SAN_FLAGS)" suite

fuzz-short:
	@FUZZ_BUILD=$(TEST_FUZZ_BUILD) FUZZ_SECONDS=$(TEST_FUZZ_SECONDS) FUZZ_JOBS=$(NPROC) \
		scripts/fuzz.sh

demo: deps
	@$(MAKE) --no-print-directory all
	@scripts/demo.sh $(BIN)

sanitize: test-deps
	@$(MAKE) --no-print-directory suite-san

valgrind: test-deps
	@$(MAKE) --no-print-directory BUILD=build-vg OPT="-O1 -g" MALLOC_LIBS= all
	@GB_BIN=$(abspath build-vg/gemini-balance) scripts/valgrind.sh

fuzz:
	@scripts/deps.sh fuzz
	@scripts/fuzz.sh

bench: deps
	@scripts/deps.sh bench
	@$(MAKE) --no-print-directory all
	@scripts/bench.sh $(BIN)

format:
	clang-format -i $(SRCS) $(wildcard src/*/*.h) $(TEST_SRCS)

format-check:
	clang-format --dry-run -Werror $(SRCS) $(wildcard src/*/*.h) $(TEST_SRCS)

clean:
	rm -rf build build-san
