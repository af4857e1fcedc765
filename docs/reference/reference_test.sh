#!/usr/bin/env bash
# docs.reference: Doxygen builds the reference from the headers with no warning; every area
# (include/simul/<area>.h) has its HTML page and man page, every public function its man page
# (the name a user types: `man simul_task_spawn`), and the pages carry the asyncio names.
# Usage: reference_test.sh <configured Doxyfile> <source dir> <python3> <doxygen> <scratch dir>
set -euo pipefail
doxyfile=$1 src=$2 py=$3 doxygen=$4 scratch=$5
fail() { echo "reference_test: FAIL: $*" >&2; exit 1; }
mkdir -p "$scratch"
tmp=$(mktemp -d "$scratch/reference.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

{ cat "$doxyfile"; echo "OUTPUT_DIRECTORY = $tmp"; echo "WARN_LOGFILE = $tmp/warnings.log"; } |
  "$doxygen" - > "$tmp/doxygen.out" 2>&1 || { cat "$tmp/doxygen.out"; fail "doxygen failed"; }
[ ! -s "$tmp/warnings.log" ] || { cat "$tmp/warnings.log"; fail "doxygen warned"; }
[ -f "$tmp/html/index.html" ] || fail "no html/index.html"
grep -q 'simul: the asyncio model in C' "$tmp/html/index.html" || fail "the main page is not simul.h's comment"

areas=0
for h in "$src"/include/simul/*.h; do
  area=$(basename "$h" .h)
  [ -f "$tmp/html/group__simul-$area.html" ] || fail "no HTML page for $area.h"
  [ -f "$tmp/man/man3/simul-$area.3" ] || fail "no man page simul-$area(3) for $area.h"
  areas=$((areas + 1))
done

fns=0
while read -r f; do
  page="$tmp/man/man3/$f.3"
  [ -f "$page" ] || fail "no man page for $f"
  fns=$((fns + 1))
done < <("$py" "$src/docs/reference/check_docs.py" --list "$src/include")
[ "$fns" -gt 100 ] || fail "only $fns functions listed"

# The asyncio name beside a call, in the summary and in the details; words in <...> survive.
grep -A2 'fBsimul_task_spawn\\fP (' "$tmp/man/man3/simul-task.3" | grep -q 'asyncio: .*asyncio.*create_task' ||
  fail "simul-task(3) has no asyncio name beside simul_task_spawn"
grep -A2 'fBsimul_lock_acquire\\fP (' "$tmp/man/man3/simul-sync.3" | grep -q 'asyncio: .*await lock' ||
  fail "simul-sync(3) has no asyncio name beside simul_lock_acquire"
grep -q 'asyncio: <code>await lock.acquire()' "$tmp/html/group__simul-sync.html" ||
  fail "the sync page shows no asyncio name beside simul_lock_acquire"
grep -q 'simul_&lt;noun&gt;_&lt;verb&gt;\|simul_<noun>_<verb>' "$tmp/html/index.html" ||
  fail "the main page lost the <noun> of simul_<noun>_<verb>"
# Doxygen's per-member pages (name.3, fd.3) are not what make install puts in man3.
[ -f "$tmp/man/man3/name.3" ] && echo "reference_test: (member pages such as name.3 exist; the install skips them)"

echo "reference_test: ok ($areas areas, $fns functions with a man page, no warning)"
