#!/usr/bin/env python3
"""Numbers the docs quote from the accuracy suites equal the suites' baselines.

Two kinds of Markdown table are checked (docs/regress.md, "Numbers in the docs"):

1. A table right after a comment naming a suite and which column holds which metric
   of which case (the case id is in a column of the same row):

       <!-- regress-check: tests/regress/gguf.json
            "xfquant PPL" = ppl of "xfquant case"
            "bits/weight" = bits_per_weight of "xfquant case" -->

2. A table `xfquant regress --report` writes: the columns case, metric and expected,
   the suite named on the line "(`tests/regress/NAME.json`)" above it; every expected
   value is checked.

A quoted number must equal the baseline rounded to the digits it shows ("6.2405" for
6.24054562; thousands separators allowed). Usage: doc_numbers.py REPO_ROOT. Exits 1
listing every mismatch, or when no number at all was checked.
"""
import glob
import json
import os
import re
import sys

DIRECTIVE = re.compile(r"<!--\s*regress-check:\s*(\S+)(.*?)-->", re.S)
MAPPING = re.compile(r'"([^"]+)"\s*=\s*(\w+)\s+of\s+"([^"]+)"')
SUITE_MENTION = re.compile(r"\(`(tests/regress/[\w.-]+\.json)`\)")
NUMBER = re.compile(r"^[+]?(−|-)?(\d{1,3}(?:,\d{3})+|\d+)(?:\.(\d+))?")
EMPTY = {"", "—", "-"}


def cells(line):
    s = line.strip()
    if s.startswith("|"):
        s = s[1:]
    if s.endswith("|"):
        s = s[:-1]
    return [c.strip() for c in s.split("|")]


def table_at(lines, i):
    """The table starting at or after line i (blank lines skipped): header, rows, the
    line number of the first row, the index after the table."""
    while i < len(lines) and not lines[i].strip():
        i += 1
    if i + 1 >= len(lines) or not lines[i].lstrip().startswith("|"):
        return None, [], i + 3, i
    header = cells(lines[i])
    rows, j = [], i + 2  # skip the |---| line
    while j < len(lines) and lines[j].lstrip().startswith("|"):
        rows.append(cells(lines[j]))
        j += 1
    return header, rows, i + 3, j


def without_code_blocks(text):
    """Fenced code blocks blanked (line numbers kept): examples are not checked."""
    out, fenced = [], False
    for line in text.split("\n"):
        if line.lstrip().startswith("```"):
            fenced = not fenced
            out.append("")
        else:
            out.append("" if fenced else line)
    return "\n".join(out)


def plain(cell):
    return cell.replace("**", "").replace("`", "").strip()


def parse_number(cell):
    m = NUMBER.match(plain(cell))
    if not m:
        return None
    sign = -1.0 if m.group(1) else 1.0
    digits = m.group(2).replace(",", "")
    frac = m.group(3) or ""
    return sign * float(digits + ("." + frac if frac else "")), len(frac)


class Checker:
    def __init__(self, root):
        self.root = root
        self.suites = {}
        self.errors = []
        self.checked = 0

    def baseline(self, suite, case, metric):
        if suite not in self.suites:
            path = os.path.join(self.root, suite)
            with open(path, encoding="utf-8") as f:
                self.suites[suite] = {c["id"]: c for c in json.load(f)["cases"]}
        c = self.suites[suite].get(case)
        if c is None:
            return None, "no case %s in %s" % (case, suite)
        e = c.get("expect", {}).get(metric)
        if e is None or "value" not in e:
            return None, "case %s of %s has no expected %s" % (case, suite, metric)
        return float(e["value"]), None

    def check(self, where, suite, case, metric, cell):
        case = plain(case)
        if plain(cell) in EMPTY and case in EMPTY:
            return
        if case in EMPTY:
            self.errors.append("%s: %s quoted without a suite case" % (where, cell))
            return
        got = parse_number(cell)
        if got is None:
            self.errors.append("%s: %r is not a number (%s of %s)" % (where, cell, metric, case))
            return
        want, why = self.baseline(suite, case, metric)
        if why:
            self.errors.append("%s: %s" % (where, why))
            return
        value, decimals = got
        tol = 0.5 * 10.0 ** -decimals * (1 + 1e-9) + 1e-12
        if abs(value - want) > tol:
            self.errors.append("%s: %s = %s, but %s of %s in %s is %.10g" %
                               (where, metric, plain(cell), metric, case, suite, want))
        self.checked += 1

    def directive_tables(self, doc, text, lines):
        for m in DIRECTIVE.finditer(text):
            suite, body = m.group(1), m.group(2)
            start = text[:m.end()].count("\n") + 1
            maps = MAPPING.findall(body)
            header, rows, first, _ = table_at(lines, start)
            where0 = "%s:%d" % (doc, start)
            if not maps or header is None:
                self.errors.append("%s: regress-check without %s" %
                                   (where0, "mappings" if not maps else "a table after it"))
                continue
            for col, metric, case_col in maps:
                if col not in header or case_col not in header:
                    self.errors.append("%s: no column %r" %
                                       (where0, col if col not in header else case_col))
                    continue
                ci, ki = header.index(col), header.index(case_col)
                for n, row in enumerate(rows):
                    if len(row) != len(header):
                        self.errors.append("%s: row %d has %d cells, header %d" %
                                           (where0, n + 1, len(row), len(header)))
                        break
                    self.check("%s:%d" % (doc, first + n), suite, row[ki], metric, row[ci])

    def report_tables(self, doc, lines):
        suite = None
        i = 0
        while i < len(lines):
            m = SUITE_MENTION.search(lines[i])
            if m:
                suite = m.group(1)
            header = cells(lines[i]) if lines[i].lstrip().startswith("|") else None
            if header and {"case", "metric", "expected"} <= set(header):
                header, rows, first, end = table_at(lines, i)
                if suite is None:
                    self.errors.append("%s:%d: report table without its suite" % (doc, i + 1))
                else:
                    c, mt, ex = (header.index(k) for k in ("case", "metric", "expected"))
                    for n, row in enumerate(rows):
                        self.check("%s:%d" % (doc, first + n), suite, row[c], plain(row[mt]),
                                   row[ex])
                i = end
                continue
            i += 1

    def run(self):
        docs = sorted(glob.glob(os.path.join(self.root, "docs", "*.md")))
        docs.append(os.path.join(self.root, "README.md"))
        for path in docs:
            with open(path, encoding="utf-8") as f:
                text = f.read()
            doc = os.path.relpath(path, self.root)
            text = without_code_blocks(text)
            lines = text.split("\n")
            self.directive_tables(doc, text, lines)
            self.report_tables(doc, lines)
        for e in self.errors:
            print("FAIL " + e)
        if self.checked == 0:
            print("FAIL no number was checked (no regress-check table found)")
            return 1
        print("%d numbers checked against the suites, %d wrong" % (self.checked, len(self.errors)))
        return 1 if self.errors else 0


def self_test():
    """The checker on a made-up tree: one right, a wrong and a wrongly rounded number, a
    report table; it must find exactly the two wrong ones."""
    import contextlib
    import io
    import tempfile
    with tempfile.TemporaryDirectory() as root:
        os.makedirs(os.path.join(root, "docs"))
        os.makedirs(os.path.join(root, "tests", "regress"))
        suite = {"cases": [{"id": "a", "expect": {"ppl": {"value": 6.24054562}}},
                           {"id": "b", "expect": {"ppl": {"value": 21655648.0}}}]}
        with open(os.path.join(root, "tests", "regress", "s.json"), "w") as f:
            json.dump(suite, f)
        doc = ("<!-- regress-check: tests/regress/s.json\n"
               '     "v" = ppl of "case" -->\n'
               "| v | case |\n|---|---|\n| 6.2405 | `a` |\n| 6.2406 | `a` |\n"
               "| 21,655,648 | b |\n| 6.240 | `a` |\n\n"
               "(`tests/regress/s.json`)\n\n"
               "| case | metric | expected |\n|---|---|---:|\n| a | ppl | 6.24055 |\n")
        with open(os.path.join(root, "docs", "x.md"), "w") as f:
            f.write(doc)
        with open(os.path.join(root, "README.md"), "w") as f:
            f.write("")
        c = Checker(root)
        with contextlib.redirect_stdout(io.StringIO()):
            rc = c.run()
        ok = (rc == 1 and c.checked == 5 and len(c.errors) == 2 and "6.2406" in c.errors[0]
              and "6.240" in c.errors[1])
        if not ok:
            print("FAIL the checker's self-test: rc %d, %d checked, errors %s" %
                  (rc, c.checked, c.errors))
        return ok


if __name__ == "__main__":
    if not self_test():
        sys.exit(1)
    sys.exit(Checker(sys.argv[1] if len(sys.argv) > 1 else ".").run())
