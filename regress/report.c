/* Outputs of a regression run: terminal table, JSON, JUnit XML, Markdown,
 * SVG. Everything is printed into an open_memstream buffer. */
#include "regress/report.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/atomic_file.h"
#include "regress/plot_svg.h"
#include "regress/xml_text.h"

/* ---- shared formatting ---- */

static const char *fmt_num(char *buf, size_t cap, double v)
{
    if (isnan(v))
        snprintf(buf, cap, "-");
    else if (isinf(v))
        snprintf(buf, cap, "%s", v > 0 ? "+inf" : "-inf");
    else
        snprintf(buf, cap, "%.6g", v);
    return buf;
}

/* A relation's side: the value, or for a pattern over n > 1 cases "mean
 * (min..max, n=N)", so the spread is read beside the mean. */
static const char *fmt_side(char *buf, size_t cap, double v, double lo, double hi, size_t n)
{
    char m[32], a[32], b[32];
    fmt_num(m, sizeof m, v);
    if (n <= 1 || isnan(v))
        snprintf(buf, cap, "%s", m);
    else
        snprintf(buf, cap, "%s (%s..%s, n=%zu)", m, fmt_num(a, sizeof a, lo),
                 fmt_num(b, sizeof b, hi), n);
    return buf;
}

static const char *fmt_delta(char *buf, size_t cap, const xf_regress_check *k)
{
    if (!isfinite(k->delta))
        snprintf(buf, cap, "-");
    else if (k->expected != 0)
        snprintf(buf, cap, "%+.4g (%+.2f%%)", k->delta, 100.0 * k->delta / fabs(k->expected));
    else
        snprintf(buf, cap, "%+.4g", k->delta);
    return buf;
}

static const char *fmt_band(char *buf, size_t cap, const xf_regress_check *k)
{
    char lo[32], hi[32];
    snprintf(buf, cap, "[%s, %s]", fmt_num(lo, sizeof lo, k->lo), fmt_num(hi, sizeof hi, k->hi));
    return buf;
}

static const char *check_note(const xf_regress_check *k)
{
    if (k->status == XF_REGRESS_PASS)
        return "";
    if (isnan(k->expected))
        return "no baseline (value null): run --update";
    if (isnan(k->got))
        return "not measured";
    return k->got < k->lo ? "below floor" : "above ceiling";
}

static const char *overall(const xf_regress_results *r)
{
    return xf_regress_failed(r) ? "FAIL" : r->n_pass > 0 ? "PASS" : "SKIP";
}

/* ---- terminal table ---- */

#define T_COLS 7
#define T_CELL 96

typedef struct {
    char cell[T_COLS][T_CELL];
    const char *note; /* last column, not padded */
} table_row;

typedef struct {
    table_row *rows;
    size_t n, cap;
} table;

static table_row *table_add(table *t)
{
    if (t->n == t->cap) {
        size_t cap = t->cap ? 2 * t->cap : 16;
        table_row *rows = realloc(t->rows, cap * sizeof *rows);
        if (!rows)
            return NULL;
        t->rows = rows;
        t->cap = cap;
    }
    table_row *row = &t->rows[t->n++];
    memset(row, 0, sizeof *row);
    row->note = "";
    return row;
}

static void table_print(FILE *o, const table *t, int ncols)
{
    size_t w[T_COLS] = {0};
    for (size_t i = 0; i < t->n; i++)
        for (int c = 0; c < ncols; c++)
            if (strlen(t->rows[i].cell[c]) > w[c])
                w[c] = strlen(t->rows[i].cell[c]);
    for (size_t i = 0; i < t->n; i++) {
        bool note = *t->rows[i].note != 0;
        for (int c = 0; c < ncols; c++) {
            /* the last cell is padded only when a note follows: no trailing blanks */
            int pad = c + 1 < ncols || note ? (int)w[c] : 0;
            fprintf(o, "%s%-*s", c ? "  " : "", pad, t->rows[i].cell[c]);
        }
        if (note)
            fprintf(o, "  %s", t->rows[i].note);
        fputc('\n', o);
    }
}

static void cells(table_row *row, const char *a, const char *b, const char *c, const char *d,
                  const char *e, const char *f, const char *g)
{
    const char *v[T_COLS] = {a, b, c, d, e, f, g};
    for (int i = 0; i < T_COLS; i++)
        snprintf(row->cell[i], T_CELL, "%s", v[i] ? v[i] : "");
}

static int render_table(FILE *o, const xf_regress_results *r)
{
    const xf_regress_suite *s = r->suite;
    table t = {0};
    table_row *row = table_add(&t);
    if (!row)
        return -1;
    cells(row, "case", "metric", "expected", "got", "delta", "band", "result");
    for (size_t i = 0; i < s->n_cases; i++) {
        const xf_regress_case_result *cr = &r->cases[i];
        if (!cr->selected)
            continue;
        const char *st = xf_regress_status_name(cr->status);
        if (cr->n_checks == 0 || cr->exec != XF_REGRESS_EXEC_OK) {
            if (!(row = table_add(&t)))
                goto oom;
            cells(row, s->cases[i].id, "-", "-", "-", "-", "-", st);
            row->note = cr->reason.msg;
            continue;
        }
        for (size_t k = 0; k < cr->n_checks; k++) {
            const xf_regress_check *ck = &cr->checks[k];
            char e[32], g[32], d[64], b[80];
            if (!(row = table_add(&t)))
                goto oom;
            cells(row, s->cases[i].id, xf_regress_metric_name(ck->metric),
                  fmt_num(e, sizeof e, ck->expected), fmt_num(g, sizeof g, ck->got),
                  fmt_delta(d, sizeof d, ck), fmt_band(b, sizeof b, ck),
                  xf_regress_status_name(ck->status));
            row->note = check_note(ck);
        }
    }
    table_print(o, &t, T_COLS);

    t.n = 0;
    if (!(row = table_add(&t)))
        goto oom;
    cells(row, "relation", "expect", "lhs", "rhs", "result", NULL, NULL);
    size_t nrel = 0;
    for (size_t i = 0; i < s->n_relations; i++) {
        const xf_regress_relation_result *rr = &r->relations[i];
        if (!rr->selected)
            continue;
        char a[160], b[160];
        if (!(row = table_add(&t)))
            goto oom;
        /* an unnamed relation is named by its expression: do not print it twice */
        const char *name =
            strcmp(s->relations[i].id, s->relations[i].expr) ? s->relations[i].id : "-";
        cells(row, name, s->relations[i].expr,
              fmt_side(a, sizeof a, rr->lhs, rr->lhs_min, rr->lhs_max, rr->lhs_n),
              fmt_side(b, sizeof b, rr->rhs, rr->rhs_min, rr->rhs_max, rr->rhs_n),
              xf_regress_status_name(rr->status), NULL, NULL);
        row->note = rr->reason.msg;
        nrel++;
    }
    if (nrel) {
        fputc('\n', o);
        table_print(o, &t, 5);
    }
    free(t.rows);
    /* Not "N passed, N failed": CI log scanners read that as a test-runner
     * summary line. */
    fprintf(o, "\nresult: %s (%zu pass, %zu fail, %zu skip)\n", overall(r), r->n_pass, r->n_fail,
            r->n_skip);
    return 0;
oom:
    free(t.rows);
    return -1;
}

/* ---- JSON ---- */

static json_t *jnum(double v)
{
    return isfinite(v) ? json_real(v) : json_null();
}

static json_t *build_json(const xf_regress_results *r)
{
    const xf_regress_suite *s = r->suite;
    json_t *root = json_object(), *cases = json_array(), *rels = json_array();
    if (!root || !cases || !rels) {
        json_decref(root);
        json_decref(cases);
        json_decref(rels);
        return NULL;
    }
    json_object_set_new(root, "suite", json_string(s->name));
    json_object_set_new(root, "file", json_string(s->path));
    json_object_set_new(root, "status", json_string(overall(r)));
    json_object_set_new(root, "passed", json_integer((json_int_t)r->n_pass));
    json_object_set_new(root, "failed", json_integer((json_int_t)r->n_fail));
    json_object_set_new(root, "skipped", json_integer((json_int_t)r->n_skip));
    for (size_t i = 0; i < s->n_cases; i++) {
        const xf_regress_case_result *cr = &r->cases[i];
        if (!cr->selected)
            continue;
        json_t *c = json_object(), *got = json_object(), *checks = json_array();
        json_object_set_new(c, "id", json_string(s->cases[i].id));
        json_object_set_new(c, "method",
                            json_string(xf_regress_method_name(s->cases[i].recipe.method)));
        json_object_set_new(c, "status", json_string(xf_regress_status_name(cr->status)));
        json_object_set_new(c, "reason",
                            cr->reason.msg[0] ? json_string(cr->reason.msg) : json_null());
        for (int m = 0; m < XF_REGRESS_N_METRICS; m++) {
            double v = xf_regress_metrics_get(&cr->got, (xf_regress_metric)m);
            if (isfinite(v))
                json_object_set_new(got, xf_regress_metric_name((xf_regress_metric)m),
                                    json_real(v));
        }
        json_object_set_new(c, "measured", got);
        for (size_t k = 0; k < cr->n_checks; k++) {
            const xf_regress_check *ck = &cr->checks[k];
            json_t *j = json_object();
            json_object_set_new(j, "metric", json_string(xf_regress_metric_name(ck->metric)));
            json_object_set_new(j, "expected", jnum(ck->expected));
            json_object_set_new(j, "got", jnum(ck->got));
            json_object_set_new(j, "delta", jnum(ck->delta));
            json_object_set_new(j, "floor", jnum(ck->lo));
            json_object_set_new(j, "ceiling", jnum(ck->hi));
            json_object_set_new(j, "status", json_string(xf_regress_status_name(ck->status)));
            json_array_append_new(checks, j);
        }
        json_object_set_new(c, "checks", checks);
        json_array_append_new(cases, c);
    }
    for (size_t i = 0; i < s->n_relations; i++) {
        const xf_regress_relation_result *rr = &r->relations[i];
        if (!rr->selected)
            continue;
        json_t *j = json_object();
        json_object_set_new(j, "id", json_string(s->relations[i].id));
        json_object_set_new(j, "expect", json_string(s->relations[i].expr));
        json_object_set_new(j, "status", json_string(xf_regress_status_name(rr->status)));
        json_object_set_new(j, "lhs", jnum(rr->lhs));
        json_object_set_new(j, "rhs", jnum(rr->rhs));
        /* a side over several cases: its range and count (the value is the mean) */
        if (rr->lhs_n > 1)
            json_object_set_new(j, "lhs_range", json_pack("[o, o, I]", jnum(rr->lhs_min),
                                                          jnum(rr->lhs_max), (json_int_t)rr->lhs_n));
        if (rr->rhs_n > 1)
            json_object_set_new(j, "rhs_range", json_pack("[o, o, I]", jnum(rr->rhs_min),
                                                          jnum(rr->rhs_max), (json_int_t)rr->rhs_n));
        json_object_set_new(j, "reason",
                            rr->reason.msg[0] ? json_string(rr->reason.msg) : json_null());
        json_array_append_new(rels, j);
    }
    json_object_set_new(root, "cases", cases);
    json_object_set_new(root, "relations", rels);
    return root;
}

static int render_json(FILE *o, const xf_regress_results *r)
{
    json_t *j = build_json(r);
    char *text =
        j ? json_dumps(j, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(15)) : NULL;
    json_decref(j);
    if (!text)
        return -1;
    fprintf(o, "%s\n", text);
    free(text);
    return 0;
}

/* ---- JUnit XML ---- */

static void junit_checks(FILE *o, const xf_regress_case_result *cr)
{
    for (size_t k = 0; k < cr->n_checks; k++) {
        const xf_regress_check *ck = &cr->checks[k];
        char e[32], g[32], d[64], b[80], line[320];
        snprintf(line, sizeof line, "%s: expected %s got %s delta %s band %s %s %s\n",
                 xf_regress_metric_name(ck->metric), fmt_num(e, sizeof e, ck->expected),
                 fmt_num(g, sizeof g, ck->got), fmt_delta(d, sizeof d, ck),
                 fmt_band(b, sizeof b, ck), xf_regress_status_name(ck->status), check_note(ck));
        xf_regress_xml_escaped(o, line);
    }
}

static void junit_verdict(FILE *o, xf_regress_status st, const char *reason,
                          const xf_regress_case_result *cr)
{
    if (st == XF_REGRESS_PASS) {
        fputs("/>\n", o);
        return;
    }
    fputs(">\n", o);
    if (st == XF_REGRESS_SKIP) {
        fputs("    <skipped message=\"", o);
        xf_regress_xml_escaped(o, reason);
        fputs("\"/>\n", o);
    } else {
        fputs("    <failure message=\"", o);
        xf_regress_xml_escaped(o, reason);
        fputs("\">", o);
        if (cr)
            junit_checks(o, cr);
        fputs("</failure>\n", o);
    }
    fputs("  </testcase>\n", o);
}

static int render_junit(FILE *o, const xf_regress_results *r)
{
    const xf_regress_suite *s = r->suite;
    double total = 0;
    for (size_t i = 0; i < s->n_cases; i++)
        if (r->cases[i].selected && isfinite(r->cases[i].got.seconds))
            total += r->cases[i].got.seconds;
    fputs("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuite name=\"", o);
    xf_regress_xml_escaped(o, s->name);
    fprintf(o, "\" tests=\"%zu\" failures=\"%zu\" errors=\"0\" skipped=\"%zu\" time=\"%.3f\">\n",
            r->n_pass + r->n_fail + r->n_skip, r->n_fail, r->n_skip, total);
    for (size_t i = 0; i < s->n_cases; i++) {
        const xf_regress_case_result *cr = &r->cases[i];
        if (!cr->selected)
            continue;
        fputs("  <testcase classname=\"regress.", o);
        xf_regress_xml_escaped(o, s->name);
        fputs("\" name=\"", o);
        xf_regress_xml_escaped(o, s->cases[i].id);
        fprintf(o, "\" time=\"%.3f\"", isfinite(cr->got.seconds) ? cr->got.seconds : 0.0);
        junit_verdict(o, cr->status, cr->reason.msg, cr);
    }
    for (size_t i = 0; i < s->n_relations; i++) {
        const xf_regress_relation_result *rr = &r->relations[i];
        if (!rr->selected)
            continue;
        fputs("  <testcase classname=\"regress.", o);
        xf_regress_xml_escaped(o, s->name);
        fputs(".relations\" name=\"", o);
        xf_regress_xml_escaped(o, s->relations[i].id);
        fputs("\" time=\"0.000\"", o);
        junit_verdict(o, rr->status, rr->reason.msg, NULL);
    }
    fputs("</testsuite>\n", o);
    return 0;
}

/* ---- Markdown ---- */

/* A table cell: '|' would end it and '<' could open an HTML tag. */
static void md_escaped(FILE *o, const char *s)
{
    for (; *s; s++) {
        switch (*s) {
        case '|': fputs("\\|", o); break;
        case '<': fputs("&lt;", o); break;
        case '>': fputs("&gt;", o); break;
        case '&': fputs("&amp;", o); break;
        case '\n':
        case '\r': fputc(' ', o); break;
        default: fputc(*s, o);
        }
    }
}

static int render_markdown(FILE *o, const xf_regress_results *r)
{
    const xf_regress_suite *s = r->suite;
    fputs("# Regression suite ", o);
    md_escaped(o, s->name);
    fprintf(o, "\n\n**%s**: %zu pass, %zu fail, %zu skip (`", overall(r), r->n_pass, r->n_fail,
            r->n_skip);
    md_escaped(o, s->path);
    fputs("`)\n\n| case | method | metric | expected | got | delta | band | result |\n"
          "|---|---|---|---:|---:|---:|---|---|\n",
          o);
    for (size_t i = 0; i < s->n_cases; i++) {
        const xf_regress_case_result *cr = &r->cases[i];
        if (!cr->selected)
            continue;
        const char *method = xf_regress_method_name(s->cases[i].recipe.method);
        if (cr->n_checks == 0 || cr->exec != XF_REGRESS_EXEC_OK) {
            fputs("| ", o);
            md_escaped(o, s->cases[i].id);
            fprintf(o, " | %s | - | - | - | - | - | %s", method,
                    xf_regress_status_name(cr->status));
            if (cr->reason.msg[0]) {
                fputs(": ", o);
                md_escaped(o, cr->reason.msg);
            }
            fputs(" |\n", o);
            continue;
        }
        for (size_t k = 0; k < cr->n_checks; k++) {
            const xf_regress_check *ck = &cr->checks[k];
            char e[32], g[32], d[64], b[80];
            fputs("| ", o);
            md_escaped(o, s->cases[i].id);
            fprintf(o, " | %s | %s | %s | %s | %s | ", method, xf_regress_metric_name(ck->metric),
                    fmt_num(e, sizeof e, ck->expected), fmt_num(g, sizeof g, ck->got),
                    fmt_delta(d, sizeof d, ck));
            md_escaped(o, fmt_band(b, sizeof b, ck));
            fprintf(o, " | %s%s%s |\n", xf_regress_status_name(ck->status),
                    *check_note(ck) ? ": " : "", check_note(ck));
        }
    }
    bool header = false;
    for (size_t i = 0; i < s->n_relations; i++) {
        const xf_regress_relation_result *rr = &r->relations[i];
        if (!rr->selected)
            continue;
        if (!header)
            fputs("\n## Relations\n\n| relation | expect | lhs | rhs | result |\n"
                  "|---|---|---:|---:|---|\n",
                  o);
        header = true;
        char a[160], b[160];
        fputs("| ", o);
        md_escaped(o, s->relations[i].id);
        fputs(" | ", o);
        md_escaped(o, s->relations[i].expr);
        fprintf(o, " | %s | %s | %s",
                fmt_side(a, sizeof a, rr->lhs, rr->lhs_min, rr->lhs_max, rr->lhs_n),
                fmt_side(b, sizeof b, rr->rhs, rr->rhs_min, rr->rhs_max, rr->rhs_n),
                xf_regress_status_name(rr->status));
        if (rr->reason.msg[0]) {
            fputs(": ", o);
            md_escaped(o, rr->reason.msg);
        }
        fputs(" |\n", o);
    }
    return 0;
}

/* ---- entry points ---- */

char *xf_regress_render(const xf_regress_results *r, xf_regress_format fmt)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *o = open_memstream(&buf, &len);
    if (!o)
        return NULL;
    int rc = -1;
    switch (fmt) {
    case XF_REGRESS_TABLE: rc = render_table(o, r); break;
    case XF_REGRESS_JSON: rc = render_json(o, r); break;
    case XF_REGRESS_JUNIT: rc = render_junit(o, r); break;
    case XF_REGRESS_MARKDOWN: rc = render_markdown(o, r); break;
    case XF_REGRESS_SVG: rc = xf_regress_render_svg(o, r); break;
    }
    if (fclose(o) != 0 || rc != 0) {
        free(buf);
        return NULL;
    }
    return buf;
}

int xf_regress_write(const xf_regress_results *r, xf_regress_format fmt, const char *path,
                     xf_error *err)
{
    char *text = xf_regress_render(r, fmt);
    if (!text)
        return xf_fail(err, "%s: out of memory rendering the report", path);
    xf_atomic_file f;
    int rc = xf_atomic_open(&f, path, err);
    if (rc == 0)
        rc = xf_atomic_write(&f, text, strlen(text), err);
    if (rc == 0)
        rc = xf_atomic_commit(&f, err);
    xf_atomic_abort(&f);
    free(text);
    return rc;
}
