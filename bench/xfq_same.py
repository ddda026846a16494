#!/usr/bin/env python3
"""Whether two .xfq files hold the same model: byte-identical, or the same
tensor table, names and data (docs/xfq-format.md) and the same metadata
apart from "recipe"."options" (the options as asked, which files written
before the option table do not record) and, with --ignore-command-line,
"provenance"."command_line" (runs asked with different run options, such
as --max-memory). Exit 0 when they do.
Usage: bench/xfq_same.py [--ignore-command-line] A.xfq B.xfq"""
import json, struct, sys
def load(p):
    b = open(p, 'rb').read()
    meta_off, meta_size, table_off = struct.unpack_from('<QQQ', b, 16)
    meta = json.loads(b[meta_off:meta_off + meta_size])
    n, names = struct.unpack_from('<II', b, 40); data_off, = struct.unpack_from('<Q', b, 48)
    return meta, (b[table_off:table_off + 80 * n + names], b[data_off:]), b
args = sys.argv[1:]
ignore_cmdline = '--ignore-command-line' in args
args = [a for a in args if a != '--ignore-command-line']
ma, ra, ba = load(args[0]); mb, rb, bb = load(args[1])
if ba == bb: print('identical'); sys.exit(0)
only_options = True
for m in (ma, mb):
    m.get('recipe', {}).pop('options', None)
    if ignore_cmdline:
        m.get('provenance', {}).pop('command_line', None)
if ma != mb:
    for k in set(ma) | set(mb):
        if ma.get(k) != mb.get(k): print('meta differs at', k)
    only_options = False
if ra != rb: print('tensors differ'); only_options = False
print('same except recipe.options' if only_options else 'DIFFERENT'); sys.exit(0 if only_options else 1)
