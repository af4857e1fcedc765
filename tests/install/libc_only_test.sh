#!/usr/bin/env bash
# install.libc_only: libsimul links only libc (and libpthread, folded into libc since glibc
# 2.34). The shared library may need nothing else (readelf -d); the static one may leave
# undefined only symbols that libc (or the dynamic loader) defines (nm), and its CMake target
# may carry nothing but Threads::Threads. Sanitizer builds may also need their runtimes.
# Usage: libc_only_test.sh <libsimul.so> <libsimul.a> <C compiler> <INTERFACE_LINK_LIBRARIES>
#        [<SIMUL_SANITIZE>]
set -euo pipefail
so=$1 ar=$2 cc=$3 iface=$4 sanitize=${5:-}
fail() { echo "libc_only_test: FAIL: $*" >&2; exit 1; }

allowed='^(libc\.so\.6|libpthread\.so\.0|ld-linux[-a-z0-9_.]*\.so\.[0-9]+)$'
if [ -n "$sanitize" ]; then
  allowed='^(libc\.so\.6|libpthread\.so\.0|ld-linux[-a-z0-9_.]*\.so\.[0-9]+|lib(asan|ubsan|tsan|stdc\+\+|m|gcc_s|dl|rt)\.so\.[0-9]+)$'
fi
needed=$(readelf -d "$so" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p')
[ -n "$needed" ] || fail "readelf found no NEEDED entry in $so"
for n in $needed; do
  [[ $n =~ $allowed ]] || fail "$so needs $n"
done

for l in ${iface//;/ }; do
  case "$l" in Threads::Threads) ;; *) fail "simul_static's interface links $l" ;; esac
done

# Every symbol libsimul.a leaves undefined (and does not define itself) comes from libc or the
# loader. Sanitizer builds reference their runtimes' symbols: checked plain only.
if [ -z "$sanitize" ]; then
  # The libc the library is loaded with (the compiler's own search path may not name it).
  libc=$(ldd "$so" | awk '$1 == "libc.so.6" {print $3}')
  [ -f "$libc" ] || libc=$("$cc" -print-file-name=libc.so.6)
  [ -f "$libc" ] || fail "libc.so.6 not found (ldd $so, $cc -print-file-name)"
  ldso=$(readelf -l "$libc" | sed -n 's/.*interpreter: \(.*\)\]/\1/p')
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  { nm -D --defined-only "$libc"; [ -n "$ldso" ] && nm -D --defined-only "$ldso"; } |
    awk '{print $NF}' | sed 's/@.*//' | sort -u > "$tmp/libc"
  nm --defined-only "$ar" 2>/dev/null | awk 'NF == 3 {print $3}' | sort -u > "$tmp/own"
  nm -u "$ar" | awk '$1 == "U" {print $2}' | sort -u > "$tmp/undef"
  comm -23 "$tmp/undef" "$tmp/own" | grep -v '^_GLOBAL_OFFSET_TABLE_$' > "$tmp/external" || true
  extra=$(comm -23 "$tmp/external" "$tmp/libc" || true)
  [ -z "$extra" ] || fail "libsimul.a needs symbols libc does not define: $(echo $extra)"
  echo "libc_only_test: $(wc -l < "$tmp/external") external symbols, all in libc"
fi
echo "libc_only_test: ok ($(echo $needed))"
