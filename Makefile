# A thin wrapper over CMake. `make demo` and `make test` work on a fresh Debian 12 as root.
SHELL      := /bin/bash
BUILD      ?= build
BUILD_ASAN ?= build-asan
BUILD_TSAN ?= build-tsan
JOBS       ?= $(shell nproc 2>/dev/null || echo 2)
PREFIX     ?= /usr/local

# Every Debian package the project needs, to build, test and benchmark.
DEB_PACKAGES = build-essential cmake pkg-config clang libclang-rt-14-dev llvm \
               libcmocka-dev librabbitmq-dev libssl-dev valgrind python3 python3-uvloop golang-go libuv1-dev \
               node-llhttp \
               procps util-linux gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user
# libsimul-redis: a real server for its tests, hiredis' reader as its parser's benchmark reference.
DEB_PACKAGES += redis-server libhiredis-dev
# The Redis client benchmark's references (bench/run_redis.sh): redis-benchmark, redis-py asyncio.
DEB_PACKAGES += redis-tools python3-redis
# libsimul-tls: openssl makes the test certificates; curl is an interop client.
DEB_PACKAGES += openssl curl
# bench/run_tls.sh: syscalls per echoed message (strace), PMU instructions where there are counters.
DEB_PACKAGES += strace linux-perf
# libsimul-http: jansson for JSON bodies (curl, above, also drives its end-to-end test).
DEB_PACKAGES += libjansson-dev
# libsimul-http's client: gzip/deflate bodies (zlib). (Its bench's Go, aiohttp and wrk are listed
# with the toolchain and the server bench.)
DEB_PACKAGES += zlib1g-dev
# The TLS benchmark: nginx is its handshake reference (bench/run_tls.sh).
DEB_PACKAGES += nginx-light
# The HTTP server benchmark (bench/run_http.sh): wrk drives nginx, aiohttp on uvloop and Flask
# under gunicorn beside libsimul-http.
DEB_PACKAGES += wrk python3-aiohttp python3-flask gunicorn
# libsimul-http's WebSocket tests: python3-websockets as client and server (for /usr/bin/python3).
DEB_PACKAGES += python3-websockets
# The WebSocket frame parser's benchmark reference (bench/run_ws_frame.sh), linked into the bench only.
DEB_PACKAGES += libwslay-dev
# Tests only: the chess simul's page is checked in headless Chromium (e2e.chess_web, over the
# DevTools protocol); the demo itself needs no browser.
DEB_PACKAGES += chromium
# The stack (tests/e2e/stack_*, examples/chess_club/club.sh): HAProxy in front of supervised
# workers, RabbitMQ beside Redis; wrk loads them in bench/run_stack.sh.
DEB_PACKAGES += haproxy
# libsimul-amqp: a real RabbitMQ for its tests; pika and Go's amqp091-go for interop and its benchmark.
DEB_PACKAGES += rabbitmq-server python3-pika golang-github-rabbitmq-amqp091-go-dev
# The reference docs (make docs, and the suite's docs.reference): Doxygen; Python runs its filter.
DEB_PACKAGES += doxygen
DOCS_PACKAGES = doxygen python3

SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: all deps build test test-plain test-asan test-tsan test-repeat demo bench fuzz install docs clean

all: build

# Installs only what is missing: a machine that has everything runs no apt-get at all.
deps:
	@missing=""; for p in $(DEB_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "deps: installing$$missing"; \
	  $(SUDO) apt-get update && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y $$missing; \
	else echo "deps: all present"; fi

build: deps
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo
	cmake --build $(BUILD) -j$(JOBS)

test: deps test-plain test-asan test-tsan
	@echo "make test: plain, ASan+UBSan and TSan suites passed"

test-plain: build
	cd $(BUILD) && ctest --output-on-failure -j$(JOBS)

test-asan: deps
	cmake -S . -B $(BUILD_ASAN) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSIMUL_SANITIZE=address -DSIMUL_BUILD_BENCH=OFF
	cmake --build $(BUILD_ASAN) -j$(JOBS)
	cd $(BUILD_ASAN) && ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 \
	  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 ctest --output-on-failure -j$(JOBS) -LE 'stackload|compact_integration'

# The thread-safe parts under TSan, built with clang (which also proves clang builds clean).
test-tsan: deps
	CC=clang cmake -S . -B $(BUILD_TSAN) -DCMAKE_BUILD_TYPE=Debug -DSIMUL_SANITIZE=thread -DSIMUL_BUILD_BENCH=OFF
	cmake --build $(BUILD_TSAN) -j$(JOBS)
	cd $(BUILD_TSAN) && TSAN_OPTIONS=halt_on_error=1 ctest --output-on-failure -j$(JOBS) -L thread

# Every suite (plain, ASan+UBSan, TSan: built as above, once each) run REPEAT times in a row,
# going on past failures: prints each failed test with its run number and a line per suite
# ("plain: 10 runs, 0 failures"), keeps failed runs' logs in <build dir>/repeat-logs/, exits 1 if
# any run failed. Flaky tests show here (`make test-repeat REPEAT=10`).
REPEAT ?= 10
test-repeat: build
	cmake -S . -B $(BUILD_ASAN) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSIMUL_SANITIZE=address -DSIMUL_BUILD_BENCH=OFF
	cmake --build $(BUILD_ASAN) -j$(JOBS)
	CC=clang cmake -S . -B $(BUILD_TSAN) -DCMAKE_BUILD_TYPE=Debug -DSIMUL_SANITIZE=thread -DSIMUL_BUILD_BENCH=OFF
	cmake --build $(BUILD_TSAN) -j$(JOBS)
	REPEAT_ENV_asan="ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1" \
	REPEAT_ENV_tsan="TSAN_OPTIONS=halt_on_error=1" \
	  bash tests/repeat_suites.sh $(REPEAT) $(JOBS) plain=$(BUILD) asan=$(BUILD_ASAN) "tsan=$(BUILD_TSAN)=-L thread"

# DEMO_ARGS go to the chess simul (e.g. DEMO_ARGS="--boards 10 --moves 5" for a short run).
DEMO_ARGS ?=
demo: build
	bash examples/demo.sh $(BUILD) $(DEMO_ARGS)

bench: deps
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=Release
	cmake --build $(BUILD) -j$(JOBS)
	bash bench/run_core.sh $(BUILD)
	bash bench/run_core_instr.sh $(BUILD)
	bash bench/run_echo.sh $(BUILD)
	bash bench/run_idle.sh $(BUILD)
	bash bench/run_tls.sh $(BUILD)
	bash bench/run_offload.sh $(BUILD)
	bash bench/run_subprocess.sh $(BUILD)
	bash bench/run_threads.sh $(BUILD)
	bash bench/run_http_parser.sh $(BUILD)
	bash bench/run_http.sh $(BUILD)
	bash bench/run_resp.sh $(BUILD)
	bash bench/run_ws_frame.sh $(BUILD)
	bash bench/run_json_encode.sh $(BUILD)
	bash bench/run_stack.sh $(BUILD)
	bash bench/run_redis.sh $(BUILD)
	bash bench/run_http_client.sh $(BUILD)
	bash bench/run_amqp.sh $(BUILD)

# libFuzzer over every fuzz/fuzz_*.c target, FUZZ_SECONDS each, growing fuzz/corpus/<name>/
# (the suites replay that corpus as ctest fuzz.<name>). libFuzzer's own exit-time leak report is
# noise here (ASAN_OPTIONS=detect_leaks=0); the ASan suite replays the corpus with leak checks.
BUILD_FUZZ   ?= build-fuzz
FUZZ_SECONDS ?= 60
fuzz: deps
	CC=clang cmake -S . -B $(BUILD_FUZZ) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSIMUL_SANITIZE=address \
	  -DSIMUL_BUILD_FUZZ=ON -DSIMUL_BUILD_BENCH=OFF -DSIMUL_BUILD_EXAMPLES=OFF
	cmake --build $(BUILD_FUZZ) -j$(JOBS)
	@for f in $(BUILD_FUZZ)/fuzz/fuzz_*; do \
	  case $$f in *_replay) continue;; esac; \
	  name=$${f##*/fuzz_}; mkdir -p fuzz/corpus/$$name; \
	  echo "fuzz: $$name for $(FUZZ_SECONDS) s"; \
	  ASAN_OPTIONS=detect_leaks=0 $$f -max_total_time=$(FUZZ_SECONDS) -max_len=4096 -print_final_stats=1 \
	    -artifact_prefix=$(BUILD_FUZZ)/ fuzz/corpus/$$name 2>&1 | grep -E '^(#[0-9]+ +DONE|stat::number_of_executed_units|==[0-9]+==ERROR|SUMMARY)' ; \
	  [ $${PIPESTATUS[0]} -eq 0 ] || exit 1; \
	done

# The library alone, in a build dir of its own: a C compiler and CMake are all it needs (no deps,
# no tests, benchmarks, fuzzers or examples), a few seconds. Integrations are built when their
# library is found. Reference docs (`make docs`, built into the same dir) are installed with it.
BUILD_INSTALL ?= build-install
LEAN_FLAGS = -DCMAKE_BUILD_TYPE=Release -DSIMUL_BUILD_TESTS=OFF -DSIMUL_BUILD_BENCH=OFF \
             -DSIMUL_BUILD_EXAMPLES=OFF -DSIMUL_BUILD_FUZZ=OFF
# The reference: HTML and man pages from the headers' doc comments, into $(BUILD_INSTALL), where
# `make install` finds and installs them. Installs only Doxygen and Python if missing.
docs:
	@$(MAKE) --no-print-directory deps DEB_PACKAGES="$(DOCS_PACKAGES)"
	cmake -S . -B $(BUILD_INSTALL) $(LEAN_FLAGS)
	cmake --build $(BUILD_INSTALL) --target docs
	@echo "docs: $(BUILD_INSTALL)/docs/reference/html/index.html and man pages (make install installs them)"

install:
	cmake -S . -B $(BUILD_INSTALL) $(LEAN_FLAGS)
	cmake --build $(BUILD_INSTALL) -j$(JOBS)
	@# docs built once (make docs) are kept up to date with the headers, and installed
	if [ -f $(BUILD_INSTALL)/docs/reference/html/index.html ]; then cmake --build $(BUILD_INSTALL) --target docs; fi
	cmake --install $(BUILD_INSTALL) --prefix $(PREFIX)

clean:
	rm -rf $(BUILD) $(BUILD_ASAN) $(BUILD_TSAN) $(BUILD_INSTALL)
