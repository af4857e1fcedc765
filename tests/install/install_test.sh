#!/usr/bin/env bash
# install.consumers: installs the built tree into a temporary prefix (cmake --install, plus the
# test-only sample integration's component) and builds programs against that install only: one
# with pkg-config (simul and simul-sample), one with CMake's find_package(simul COMPONENTS
# sample), shared and static; runs them. Also checks what a component not installed does.
# Usage: install_test.sh <build-dir> <source-dir> <C compiler> [<SIMUL_SANITIZE>]
set -euo pipefail
build=$1 src=$2 cc=$3 sanitize=${4:-}
fail() { echo "install_test: FAIL: $*" >&2; exit 1; }

# A library built with sanitizers needs consumers built the same way.
flags=""
case "$sanitize" in
  address) flags="-fsanitize=address,undefined" ;;
  thread) flags="-fsanitize=thread" ;;
esac

prefix=$(mktemp -d "$build/tests/install.XXXXXX")
trap 'rm -rf "$prefix"' EXIT
cmake --install "$build" --prefix "$prefix" > "$prefix/install.log" 2>&1 ||
  { cat "$prefix/install.log"; fail "install"; }
pc=$(find "$prefix" -name simul.pc -path '*/pkgconfig/*')
[ -n "$pc" ] || fail "simul.pc not installed"
libdir=$(dirname "$(dirname "$pc")")
[ -f "$prefix/include/simul.h" ] || fail "simul.h not installed"
[ -f "$libdir/cmake/simul/simulConfig.cmake" ] || fail "simulConfig.cmake not installed"
# A plain install leaves the test-only sample out.
[ ! -e "$prefix/include/simul/sample.h" ] || fail "a plain install installed the sample header"
[ ! -e "$libdir/pkgconfig/simul-sample.pc" ] || fail "a plain install installed simul-sample.pc"
ls "$libdir" | grep -q sample && fail "a plain install installed libsimul-sample"
# An integration's header comes with its library only.
for i in tls http redis amqp; do
  if [ -e "$prefix/include/simul/$i.h" ] && [ ! -e "$libdir/pkgconfig/simul-$i.pc" ]; then
    fail "include/simul/$i.h installed without libsimul-$i"
  fi
done

cmake --install "$build" --prefix "$prefix" --component simul_test_sample > /dev/null
for f in include/simul/sample.h; do [ -f "$prefix/$f" ] || fail "$f not installed"; done
for f in libsimul-sample.a libsimul-sample.so libsimul-sample.so.0 pkgconfig/simul-sample.pc \
         cmake/simul/simul-sampleTargets.cmake cmake/simul/simul-sampleComponent.cmake; do
  [ -e "$libdir/$f" ] || fail "$f not installed"
done
readelf -d "$libdir/libsimul-sample.so" | grep -q 'SONAME.*\[libsimul-sample.so.0\]' ||
  fail "libsimul-sample.so has no soname libsimul-sample.so.0"

# libsimul's CMake package links the static library with nothing but Threads.
grep -q '^set_target_properties(simul::simul_static ' "$libdir/cmake/simul/simulTargets.cmake" ||
  fail "simulTargets.cmake does not define simul::simul_static"
links=$(sed -n '/^set_target_properties(simul::simul_static /,/^)/s/.*INTERFACE_LINK_LIBRARIES "\([^"]*\)".*/\1/p' \
        "$libdir/cmake/simul/simulTargets.cmake")
for l in ${links//;/ }; do
  case "$l" in Threads::Threads) ;; *) fail "simul::simul_static links $l" ;; esac
done

# 1. pkg-config, shared libraries, rpath into the prefix.
export PKG_CONFIG_PATH="$libdir/pkgconfig"
pkg-config --exists simul-sample || fail "pkg-config does not find simul-sample"
pkg-config --print-requires simul-sample | grep -q '^simul' || fail "simul-sample does not require simul"
# shellcheck disable=SC2046,SC2086
"$cc" $flags -o "$prefix/pc_consumer" "$src/tests/install/consumer.c" \
  $(pkg-config --cflags --libs simul-sample simul) -Wl,-rpath,"$libdir"
out=$("$prefix/pc_consumer") || fail "pkg-config consumer failed"
[ "$out" = "consumer ok" ] || fail "pkg-config consumer printed '$out'"
readelf -d "$prefix/pc_consumer" | grep -q 'NEEDED.*libsimul-sample.so.0' ||
  fail "the pkg-config consumer is not linked with libsimul-sample.so.0"
# The same with the static archives (pkg-config --static adds Libs.private).
# shellcheck disable=SC2046,SC2086
"$cc" $flags -o "$prefix/pc_consumer_static" "$src/tests/install/consumer.c" \
  $(pkg-config --cflags simul-sample) "$libdir/libsimul-sample.a" "$libdir/libsimul.a" \
  $(pkg-config --static --libs-only-l --libs-only-other simul | sed 's/-lsimul\b//')
out=$("$prefix/pc_consumer_static") || fail "static pkg-config consumer failed"
[ "$out" = "consumer ok" ] || fail "static pkg-config consumer printed '$out'"

# 2. CMake: find_package(simul COMPONENTS sample), simul::sample and simul::sample_static.
cmake -S "$src/tests/install/consumer" -B "$prefix/cmake-build" -DCMAKE_C_COMPILER="$cc" \
  -DCMAKE_C_FLAGS="$flags" -DCMAKE_EXE_LINKER_FLAGS="$flags" -DCMAKE_PREFIX_PATH="$prefix" \
  -DCOMPONENT=sample > "$prefix/cmake.log" 2>&1 || { cat "$prefix/cmake.log"; fail "CMake consumer configure"; }
cmake --build "$prefix/cmake-build" > "$prefix/build.log" 2>&1 || { cat "$prefix/build.log"; fail "CMake consumer build"; }
for exe in consumer_shared consumer_static; do
  out=$("$prefix/cmake-build/$exe") || fail "$exe failed"
  [ "$out" = "consumer ok" ] || fail "$exe printed '$out'"
done
readelf -d "$prefix/cmake-build/consumer_shared" | grep -q 'NEEDED.*libsimul-sample.so.0' ||
  fail "consumer_shared is not linked with libsimul-sample.so.0"

# 3. A REQUIRED component that is not installed fails find_package, naming it.
if cmake -S "$src/tests/install/consumer" -B "$prefix/cmake-missing" -DCMAKE_C_COMPILER="$cc" \
     -DCMAKE_PREFIX_PATH="$prefix" -DREQUIRED_COMPONENT=not_installed > "$prefix/missing.log" 2>&1; then
  fail "find_package(simul REQUIRED COMPONENTS not_installed) succeeded"
fi
grep -q "component not_installed is not installed" "$prefix/missing.log" ||
  { cat "$prefix/missing.log"; fail "the failure does not name the missing component"; }

echo "install_test: ok (prefix $prefix)"
