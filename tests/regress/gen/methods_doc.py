#!/usr/bin/env python3
"""Writes docs/accuracy-methods-suite.md from the baselines of
tests/regress/methods.json: the mean (min..max) over seeds of every method on
each half, every relation with its two means and whether it holds, and every
case's value (checked against the suite by tests/docs/doc_numbers.py). Run
from the repository root after `xfquant regress tests/regress/methods.json
--update`:
    python3 tests/regress/gen/methods_doc.py > docs/accuracy-methods-suite.md"""
import collections
import json
import re

SUITE = 'tests/regress/methods.json'
suite = json.load(open(SUITE))
CASE = re.compile(r'^(stories|novels)-(.*)-h([12])(?:-s(\d))?$')
value = {c['id']: c['expect']['ppl']['value'] for c in suite['cases']}
desc = {}
groups = collections.OrderedDict()
for c in suite['cases']:
    model, meth, half, seed = CASE.match(c['id']).groups()
    groups.setdefault((model, meth), {1: [], 2: []})[int(half)].append(value[c['id']])
    desc[(model, meth)] = c['description']


def stats(xs):
    xs = [x for x in xs if x is not None]
    return (sum(xs) / len(xs), min(xs), max(xs), len(xs)) if xs else None


def cell(xs):
    s = stats(xs)
    if s is None:
        return 'no baseline'
    mean, lo, hi, n = s
    return f'{mean:.3f}' if n == 1 else f'{mean:.3f} ({lo:.3f}..{hi:.3f})'


def side(expr):
    """ppl(ID) with an optional '*' -> the matching baselines"""
    pat = re.fullmatch(r'\s*ppl\(([^)]+)\)\s*', expr).group(1)
    rx = re.compile('^' + re.escape(pat).replace(r'\*', '.*') + '$')
    return [v for k, v in value.items() if rx.match(k)]


print('# The `methods` suite: every issue-15 method on both halves and seeds\n')
print('Written by `python3 tests/regress/gen/methods_doc.py > docs/accuracy-methods-suite.md` from the')
print('baselines of `tests/regress/methods.json`, which `OPENBLAS_CORETYPE=Haswell xfquant regress')
print('tests/regress/methods.json --update` recorded (the protocol: docs/accuracy-methods.md; cases')
print('named `full-*` use docs/accuracy.md\'s protocol instead: every window of each half, 128')
print('calibration windows of 512 tokens). `meson test -C build --suite methods` checks them')
print('(about half an hour on 2 cores; not in CI). Cells: mean over the seeds (min..max).\n')
print('## Means\n')
print('| model | case | half 1 | half 2 | seeds | what |\n|---|---|---|---|---:|---|')
for (model, meth), h in groups.items():
    print(f'| {model} | `{meth}` | {cell(h[1])} | {cell(h[2])} | {len(h[1])} | {desc[(model, meth)]} |')
print('\n## Relations (a method\'s claimed win, on each half)\n')
print('| relation | left | right | holds |\n|---|---|---|---|')
for r in suite['relations']:
    lhs, rhs = r['expect'].split('<')
    a, b = stats(side(lhs)), stats(side(rhs))
    ok = 'yes' if a and b and a[0] < b[0] else 'NO'
    fa = f'{a[0]:.4f}' if a else '—'
    fb = f'{b[0]:.4f}' if b else '—'
    print(f'| `{r["id"]}` | {fa} | {fb} | {ok} |')
print('\n## Every case\n')
print(f'<!-- regress-check: {SUITE}\n     "ppl" = ppl of "case" -->')
print('| case | ppl |\n|---|---:|')
for c in suite['cases']:
    v = value[c['id']]
    print(f'| {c["id"]} | {"—" if v is None else f"{v:.4f}"} |')
