"""The public headers as a list of chunks, for the reference filter and the doc-comment check.

The one idea: at file level a C header is a sequence of comments, preprocessor lines and
statements (ended by ';' at brace depth 0, or by the '}' of an inline function's body); a
statement's doc comment is the comment that ends on the line just above it."""
import re

FUNC_NAME = re.compile(r'\b(simul_\w+)\s*\(')


class Chunk:
    def __init__(self, kind, text, start, end, line0, line1, trailing=False):
        self.kind = kind          # 'comment', 'pp', 'stmt'
        self.text = text
        self.start, self.end = start, end        # offsets in the source
        self.line0, self.line1 = line0, line1    # first and last line (1-based)
        self.trailing = trailing  # a comment after code on its first line

    def function_name(self):
        """The name a statement declares if it is a public function, else None."""
        if self.kind != 'stmt':
            return None
        code = re.sub(r'/\*.*?\*/', ' ', self.text, flags=re.S)
        code = re.sub(r'"(\\.|[^"\\])*"', '""', code)
        if re.match(r'\s*(typedef|struct\s+\w+\s*\{|enum\b|union\b)', code):
            return None
        head = code.split('{', 1)[0].strip().rstrip(';').strip()
        head = re.sub(r'(\s*(__attribute__\s*\(\(.*?\)\)|SIMUL_\w+(\(.*?\))?))+$', '', head, flags=re.S)
        m = FUNC_NAME.search(head)
        if not m or re.search(r'\(\s*\*\s*' + m.group(1), head) or not head.endswith(')'):
            return None
        return m.group(1)


def chunks(src):
    out = []
    i, n = 0, len(src)
    line = 1
    stmt_start = None
    depth = 0

    def lineno(pos):
        return src.count('\n', 0, pos) + 1

    while i < n:
        c = src[i]
        if src.startswith('/*', i):
            j = src.index('*/', i + 2) + 2
            line_start = src.rfind('\n', 0, i) + 1
            trailing = src[line_start:i].strip() != ''
            if stmt_start is None or depth > 0 or trailing:
                if stmt_start is None:
                    out.append(Chunk('comment', src[i:j], i, j, lineno(i), lineno(j - 1), trailing))
                elif depth == 0:
                    out.append(Chunk('comment', src[i:j], i, j, lineno(i), lineno(j - 1), True))
            i = j
            continue
        if src.startswith('//', i):
            j = src.find('\n', i)
            j = n if j < 0 else j
            i = j
            continue
        if c == '#' and stmt_start is None and src[src.rfind('\n', 0, i) + 1:i].strip() == '':
            k = i
            while k < n and src[k] != '\n':
                if src.startswith('/*', k):
                    k = src.index('*/', k + 2) + 2
                elif src.startswith('\\\n', k):
                    k += 2
                else:
                    k += 1
            if re.match(r'#\s*ifdef\s+__cplusplus', src[i:k]):
                # extern "C" { ... } for C++ only: skip to its #endif
                k = re.compile(r'^\s*#\s*endif.*$', re.M).search(src, k).end()
            out.append(Chunk('pp', src[i:k], i, k, lineno(i), lineno(k)))
            i = k
            continue
        if c == '"' or c == "'":
            j = i + 1
            while src[j] != c:
                j += 2 if src[j] == '\\' else 1
            i = j + 1
            continue
        if c.isspace():
            i += 1
            continue
        if stmt_start is None:
            stmt_start = i
        if c == '{':
            depth += 1
        elif c == '}':
            depth -= 1
            if depth == 0:
                rest = src[i + 1:].lstrip(' \t')
                if not rest.startswith(';') and not re.match(r'[\w*]', rest):
                    # the body of an inline function (or extern "C" { ... })
                    text = src[stmt_start:i + 1]
                    if re.match(r'\s*extern\s*"C"', text):
                        stmt_start = None
                        i += 1
                        continue
                    out.append(Chunk('stmt', text, stmt_start, i + 1, lineno(stmt_start), lineno(i)))
                    stmt_start = None
        elif c == ';' and depth == 0:
            out.append(Chunk('stmt', src[stmt_start:i + 1], stmt_start, i + 1,
                             lineno(stmt_start), lineno(i)))
            stmt_start = None
        i += 1
    return out


def doc_of(chs, k):
    """The doc comment of statement chs[k]: the comment that ends on the line just above it, or
    above the block it sits in (declarations, #defines, trailing comments with no blank line
    between: one comment for a family of calls, or for a call and the constant it takes)."""
    if k + 1 < len(chs) and chs[k + 1].kind == 'comment' and chs[k + 1].trailing \
            and chs[k + 1].line0 == chs[k].line1:
        return chs[k + 1]                    # int f(void); /* what it returns */
    j = k - 1
    top = chs[k].line0
    while j >= 0:
        c = chs[j]
        if c.line1 < top - 1:
            return None                      # a blank line (or more) above the block
        if c.kind == 'comment' and not c.trailing:
            return None if is_banner(c) else c
        if c.line0 < top:
            top = c.line0
        j -= 1
    return None


def is_banner(c):
    """A section heading (/* ---- Tasks ---- */), not the doc of what follows it."""
    return c.kind == 'comment' and re.match(r'/\*\s*-{3,}', c.text) is not None
