/* Outputs of a regression run: terminal table, JSON, JUnit XML, Markdown,
 * SVG. Everything is printed into an open_memstream buffer. */
#include "regress/report.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/atomic_file.h"

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

/* XML text/attribute escaping; control characters XML 1.0 cannot carry
 * become spaces. */
static void xml_escaped(FILE *o, const char *s)
{
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        switch (c) {
        case '&': fputs("&amp;", o); break;
        case '<': fputs("&lt;", o); break;
        case '>': fputs("&gt;", o); break;
        case '"': fputs("&quot;", o); break;
        case '\'': fputs("&apos;", o); break;
        default: fputc(c < 0x20 && c != '\t' && c != '\n' && c != '\r' ? ' ' : c, o);
        }
    }
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
        char a[32], b[32];
        if (!(row = table_add(&t)))
            goto oom;
        /* an unnamed relation is named by its expression: do not print it twice */
        const char *name =
            strcmp(s->relations[i].id, s->relations[i].expr) ? s->relations[i].id : "-";
        cells(row, name, s->relations[i].expr, fmt_num(a, sizeof a, rr->lhs),
              fmt_num(b, sizeof b, rr->rhs), xf_regress_status_name(rr->status), NULL, NULL);
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
        xml_escaped(o, line);
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
        xml_escaped(o, reason);
        fputs("\"/>\n", o);
    } else {
        fputs("    <failure message=\"", o);
        xml_escaped(o, reason);
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
    xml_escaped(o, s->name);
    fprintf(o, "\" tests=\"%zu\" failures=\"%zu\" errors=\"0\" skipped=\"%zu\" time=\"%.3f\">\n",
            r->n_pass + r->n_fail + r->n_skip, r->n_fail, r->n_skip, total);
    for (size_t i = 0; i < s->n_cases; i++) {
        const xf_regress_case_result *cr = &r->cases[i];
        if (!cr->selected)
            continue;
        fputs("  <testcase classname=\"regress.", o);
        xml_escaped(o, s->name);
        fputs("\" name=\"", o);
        xml_escaped(o, s->cases[i].id);
        fprintf(o, "\" time=\"%.3f\"", isfinite(cr->got.seconds) ? cr->got.seconds : 0.0);
        junit_verdict(o, cr->status, cr->reason.msg, cr);
    }
    for (size_t i = 0; i < s->n_relations; i++) {
        const xf_regress_relation_result *rr = &r->relations[i];
        if (!rr->selected)
            continue;
        fputs("  <testcase classname=\"regress.", o);
        xml_escaped(o, s->name);
        fputs(".relations\" name=\"", o);
        xml_escaped(o, s->relations[i].id);
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
        char a[32], b[32];
        fputs("| ", o);
        md_escaped(o, s->relations[i].id);
        fputs(" | ", o);
        md_escaped(o, s->relations[i].expr);
        fprintf(o, " | %s | %s | %s", fmt_num(a, sizeof a, rr->lhs), fmt_num(b, sizeof b, rr->rhs),
                xf_regress_status_name(rr->status));
        if (rr->reason.msg[0]) {
            fputs(": ", o);
            md_escaped(o, rr->reason.msg);
        }
        fputs(" |\n", o);
    }
    return 0;
}

/* ---- SVG: one panel per model, x = bits per weight, y = PPL - fp16 PPL
 * (log) or PPL ---- */

/* Panel geometry: the plot area of a panel is [PL, PL + PW] x [PT, PT + PH]
 * inside a PANEL_W x PANEL_H cell; cells go in rows of at most SVG_COLS. */
enum {
    PANEL_W = 460,
    PANEL_H = 360,
    PL = 78,
    PT = 46,
    PW = 360,
    PH = 256,
    SVG_COLS = 2,
    LEGEND_ROW = 22
};

static const char *const series_colors[] = {"#1f77b4", "#d62728", "#2ca02c", "#9467bd",
                                            "#ff7f0e", "#8c564b", "#e377c2", "#17becf"};
#define N_COLORS (sizeof series_colors / sizeof *series_colors)

typedef struct {
    double lo, hi, step;
} svg_axis;

/* Round limits and a 1/2/5 x 10^k tick step giving about 5 intervals. */
static svg_axis nice_axis(double lo, double hi)
{
    if (!(hi - lo > 1e-12 * fmax(1.0, fabs(hi)))) {
        double pad = lo != 0 ? 0.1 * fabs(lo) : 1.0;
        lo -= pad;
        hi += pad;
    }
    double raw = (hi - lo) / 5, mag = pow(10, floor(log10(raw))), f = raw / mag;
    double step = (f <= 1 ? 1 : f <= 2 ? 2 : f <= 5 ? 5 : 10) * mag;
    svg_axis a = {floor(lo / step) * step, ceil(hi / step) * step, step};
    return a;
}

/* A plotted case. */
typedef struct {
    size_t case_index;
    int series;  /* index into the legend's series */
    int panel;
    double x, y; /* bits per weight; PPL or PPL - reference */
    double ppl, ref;
    bool clamped; /* y <= 0 on a log axis: drawn at the floor */
} svg_point;

/* What a line stands for: the method (with llama-quantize's imatrix) and,
 * when a run mixes scorers, the scorer. The legend label is the key. */
static void series_label(const xf_regress_case *c, bool mixed_scorers, char *buf, size_t cap)
{
    const xf_regress_recipe *r = &c->recipe;
    const char *m = r->method == XF_REGRESS_FP16   ? "fp16"
                    : r->method == XF_REGRESS_RTN  ? "xfquant rtn"
                    : r->method == XF_REGRESS_GPTQ ? "xfquant gptq"
                    : r->imatrix == 1              ? "llama-quantize + imatrix"
                                                   : "llama-quantize";
    if (mixed_scorers)
        snprintf(buf, cap, "%s [%s]", m,
                 c->eval.scorer == XF_SCORER_LLAMA_PERPLEXITY ? "llama-perplexity"
                                                              : "xfquant ppl");
    else
        snprintf(buf, cap, "%s", m);
}

typedef struct {
    char label[96];
    bool llamacpp; /* made by llama.cpp: square markers */
} svg_series;

typedef struct {
    const char *model; /* as written in the suite */
    bool log_delta;    /* y = PPL - fp16 PPL on a log axis */
    double xlo, xhi, ylo, yhi;
    size_t n_points;
} svg_panel;

static bool plotted(const xf_regress_results *r, size_t i)
{
    const xf_regress_case_result *cr = &r->cases[i];
    return cr->selected && cr->exec == XF_REGRESS_EXEC_OK && isfinite(cr->got.ppl) &&
           isfinite(cr->got.bits_per_weight);
}

/* The fp16 case scoring the same model with the same scorer, or -1. */
static long reference_of(const xf_regress_results *r, size_t i)
{
    const xf_regress_suite *s = r->suite;
    const xf_regress_case *c = &s->cases[i];
    for (size_t k = 0; k < s->n_cases; k++) {
        const xf_regress_case *f = &s->cases[k];
        if (f->recipe.method == XF_REGRESS_FP16 && plotted(r, k) && !strcmp(f->model, c->model) &&
            f->eval.scorer == c->eval.scorer && r->cases[k].got.ppl > 0)
            return (long)k;
    }
    return -1;
}

static const char *model_name(const char *model)
{
    size_t n = strlen(model);
    while (n > 1 && model[n - 1] == '/')
        n--;
    const char *p = model + n;
    while (p > model && p[-1] != '/')
        p--;
    return p;
}

static double px_of(const svg_axis *ax, double x, double x0)
{
    return x0 + PL + (x - ax->lo) / (ax->hi - ax->lo) * PW;
}

static double py_of(const svg_panel *p, const svg_axis *ay, double y, double y0)
{
    double t = p->log_delta ? (log10(y) - log10(ay->lo)) / (log10(ay->hi) - log10(ay->lo))
                            : (y - ay->lo) / (ay->hi - ay->lo);
    return y0 + PT + PH - t * PH;
}

static void svg_line(FILE *o, double x1, double y1, double x2, double y2, const char *extra)
{
    fprintf(o, "<line x1=\"%.2f\" y1=\"%.2f\" x2=\"%.2f\" y2=\"%.2f\" stroke=\"%s\"%s/>\n", x1, y1,
            x2, y2, "black", extra);
}

static void svg_marker(FILE *o, double x, double y, const svg_series *se, int color,
                       bool hollow, const char *tip)
{
    const char *c = color < 0 ? "#444444" : series_colors[color % N_COLORS];
    char fill[64];
    snprintf(fill, sizeof fill, hollow ? "fill=\"white\" stroke=\"%s\" stroke-width=\"2\""
                                       : "fill=\"%s\"",
             c);
    /* a data point has its tooltip; a legend key has none */
    const char *cls = tip ? "point" : "key";
    if (se->llamacpp)
        fprintf(o, "<rect class=\"%s\" x=\"%.2f\" y=\"%.2f\" width=\"9\" height=\"9\" %s>",
                cls, x - 4.5, y - 4.5, fill);
    else
        fprintf(o, "<circle class=\"%s\" cx=\"%.2f\" cy=\"%.2f\" r=\"4.5\" %s>", cls, x, y,
                fill);
    if (tip) {
        fputs("<title>", o);
        xml_escaped(o, tip);
        fputs("</title>", o);
    }
    fputs(se->llamacpp ? "</rect>\n" : "</circle>\n", o);
}

static void svg_text(FILE *o, double x, double y, const char *anchor, const char *extra,
                     const char *text)
{
    fprintf(o, "<text x=\"%.2f\" y=\"%.2f\" text-anchor=\"%s\"%s>", x, y, anchor, extra);
    xml_escaped(o, text);
    fputs("</text>\n", o);
}

static int cmp_point(const void *a, const void *b)
{
    const svg_point *p = a, *q = b;
    if (p->panel != q->panel)
        return p->panel < q->panel ? -1 : 1;
    if (p->series != q->series)
        return p->series < q->series ? -1 : 1;
    if (p->x != q->x)
        return p->x < q->x ? -1 : 1;
    if (p->y != q->y)
        return p->y < q->y ? -1 : 1;
    return p->case_index < q->case_index ? -1 : p->case_index > q->case_index;
}

static void draw_panel(FILE *o, const xf_regress_results *r, const svg_panel *p, int pi,
                       const svg_point *pts, size_t n, const svg_series *series, double x0,
                       double y0)
{
    const xf_regress_suite *s = r->suite;
    fprintf(o, "<g class=\"panel\" data-model=\"");
    xml_escaped(o, p->model);
    fputs("\">\n", o);
    char title[160];
    snprintf(title, sizeof title, "%s: %s", model_name(p->model),
             p->log_delta ? "PPL above fp16" : "perplexity");
    svg_text(o, x0 + PL + PW / 2.0, y0 + 24, "middle", " font-size=\"14\"", title);
    svg_axis ax = nice_axis(p->xlo, p->xhi), ay;
    if (p->log_delta) {
        ay.lo = pow(10, floor(log10(p->ylo)));
        ay.hi = pow(10, ceil(log10(p->yhi)));
        if (!(ay.hi > ay.lo))
            ay.hi = ay.lo * 10;
        ay.step = 10;
    } else {
        ay = nice_axis(p->ylo, p->yhi);
    }
    /* frame and grid; <path> is reserved for the series */
    fprintf(o,
            "<rect x=\"%.2f\" y=\"%.2f\" width=\"%d\" height=\"%d\" fill=\"none\" "
            "stroke=\"black\"/>\n",
            x0 + PL, y0 + PT, PW, PH);
    char lab[32];
    for (int i = 0; i <= 50; i++) {
        double v = ax.lo + i * ax.step;
        if (v > ax.hi + 1e-9 * ax.step)
            break;
        double px = px_of(&ax, v, x0);
        svg_line(o, px, y0 + PT, px, y0 + PT + PH, " stroke-opacity=\"0.12\"");
        svg_line(o, px, y0 + PT + PH, px, y0 + PT + PH + 5, "");
        snprintf(lab, sizeof lab, "%g", fabs(v) < 1e-12 * ax.step ? 0.0 : v);
        svg_text(o, px, y0 + PT + PH + 18, "middle", "", lab);
    }
    if (p->log_delta) {
        int decades = (int)lround(log10(ay.hi / ay.lo));
        for (int d = 0; d <= decades; d++)
            for (int m = 1; m <= 9; m++) {
                double v = ay.lo * pow(10, d) * m;
                if (v > ay.hi * (1 + 1e-9) || (d == decades && m > 1))
                    break;
                double py = py_of(p, &ay, v, y0);
                bool major = m == 1, labelled = major || (decades <= 2 && (m == 2 || m == 5));
                svg_line(o, x0 + PL, py, x0 + PL + PW, py,
                         major ? " stroke-opacity=\"0.25\"" : " stroke-opacity=\"0.08\"");
                svg_line(o, x0 + PL - (major ? 6 : 3), py, x0 + PL, py, "");
                if (labelled) {
                    snprintf(lab, sizeof lab, "%g", v);
                    svg_text(o, x0 + PL - 8, py + 4, "end", "", lab);
                }
            }
    } else {
        for (int i = 0; i <= 50; i++) {
            double v = ay.lo + i * ay.step;
            if (v > ay.hi + 1e-9 * ay.step)
                break;
            double py = py_of(p, &ay, v, y0);
            svg_line(o, x0 + PL, py, x0 + PL + PW, py, " stroke-opacity=\"0.12\"");
            svg_line(o, x0 + PL - 5, py, x0 + PL, py, "");
            snprintf(lab, sizeof lab, "%g", fabs(v) < 1e-12 * ay.step ? 0.0 : v);
            svg_text(o, x0 + PL - 8, py + 4, "end", "", lab);
        }
    }
    svg_text(o, x0 + PL + PW / 2.0, y0 + PT + PH + 38, "middle", "", "bits per weight");
    double cy = y0 + PT + PH / 2.0, cx = x0 + 20;
    fprintf(o,
            "<text x=\"%.2f\" y=\"%.2f\" text-anchor=\"middle\" transform=\"rotate(-90 %.2f "
            "%.2f)\">%s</text>\n",
            cx, cy, cx, cy, p->log_delta ? "PPL − fp16 PPL (log)" : "perplexity");
    if (p->n_points == 0)
        svg_text(o, x0 + PL + PW / 2.0, cy, "middle", "", "no measured cases");
    /* fp16 as a horizontal reference when y is the perplexity itself */
    if (!p->log_delta)
        for (size_t i = 0; i < s->n_cases; i++) {
            if (s->cases[i].recipe.method != XF_REGRESS_FP16 || !plotted(r, i) ||
                strcmp(s->cases[i].model, p->model))
                continue;
            double v = r->cases[i].got.ppl;
            if (v < ay.lo || v > ay.hi)
                continue;
            double py = py_of(p, &ay, v, y0);
            fprintf(o,
                    "<line class=\"reference\" x1=\"%.2f\" y1=\"%.2f\" x2=\"%.2f\" y2=\"%.2f\" "
                    "stroke=\"#444444\" stroke-dasharray=\"6 4\"><title>",
                    x0 + PL, py, x0 + PL + PW, py);
            char tip[160];
            snprintf(tip, sizeof tip, "%s: fp16, ppl %.6g", s->cases[i].id, v);
            xml_escaped(o, tip);
            fputs("</title></line>\n", o);
        }
    /* the series: one line each through its points sorted by bits */
    for (size_t a = 0; a < n;) {
        size_t b = a;
        while (b < n && pts[b].series == pts[a].series)
            b++;
        const char *color = series_colors[pts[a].series % N_COLORS];
        fprintf(o, "<path class=\"series\" data-series=\"");
        xml_escaped(o, series[pts[a].series].label);
        fprintf(o, "\" fill=\"none\" stroke=\"%s\" stroke-width=\"2\" d=\"", color);
        for (size_t i = a; i < b; i++)
            fprintf(o, "%s%.2f %.2f", i > a ? " L " : "M ", px_of(&ax, pts[i].x, x0),
                    py_of(p, &ay, pts[i].clamped ? ay.lo : pts[i].y, y0));
        fputs("\"/>\n", o);
        double last_label = -INFINITY;
        bool below = false;
        for (size_t i = a; i < b; i++) {
            char tip[256];
            const char *id = s->cases[pts[i].case_index].id;
            if (p->log_delta)
                snprintf(tip, sizeof tip, "%s: %.6g bits, ppl %.6g (fp16 %.6g, +%.6g)%s", id,
                         pts[i].x, pts[i].ppl, pts[i].ref, pts[i].ppl - pts[i].ref,
                         pts[i].clamped ? " - not above fp16: drawn at the axis floor" : "");
            else
                snprintf(tip, sizeof tip, "%s: %.6g bits, ppl %.6g", id, pts[i].x, pts[i].ppl);
            double mx = px_of(&ax, pts[i].x, x0);
            double my = py_of(p, &ay, pts[i].clamped ? ay.lo : pts[i].y, y0);
            svg_marker(o, mx, my, &series[pts[i].series], pts[i].series, pts[i].clamped, tip);
            /* llama.cpp's points name their file type (the x of each type) */
            const char *ft = s->cases[pts[i].case_index].recipe.gguf_type;
            if (series[pts[i].series].llamacpp && ft) {
                /* neighbours closer than a label's width alternate above and below */
                below = mx - last_label < 40 ? !below : false;
                last_label = mx;
                svg_text(o, mx + 5, below ? my + 16 : my - 8, "start",
                         " font-size=\"9\" fill=\"#555555\"", ft);
            }
        }
        a = b;
    }
    (void)pi;
    fputs("</g>\n", o);
}

static int render_svg(FILE *o, const xf_regress_results *r)
{
    const xf_regress_suite *s = r->suite;
    size_t nc = s->n_cases ? s->n_cases : 1;
    svg_point *pts = calloc(nc, sizeof *pts);
    svg_panel *panels = calloc(nc, sizeof *panels);
    svg_series *series = calloc(nc, sizeof *series);
    if (!pts || !panels || !series) {
        free(pts);
        free(panels);
        free(series);
        return -1;
    }
    /* scorers mixed in the run: then the legend says which line is whose */
    bool seen[2] = {false, false};
    for (size_t i = 0; i < s->n_cases; i++)
        if (plotted(r, i))
            seen[s->cases[i].eval.scorer == XF_SCORER_LLAMA_PERPLEXITY] = true;
    bool mixed = seen[0] && seen[1];
    /* panels (models in suite order, every selected case's model, so a
     * model whose cases all failed still shows) and series */
    int npan = 0, nser = 0;
    for (size_t i = 0; i < s->n_cases; i++) {
        if (!r->cases[i].selected)
            continue;
        int k = 0;
        while (k < npan && strcmp(panels[k].model, s->cases[i].model))
            k++;
        if (k == npan) {
            panels[npan].model = s->cases[i].model;
            panels[npan].log_delta = true;
            npan++;
        }
    }
    size_t n = 0;
    for (size_t i = 0; i < s->n_cases; i++) {
        if (!plotted(r, i))
            continue;
        const xf_regress_case *c = &s->cases[i];
        int k = 0;
        while (strcmp(panels[k].model, c->model))
            k++;
        if (c->recipe.method == XF_REGRESS_FP16)
            continue; /* a reference, not a point */
        char label[96];
        series_label(c, mixed, label, sizeof label);
        int se = 0;
        while (se < nser && strcmp(series[se].label, label))
            se++;
        if (se == nser) {
            snprintf(series[nser].label, sizeof series[nser].label, "%s", label);
            series[nser].llamacpp = c->recipe.method == XF_REGRESS_LLAMA_QUANTIZE;
            nser++;
        }
        long ref = reference_of(r, i);
        svg_point *p = &pts[n++];
        p->case_index = i;
        p->series = se;
        p->panel = k;
        p->x = r->cases[i].got.bits_per_weight;
        p->ppl = r->cases[i].got.ppl;
        p->ref = ref >= 0 ? r->cases[ref].got.ppl : NAN;
        if (ref < 0)
            panels[k].log_delta = false;
    }
    /* each panel's ranges: x over its points (padded so that no point sits on the frame); y over the deltas (log) or
     * the perplexities and fp16 references */
    for (int k = 0; k < npan; k++) {
        svg_panel *p = &panels[k];
        p->xlo = p->ylo = INFINITY;
        p->xhi = p->yhi = -INFINITY;
        for (size_t i = 0; i < n; i++) {
            if (pts[i].panel != k)
                continue;
            svg_point *q = &pts[i];
            p->n_points++;
            q->y = p->log_delta ? q->ppl - q->ref : q->ppl;
            p->xlo = fmin(p->xlo, q->x);
            p->xhi = fmax(p->xhi, q->x);
            if (p->log_delta && !(q->y > 0))
                continue;
            p->ylo = fmin(p->ylo, q->y);
            p->yhi = fmax(p->yhi, q->y);
        }
        if (p->n_points == 0)
            p->log_delta = false; /* nothing above a reference to show */
        if (!p->log_delta)
            for (size_t i = 0; i < s->n_cases; i++)
                if (s->cases[i].recipe.method == XF_REGRESS_FP16 && plotted(r, i) &&
                    !strcmp(s->cases[i].model, p->model)) {
                    p->ylo = fmin(p->ylo, r->cases[i].got.ppl);
                    p->yhi = fmax(p->yhi, r->cases[i].got.ppl);
                }
        if (p->log_delta && !(p->yhi > 0)) /* no point above fp16 (or none at all) */
            p->ylo = 0.01, p->yhi = 1;
        else if (!isfinite(p->ylo))
            p->ylo = 0, p->yhi = 100;
        if (!isfinite(p->xlo))
            p->xlo = 0, p->xhi = 16;
        double pad = 0.03 * fmax(p->xhi - p->xlo, 0.5);
        p->xlo -= pad;
        p->xhi += pad;
        for (size_t i = 0; i < n; i++)
            if (pts[i].panel == k && p->log_delta && !(pts[i].y > 0))
                pts[i].clamped = true;
    }
    qsort(pts, n, sizeof *pts, cmp_point);

    int cols = npan < SVG_COLS ? (npan > 0 ? npan : 1) : SVG_COLS;
    int rows = npan > 0 ? (npan + cols - 1) / cols : 1;
    bool any_linear = false, any_clamped = false; /* any_linear: a dashed fp16 line drawn */
    for (int k = 0; k < npan; k++)
        for (size_t i = 0; i < s->n_cases && !panels[k].log_delta; i++)
            any_linear |= s->cases[i].recipe.method == XF_REGRESS_FP16 && plotted(r, i) &&
                          !strcmp(s->cases[i].model, panels[k].model);
    for (size_t i = 0; i < n; i++)
        any_clamped |= pts[i].clamped;
    int legend_rows = nser + any_linear + any_clamped;
    int width = cols * PANEL_W + 20, height = rows * PANEL_H + 64 + legend_rows * LEGEND_ROW + 20;
    fprintf(o,
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" "
            "viewBox=\"0 0 %d %d\" font-family=\"sans-serif\" font-size=\"12\">\n"
            "<rect x=\"0\" y=\"0\" width=\"%d\" height=\"%d\" fill=\"white\"/>\n",
            width, height, width, height, width, height);
    char title[256];
    snprintf(title, sizeof title, "%s: perplexity vs bits per weight", s->name);
    svg_text(o, width / 2.0, 22, "middle", " font-size=\"15\" font-weight=\"bold\"", title);
    svg_text(o, width / 2.0, 40, "middle", " font-size=\"11\" fill=\"#444444\"",
             "x: bits per weight; y: PPL minus the PPL of the model's fp16 case with the same "
             "scorer (log axis), or PPL where there is none");
    size_t at = 0;
    for (int k = 0; k < npan; k++) {
        size_t b = at;
        while (b < n && pts[b].panel == k)
            b++;
        draw_panel(o, r, &panels[k], k, pts + at, b - at, series, 10 + (k % cols) * PANEL_W,
                   44 + (k / cols) * PANEL_H);
        at = b;
    }
    if (npan == 0) {
        svg_panel empty = {"(no cases)", false, 0, 16, 0, 100, 0};
        draw_panel(o, r, &empty, 0, NULL, 0, series, 10, 44);
    }
    /* the legend: one entry per series (line + marker), then fp16 */
    double ly = 44 + rows * PANEL_H + 20;
    fputs("<g class=\"legend\">\n", o);
    for (int se = 0; se < nser; se++) {
        double y = ly + se * LEGEND_ROW;
        fprintf(o,
                "<g class=\"legend-entry\"><line x1=\"%d\" y1=\"%.2f\" x2=\"%d\" y2=\"%.2f\" "
                "stroke=\"%s\" stroke-width=\"2\"/>\n",
                PL, y, PL + 36, y, series_colors[se % N_COLORS]);
        svg_marker(o, PL + 18, y, &series[se], se, false, NULL);
        svg_text(o, PL + 46, y + 4, "start", "", series[se].label);
        fputs("</g>\n", o);
    }
    double y = ly + nser * LEGEND_ROW;
    if (any_linear) {
        fprintf(o,
                "<g class=\"legend-entry\"><line x1=\"%d\" y1=\"%.2f\" x2=\"%d\" y2=\"%.2f\" "
                "stroke=\"#444444\" stroke-dasharray=\"6 4\"/>\n",
                PL, y, PL + 36, y);
        svg_text(o, PL + 46, y + 4, "start", "", "fp16 (reference)");
        fputs("</g>\n", o);
        y += LEGEND_ROW;
    }
    if (any_clamped) {
        svg_series hollow = {"", false};
        fputs("<g class=\"legend-entry\">", o);
        svg_marker(o, PL + 18, y, &hollow, -1, true, NULL);
        svg_text(o, PL + 46, y + 4, "start", "", "not above fp16: drawn at the axis floor");
        fputs("</g>\n", o);
    }
    fputs("</g>\n</svg>\n", o);
    free(pts);
    free(panels);
    free(series);
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
    case XF_REGRESS_SVG: rc = render_svg(o, r); break;
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
