#!/usr/bin/env python3
"""docs.comments: every public function in include/simul.h and include/simul/*.h (integration
headers included) has a doc comment, the comment just above it (or above the run of declarations
it belongs to, with no blank line between). Prints each one missing and exits 1.
Usage: check_docs.py <include dir>       the check
       check_docs.py --list <include dir> the public functions, one a line
       check_docs.py --self-test         proves it catches a missing doc (and accepts the forms used)"""
import glob
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import simul_headers  # noqa: E402


def functions_of(inc):
    """(header, line, name, doc or None) for every public function."""
    headers = [os.path.join(inc, 'simul.h')] + sorted(glob.glob(os.path.join(inc, 'simul', '*.h')))
    out = []
    for h in headers:
        chs = simul_headers.chunks(open(h).read())
        for k, c in enumerate(chs):
            name = c.function_name()
            if name:
                out.append((h, c.line0, name, simul_headers.doc_of(chs, k)))
    return headers, out


SELF_TEST = {
    'simul.h': '/* umbrella */\n#include "simul/a.h"\n',
    'simul/a.h': """/* simul/a.h: a test header. */
#ifndef A_H
#define A_H
#ifdef __cplusplus
extern "C" {
#endif
/* ---- a section ---------------------------------------------------------------------------- */
int simul_undocumented_after_banner(void);

/* Documented. */
int simul_documented(int x);
int simul_family_member(int x);   /* (shares the comment above: no blank line) */
int simul_same_line(void); /* documented after the declaration */

/* A comment, then a blank line. */

int simul_undocumented_after_blank(void);
typedef int (*simul_not_a_function)(void);
struct simul_s { int (*simul_member)(void); };
static inline int simul_inline_undocumented(void) { return 0; }
int simul_last_undocumented(const char *s,
                            int n);
#ifdef __cplusplus
}
#endif
#endif
""",
}


def self_test():
    import tempfile
    with tempfile.TemporaryDirectory() as d:
        os.mkdir(os.path.join(d, 'simul'))
        for name, text in SELF_TEST.items():
            open(os.path.join(d, name), 'w').write(text)
        _, fns = functions_of(d)
        got = {n: doc is not None for _, _, n, doc in fns}
        want = {'simul_undocumented_after_banner': False, 'simul_documented': True,
                'simul_family_member': True, 'simul_same_line': True,
                'simul_undocumented_after_blank': False, 'simul_inline_undocumented': False,
                'simul_last_undocumented': False}
        if got != want:
            print('check_docs self-test: FAIL\n got  %s\n want %s' % (sorted(got.items()), sorted(want.items())))
            return 1
    print('check_docs self-test: ok (%d cases)' % len(want))
    return 0


def main():
    if sys.argv[1] == '--self-test':
        return self_test()
    if sys.argv[1] == '--list':
        for _, _, name, _ in functions_of(sys.argv[2])[1]:
            print(name)
        return 0
    inc = sys.argv[1]
    headers, fns = functions_of(inc)
    functions = len(fns)
    missing = ['%s:%d: %s has no doc comment' % (os.path.relpath(h, inc), line, name)
               for h, line, name, doc in fns if doc is None]
    for m in missing:
        print(m)
    if functions < 100:
        print('check_docs: only %d functions found: the parser is broken' % functions)
        return 1
    print('check_docs: %d public functions in %d headers, %d without a doc comment'
          % (functions, len(headers), len(missing)))
    return 1 if missing else 0


if __name__ == '__main__':
    sys.exit(main())
