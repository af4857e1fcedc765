#!/usr/bin/env bash
# Cross-compiles the core for aarch64 and runs coro_smoke under qemu-user: the aarch64 context
# switch, its boot frame and the overflow report are exercised on every `make test`.
set -euo pipefail
src=$(cd "$(dirname "$0")/../.." && pwd)
out=${1:-$(mktemp -d)}
mkdir -p "$out"
CC=aarch64-linux-gnu-gcc
SYSROOT=/usr/aarch64-linux-gnu
flags=(-std=c11 -D_GNU_SOURCE -O2 -Wall -Wextra -Werror -I"$src/include")
objs=()
# Every layer's C sources (src/*/ minus the integrations, which are libraries of their own).
for f in "$src"/src/coro/coro.c "$src"/src/coro/stack.c "$src"/src/coro/switch_aarch64.S \
         "$src"/src/{backend,core,sync,io,offload,net,stream,process}/*.c; do
  o="$out/$(basename "$f").o"
  $CC "${flags[@]}" -c "$f" -o "$o"
  objs+=("$o")
done
$CC "${flags[@]}" "$src/tests/cross/coro_smoke.c" "${objs[@]}" -lpthread -lm -o "$out/coro_smoke"
qemu-aarch64 -L "$SYSROOT" "$out/coro_smoke"

# A task that overflows must be named on the way down (qemu-user fakes MADV_GUARD_INSTALL: the
# runtime's probe notices and falls back to mprotect guards).
cat > "$out/ovf.c" <<'C'
#include <simul.h>
static int depth(int n) { volatile char buf[512]; buf[0] = (char)n; return depth(n + 1) + buf[0]; }
static int deep(void *a) { (void)a; return depth(0); }
static int m(void *a) { (void)a; simul_task *t; simul_task_opts o = {.name = "deep"};
  simul_task_spawn(&t, deep, 0, &o); return simul_task_join(t, 0); }
int main(void) { return simul_run(m, 0); }
C
$CC "${flags[@]}" -Wno-infinite-recursion "$out/ovf.c" "${objs[@]}" -lpthread -o "$out/ovf"
set +e
msg=$(qemu-aarch64 -L "$SYSROOT" "$out/ovf" 2>&1)
set -e
if grep -q "simul: task 'deep' overflowed its 64 KiB stack" <<<"$msg"; then
  echo "aarch64 overflow report: ok"
else
  echo "aarch64 overflow report: FAILED: $msg"
  exit 1
fi
