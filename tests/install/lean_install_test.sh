#!/usr/bin/env bash
# install.lean: `make install` from a clean build dir needs only a compiler and CMake. It runs
# with apt-get, dpkg-query and sudo replaced by stubs that record any call (there must be none),
# builds no test, benchmark, fuzzer or example, and installs into a temporary prefix the loader
# does not search. Then programs are built against that install only: with pkg-config (which
# links but does not start without an rpath; starts with the rpath the .pc file advises, and with
# LD_LIBRARY_PATH), and with find_package(simul) (simul::simul and simul::simul_static).
# Usage: lean_install_test.sh <source-dir> <C compiler> <scratch dir>
set -euo pipefail
src=$1 cc=$2 scratch=$3
fail() { echo "lean_install_test: FAIL: $*" >&2; exit 1; }

mkdir -p "$scratch"
tmp=$(mktemp -d "$scratch/lean.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
mkdir "$tmp/stubs"
for tool in apt-get apt dpkg-query sudo; do
  printf '#!/bin/sh\necho "%s $*" >> "%s/called"\nexit 1\n' "$tool" "$tmp" > "$tmp/stubs/$tool"
  chmod +x "$tmp/stubs/$tool"
done

# 1. make install, lean, from a clean build dir.
start=$(date +%s)
PATH="$tmp/stubs:$PATH" CC="$cc" make -C "$src" install PREFIX="$tmp/prefix" \
  BUILD_INSTALL="$tmp/build" JOBS=2 > "$tmp/make.log" 2>&1 || { cat "$tmp/make.log"; fail "make install"; }
secs=$(( $(date +%s) - start ))
[ ! -e "$tmp/called" ] || fail "make install ran a package tool: $(cat "$tmp/called")"
grep -q 'SIMUL_BUILD_TESTS=OFF' "$tmp/make.log" || fail "make install did not configure lean"
for d in tests bench fuzz examples; do
  [ ! -e "$tmp/build/$d" ] || fail "the lean build made $d/"
done
if [ -d "$tmp/build/bin" ] && [ -n "$(ls -A "$tmp/build/bin")" ]; then
  fail "the lean build made programs: $(ls "$tmp/build/bin")"
fi
grep -q 'cmocka' "$tmp/build/CMakeCache.txt" && fail "the lean configure looked for cmocka"
pc=$(find "$tmp/prefix" -name simul.pc -path '*/pkgconfig/*')
[ -n "$pc" ] || fail "simul.pc not installed"
libdir=$(dirname "$(dirname "$pc")")
for f in libsimul.a libsimul.so libsimul.so.0 cmake/simul/simulConfig.cmake; do
  [ -e "$libdir/$f" ] || fail "$libdir/$f not installed"
done
[ -f "$tmp/prefix/include/simul.h" ] || fail "simul.h not installed"
# The install says how a program will find the shared library under this prefix.
grep -q "does not search .*rpath.*ldconfig" "$tmp/make.log" ||
  { cat "$tmp/make.log"; fail "make install gave no rpath/ldconfig advice for a private prefix"; }

# 2. pkg-config: links, does not start without an rpath, starts as simul.pc advises.
export PKG_CONFIG_PATH="$libdir/pkgconfig"
grep -q -- '-Wl,-rpath,$(pkg-config --variable=libdir simul)' "$pc" || fail "simul.pc gives no rpath advice"
grep -q 'ldconfig' "$pc" || fail "simul.pc gives no ldconfig advice"
pc_libdir=$(pkg-config --variable=libdir simul)
[ "$(cd "$pc_libdir" && pwd -P)" = "$(cd "$libdir" && pwd -P)" ] ||
  fail "pkg-config --variable=libdir simul is $pc_libdir, not $libdir"
# shellcheck disable=SC2046
"$cc" -o "$tmp/no_rpath" "$src/tests/install/lean_consumer.c" $(pkg-config --cflags --libs simul)
if out=$(env -u LD_LIBRARY_PATH "$tmp/no_rpath" 2>&1); then
  fail "a program without rpath started under a private prefix (the advice would be moot): $out"
fi
echo "$out" | grep -q 'libsimul.so.0' || fail "unexpected failure without rpath: $out"
out=$(LD_LIBRARY_PATH="$libdir" "$tmp/no_rpath") || fail "LD_LIBRARY_PATH did not help"
[ "$out" = "lean consumer ok" ] || fail "LD_LIBRARY_PATH run printed '$out'"
# shellcheck disable=SC2046
"$cc" -o "$tmp/rpath" "$src/tests/install/lean_consumer.c" $(pkg-config --cflags --libs simul) \
  -Wl,-rpath,"$(pkg-config --variable=libdir simul)"
out=$(env -u LD_LIBRARY_PATH "$tmp/rpath") || fail "the pkg-config program with rpath failed"
[ "$out" = "lean consumer ok" ] || fail "the pkg-config program printed '$out'"
# The static archive, as simul.pc says.
# shellcheck disable=SC2046
"$cc" -o "$tmp/static" "$src/tests/install/lean_consumer.c" $(pkg-config --cflags simul) \
  "$pc_libdir/libsimul.a" $(pkg-config --static --libs-only-other --libs-only-l simul | sed 's/-lsimul\b//')
out=$("$tmp/static") || fail "the static pkg-config program failed"
[ "$out" = "lean consumer ok" ] || fail "the static program printed '$out'"

# 3. find_package(simul): simul::simul (CMake adds the rpath in the build tree) and _static.
cmake -S "$src/tests/install/lean_consumer" -B "$tmp/cmake-build" -DCMAKE_C_COMPILER="$cc" \
  -DCMAKE_PREFIX_PATH="$tmp/prefix" > "$tmp/cmake.log" 2>&1 || { cat "$tmp/cmake.log"; fail "CMake consumer configure"; }
cmake --build "$tmp/cmake-build" > "$tmp/build.log" 2>&1 || { cat "$tmp/build.log"; fail "CMake consumer build"; }
for exe in lean_shared lean_static; do
  out=$(env -u LD_LIBRARY_PATH "$tmp/cmake-build/$exe") || fail "$exe failed"
  [ "$out" = "lean consumer ok" ] || fail "$exe printed '$out'"
done
readelf -d "$tmp/cmake-build/lean_shared" | grep -q 'NEEDED.*libsimul.so.0' || fail "lean_shared is not linked with libsimul.so.0"
readelf -d "$tmp/cmake-build/lean_static" | grep -q 'NEEDED.*libsimul.so' && fail "lean_static needs libsimul.so"

# 4. The reference: not installed until built; after `make docs`, `make install` installs it
# (HTML under share/doc/simul, man pages under share/man/man3: only simul* ones).
[ ! -e "$tmp/prefix/share/doc/simul/html" ] || fail "a lean install without make docs installed HTML"
docs=skipped
if command -v doxygen > /dev/null && command -v python3 > /dev/null; then
  make -C "$src" docs BUILD_INSTALL="$tmp/build" > "$tmp/docs.log" 2>&1 || { cat "$tmp/docs.log"; fail "make docs"; }
  rm -f "$tmp/called"
  PATH="$tmp/stubs:$PATH" CC="$cc" make -C "$src" install PREFIX="$tmp/prefix" \
    BUILD_INSTALL="$tmp/build" JOBS=2 > "$tmp/make2.log" 2>&1 || { cat "$tmp/make2.log"; fail "make install after make docs"; }
  [ ! -e "$tmp/called" ] || fail "make install ran a package tool: $(cat "$tmp/called")"
  man3="$tmp/prefix/share/man/man3"
  for f in "$tmp/prefix/share/doc/simul/html/index.html" "$tmp/prefix/share/doc/simul/html/group__simul-task.html" \
           "$man3/simul-task.3" "$man3/simul-stream.3" "$man3/simul_task_spawn.3" "$man3/simul_open_connection.3"; do
    [ -f "$f" ] || fail "$f not installed after make docs"
  done
  grep -q '^\.so man3/simul-task.3' "$man3/simul_task_spawn.3" || fail "simul_task_spawn(3) does not lead to simul-task(3)"
  extra=$(find "$man3" -name '*.3' ! -name 'simul*' ! -name 'SIMUL_*' | head -3)
  [ -z "$extra" ] || fail "make install put pages not named simul* in man3: $extra"
  if command -v man > /dev/null; then
    MANPATH="$tmp/prefix/share/man" man -w simul_task_spawn > /dev/null 2>&1 || fail "man -w simul_task_spawn finds nothing"
  fi
  docs="installed ($(ls "$man3" | wc -l) man pages)"
fi

echo "lean_install_test: ok (make install took ${secs} s, no package tool called, nothing but the library built; docs $docs)"
