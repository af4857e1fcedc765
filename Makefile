# A thin wrapper over CMake. `make demo` and `make test` work on a fresh Debian 12 as root.
BUILD      ?= build
BUILD_ASAN ?= build-asan
BUILD_TSAN ?= build-tsan
JOBS       ?= $(shell nproc 2>/dev/null || echo 2)
PREFIX     ?= /usr/local

# Every Debian package the project needs, to build, test and benchmark.
DEB_PACKAGES = build-essential cmake pkg-config clang libclang-rt-14-dev llvm \
               libcmocka-dev valgrind python3 python3-uvloop golang-go libuv1-dev \
               procps util-linux gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user

SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: all deps build test test-plain test-asan test-tsan demo bench install clean

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
	  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 ctest --output-on-failure -j$(JOBS)

# The thread-safe parts under TSan, built with clang (which also proves clang builds clean).
test-tsan: deps
	CC=clang cmake -S . -B $(BUILD_TSAN) -DCMAKE_BUILD_TYPE=Debug -DSIMUL_SANITIZE=thread -DSIMUL_BUILD_BENCH=OFF
	cmake --build $(BUILD_TSAN) -j$(JOBS)
	cd $(BUILD_TSAN) && TSAN_OPTIONS=halt_on_error=1 ctest --output-on-failure -j$(JOBS) -L thread

demo: build
	bash examples/demo.sh $(BUILD)

bench: deps
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=Release
	cmake --build $(BUILD) -j$(JOBS)
	bash bench/run_core.sh $(BUILD)
	bash bench/run_echo.sh $(BUILD)

install: build
	cmake --install $(BUILD) --prefix $(PREFIX)

clean:
	rm -rf $(BUILD) $(BUILD_ASAN) $(BUILD_TSAN)
