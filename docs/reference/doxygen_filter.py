#!/usr/bin/env python3
"""Doxygen's INPUT_FILTER for the public headers: turns their plain C comments into Doxygen's.

The headers stay plain C with /* */ doc comments (what a reader of the header sees); this filter
gives Doxygen what it needs on the fly: a group per header (one page, one man page per area),
section banners as member groups, /** for the doc above a declaration, /**< for a comment after
a member, the doc of a family copied to each of its calls, and each call's asyncio equivalent
from docs/asyncio-map.md. Usage: doxygen_filter.py <asyncio-map.md> <header>"""
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import simul_headers  # noqa: E402


def asyncio_map(path):
    """simul name -> [(asyncio cell, note)] from the map's tables."""
    out = {}
    try:
        lines = open(path).read().splitlines()
    except OSError:
        return out
    for line in lines:
        if not line.startswith('|') or line.startswith('|---'):
            continue
        cells = [c.strip() for c in re.split(r'(?<!\\)\|', line.strip().strip('|'))]
        if len(cells) < 2 or cells[0] in ('asyncio', '') or cells[0] in ('—', '-'):
            continue
        asy = cells[0]
        note = cells[2] if len(cells) > 2 else ''
        note = re.sub(r'\[([^\]]*)\]\([^)]*\)', r'\1', note)   # links: their text only
        for name in dict.fromkeys(re.findall(r'\bsimul_\w+', cells[1])):
            out.setdefault(name, []).append((asy, note))
    return out


def escape(text):
    """Plain words for Doxygen: outside `code`, a backslash, @, <word> and & are literal, and
    "Suspends." or "e.g." does not end the brief description."""
    # simul_<noun>_<verb>: a pattern, shown as code (Markdown would take _..._ for emphasis)
    text = re.sub(r'(?<![`\w])((?:\w|\*)*<\w+>[\w<>*]*)', r'`\1`', text)
    parts = re.split(r'(`[^`]*`)', text)
    for i in range(0, len(parts), 2):
        p = parts[i]
        p = p.replace('\\', '\\\\').replace('@', '\\@').replace('&', '&amp;')
        p = p.replace('<', '&lt;').replace('>', '&gt;').replace('#', '\\#')
        p = re.sub(r'\b(Suspends|e\.g|i\.e|etc)\.( |\n)', r'\1.\\ \2', p)
        parts[i] = p
    return ''.join(parts)


def doxy_text(comment):
    """The words of a /* ... */ comment, without its delimiters and leading stars."""
    body = comment[2:-2]
    lines = [re.sub(r'^\s*\* ?', '', l) for l in body.split('\n')]
    return escape('\n'.join(l.rstrip() for l in lines).strip())


def with_asyncio_brief(text, entries):
    """The first sentence (the brief, in the summary beside the call) gets the asyncio name."""
    names = [a for a, _ in entries if a.startswith('`')]
    if not names:
        return text
    tag = ' [asyncio: ' + ', '.join(names) + ']'
    m = re.search(r'(?<!\\)\.(\s|$)', text)
    if not m:
        return text + tag
    return text[:m.start()] + tag + text[m.start():]


def doc_block(text, extra=''):
    lines = (text + extra).split('\n')
    return '/** ' + '\n * '.join(lines) + ' */'


def asyncio_par(entries):
    if not entries:
        return ''
    parts = []
    for asy, note in entries:
        parts.append(asy + ((' — ' + note) if note else ''))
    return '\n@par asyncio\n' + '\n\n'.join(parts)


def main():
    amap = asyncio_map(sys.argv[1])
    path = sys.argv[2]
    src = open(path).read()
    base = os.path.basename(path)
    area = base[:-2]
    umbrella = base == 'simul.h' and os.path.basename(os.path.dirname(path)) != 'simul'
    chs = simul_headers.chunks(src)

    # Replacements by offset: (start, end, text); insertions have start == end.
    edits = []
    docs_of = {}   # comment start -> extra text (asyncio) for docs directly above a function
    for k, c in enumerate(chs):
        name = c.function_name()
        if not name:
            continue
        d = simul_headers.doc_of(chs, k)
        entries = amap.get(name, [])
        extra = asyncio_par(entries)
        if d is None:
            continue
        if d.trailing:                        # int f(void); /* what it is */
            edits.append((d.start, d.end, '/**< ' + with_asyncio_brief(doxy_text(d.text), entries)
                          + extra.replace('\n', ' ') + ' */'))
            continue
        if d is chs[k - 1] and d.start not in docs_of:
            docs_of[d.start] = (entries, extra)
        else:                                 # the doc of a family: a copy for this call
            edits.append((c.start, c.start,
                          doc_block(with_asyncio_brief(doxy_text(d.text), entries), extra) + '\n'))

    first_comment = next((c for c in chs if c.kind == 'comment'), None)
    in_section = False
    last_endif = None
    for c in chs:
        if c.kind == 'pp' and re.match(r'#\s*endif', c.text):
            last_endif = c
    for c in chs:
        if c.kind != 'comment':
            continue
        text = doxy_text(c.text)
        if c is first_comment and c.line0 == 1:
            title, _, rest = text.partition('\n')
            title = re.sub(r'^(simul/)?' + re.escape(base) + r'\s*[—-]\s*', '', title)
            if umbrella:
                new = '/** @mainpage simul: the asyncio model in C\n' + title + '\n\n' + rest + \
                      '\n\nEach area of the API has its page (Modules); each call its man page ' \
                      '(`man simul_task_spawn`). */'
            else:
                new = ('/** @file %s\n@brief %s */\n' % (base, title)) + \
                      ('/** @defgroup simul-%s %s: %s\n%s\n@{ */' % (area, base, title, rest))
            edits.append((c.start, c.end, new))
        elif simul_headers.is_banner(c):
            heading = re.sub(r'-{3,}', '', text).strip().strip('*').strip()
            if not heading:
                continue
            new = ('/** @} */ ' if in_section else '') + '/** @name ' + heading.split('\n')[0] + \
                  ' */\n/** @{ */'
            in_section = True
            edits.append((c.start, c.end, new))
        elif c.trailing:
            edits.append((c.start, c.end, '/**< ' + text + ' */'))
        else:
            entries, extra = docs_of.get(c.start, ([], ''))
            edits.append((c.start, c.end, doc_block(with_asyncio_brief(text, entries), extra)))

    # Comments inside statements (struct members): /**< after a member, /** above one.
    for c in chs:
        if c.kind not in ('stmt', 'pp'):
            continue
        for m in re.finditer(r'/\*(?!\*).*?\*/', c.text, re.S):
            s = c.start + m.start()
            line_start = src.rfind('\n', 0, s) + 1
            after_code = src[line_start:s].strip() != ''
            if c.kind == 'pp' and not after_code:
                continue
            body = doxy_text(m.group(0))
            edits.append((s, c.start + m.end(), ('/**< ' if after_code else '/** ') + body + ' */'))

    if not umbrella and last_endif is not None:
        close = ('/** @} */\n' if in_section else '') + '/** @} */\n'
        edits.append((last_endif.start, last_endif.start, close))

    out, pos = [], 0
    for s, e, t in sorted(edits, key=lambda x: (x[0], x[1])):
        if s < pos:
            continue
        out.append(src[pos:s])
        out.append(t)
        pos = e
    out.append(src[pos:])
    sys.stdout.write(''.join(out))


if __name__ == '__main__':
    main()
