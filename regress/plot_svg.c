/* The SVG plot of a regression run (`regress --plot`, docs/regress.md):
 * one panel per model, x = bits per weight, y = PPL - fp16 PPL (log) or
 * PPL, one line per series, llama.cpp's points as labelled squares. */
#include "regress/plot_svg.h"

#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "regress/xml_text.h"

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
        xf_regress_xml_escaped(o, tip);
        fputs("</title>", o);
    }
    fputs(se->llamacpp ? "</rect>\n" : "</circle>\n", o);
}

static void svg_text(FILE *o, double x, double y, const char *anchor, const char *extra,
                     const char *text)
{
    fprintf(o, "<text x=\"%.2f\" y=\"%.2f\" text-anchor=\"%s\"%s>", x, y, anchor, extra);
    xf_regress_xml_escaped(o, text);
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

/* The y axis of a panel: decades (log) or round steps. */
static svg_axis y_axis_of(const svg_panel *p)
{
    svg_axis ay;
    if (p->log_delta) {
        ay.lo = pow(10, floor(log10(p->ylo)));
        ay.hi = pow(10, ceil(log10(p->yhi)));
        if (!(ay.hi > ay.lo))
            ay.hi = ay.lo * 10;
        ay.step = 10;
    } else {
        ay = nice_axis(p->ylo, p->yhi);
    }
    return ay;
}

/* The x grid lines, ticks and labels. */
static void draw_x_grid(FILE *o, const svg_axis *ax, double x0, double y0)
{
    char lab[32];
    for (int i = 0; i <= 50; i++) {
        double v = ax->lo + i * ax->step;
        if (v > ax->hi + 1e-9 * ax->step)
            break;
        double px = px_of(ax, v, x0);
        svg_line(o, px, y0 + PT, px, y0 + PT + PH, " stroke-opacity=\"0.12\"");
        svg_line(o, px, y0 + PT + PH, px, y0 + PT + PH + 5, "");
        snprintf(lab, sizeof lab, "%g", fabs(v) < 1e-12 * ax->step ? 0.0 : v);
        svg_text(o, px, y0 + PT + PH + 18, "middle", "", lab);
    }
}

/* The y grid lines, ticks and labels (1-2-5 minor lines on a log axis). */
static void draw_y_grid(FILE *o, const svg_panel *p, const svg_axis *ay, double x0, double y0)
{
    char lab[32];
    if (p->log_delta) {
        int decades = (int)lround(log10(ay->hi / ay->lo));
        for (int d = 0; d <= decades; d++)
            for (int m = 1; m <= 9; m++) {
                double v = ay->lo * pow(10, d) * m;
                if (v > ay->hi * (1 + 1e-9) || (d == decades && m > 1))
                    break;
                double py = py_of(p, ay, v, y0);
                bool major = m == 1, labelled = major || (decades <= 2 && (m == 2 || m == 5));
                svg_line(o, x0 + PL, py, x0 + PL + PW, py,
                         major ? " stroke-opacity=\"0.25\"" : " stroke-opacity=\"0.08\"");
                svg_line(o, x0 + PL - (major ? 6 : 3), py, x0 + PL, py, "");
                if (labelled) {
                    snprintf(lab, sizeof lab, "%g", v);
                    svg_text(o, x0 + PL - 8, py + 4, "end", "", lab);
                }
            }
        return;
    }
    for (int i = 0; i <= 50; i++) {
        double v = ay->lo + i * ay->step;
        if (v > ay->hi + 1e-9 * ay->step)
            break;
        double py = py_of(p, ay, v, y0);
        svg_line(o, x0 + PL, py, x0 + PL + PW, py, " stroke-opacity=\"0.12\"");
        svg_line(o, x0 + PL - 5, py, x0 + PL, py, "");
        snprintf(lab, sizeof lab, "%g", fabs(v) < 1e-12 * ay->step ? 0.0 : v);
        svg_text(o, x0 + PL - 8, py + 4, "end", "", lab);
    }
}

/* fp16 as a horizontal reference when y is the perplexity itself. */
static void draw_fp16_lines(FILE *o, const xf_regress_results *r, const svg_panel *p,
                            const svg_axis *ay, double x0, double y0)
{
    const xf_regress_suite *s = r->suite;
    for (size_t i = 0; i < s->n_cases; i++) {
        if (s->cases[i].recipe.method != XF_REGRESS_FP16 || !plotted(r, i) ||
            strcmp(s->cases[i].model, p->model))
            continue;
        double v = r->cases[i].got.ppl;
        if (v < ay->lo || v > ay->hi)
            continue;
        double py = py_of(p, ay, v, y0);
        fprintf(o,
                "<line class=\"reference\" x1=\"%.2f\" y1=\"%.2f\" x2=\"%.2f\" y2=\"%.2f\" "
                "stroke=\"#444444\" stroke-dasharray=\"6 4\"><title>",
                x0 + PL, py, x0 + PL + PW, py);
        char tip[160];
        snprintf(tip, sizeof tip, "%s: fp16, ppl %.6g", s->cases[i].id, v);
        xf_regress_xml_escaped(o, tip);
        fputs("</title></line>\n", o);
    }
}

/* One series (points [a, b) of pts): its line through the points sorted by
 * bits, then each point's marker with a tooltip, and llama.cpp's file-type
 * labels. */
static void draw_series(FILE *o, const xf_regress_results *r, const svg_panel *p,
                        const svg_axis *ax, const svg_axis *ay, const svg_point *pts, size_t a,
                        size_t b, const svg_series *series, double x0, double y0)
{
    const xf_regress_suite *s = r->suite;
    const char *color = series_colors[pts[a].series % N_COLORS];
    fprintf(o, "<path class=\"series\" data-series=\"");
    xf_regress_xml_escaped(o, series[pts[a].series].label);
    fprintf(o, "\" fill=\"none\" stroke=\"%s\" stroke-width=\"2\" d=\"", color);
    for (size_t i = a; i < b; i++)
        fprintf(o, "%s%.2f %.2f", i > a ? " L " : "M ", px_of(ax, pts[i].x, x0),
                py_of(p, ay, pts[i].clamped ? ay->lo : pts[i].y, y0));
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
        double mx = px_of(ax, pts[i].x, x0);
        double my = py_of(p, ay, pts[i].clamped ? ay->lo : pts[i].y, y0);
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
}

static void draw_panel(FILE *o, const xf_regress_results *r, const svg_panel *p,
                       const svg_point *pts, size_t n, const svg_series *series, double x0,
                       double y0)
{
    fprintf(o, "<g class=\"panel\" data-model=\"");
    xf_regress_xml_escaped(o, p->model);
    fputs("\">\n", o);
    char title[160];
    snprintf(title, sizeof title, "%s: %s", model_name(p->model),
             p->log_delta ? "PPL above fp16" : "perplexity");
    svg_text(o, x0 + PL + PW / 2.0, y0 + 24, "middle", " font-size=\"14\"", title);
    const svg_axis ax = nice_axis(p->xlo, p->xhi), ay = y_axis_of(p);
    /* frame and grid; <path> is reserved for the series */
    fprintf(o,
            "<rect x=\"%.2f\" y=\"%.2f\" width=\"%d\" height=\"%d\" fill=\"none\" "
            "stroke=\"black\"/>\n",
            x0 + PL, y0 + PT, PW, PH);
    draw_x_grid(o, &ax, x0, y0);
    draw_y_grid(o, p, &ay, x0, y0);
    svg_text(o, x0 + PL + PW / 2.0, y0 + PT + PH + 38, "middle", "", "bits per weight");
    double cy = y0 + PT + PH / 2.0, cx = x0 + 20;
    fprintf(o,
            "<text x=\"%.2f\" y=\"%.2f\" text-anchor=\"middle\" transform=\"rotate(-90 %.2f "
            "%.2f)\">%s</text>\n",
            cx, cy, cx, cy, p->log_delta ? "PPL − fp16 PPL (log)" : "perplexity");
    if (p->n_points == 0)
        svg_text(o, x0 + PL + PW / 2.0, cy, "middle", "", "no measured cases");
    if (!p->log_delta)
        draw_fp16_lines(o, r, p, &ay, x0, y0);
    for (size_t a = 0; a < n;) {
        size_t b = a;
        while (b < n && pts[b].series == pts[a].series)
            b++;
        draw_series(o, r, p, &ax, &ay, pts, a, b, series, x0, y0);
        a = b;
    }
    fputs("</g>\n", o);
}

/* What a plot shows: panels (one per model), series, points. */
typedef struct svg_plot {
    svg_point *pts;
    size_t n;
    svg_panel *panels;
    int npan;
    svg_series *series;
    int nser;
} svg_plot;

static void plot_free(svg_plot *pl)
{
    free(pl->pts);
    free(pl->panels);
    free(pl->series);
    memset(pl, 0, sizeof *pl);
}

static int plot_init(svg_plot *pl, size_t n_cases)
{
    memset(pl, 0, sizeof *pl);
    size_t nc = n_cases ? n_cases : 1;
    pl->pts = calloc(nc, sizeof *pl->pts);
    pl->panels = calloc(nc, sizeof *pl->panels);
    pl->series = calloc(nc, sizeof *pl->series);
    if (!pl->pts || !pl->panels || !pl->series) {
        plot_free(pl);
        return -1;
    }
    return 0;
}

/* Panels: models in suite order, every selected case's model, so a model
 * whose cases all failed still shows. */
static void collect_panels(const xf_regress_results *r, svg_plot *pl)
{
    const xf_regress_suite *s = r->suite;
    for (size_t i = 0; i < s->n_cases; i++) {
        if (!r->cases[i].selected)
            continue;
        int k = 0;
        while (k < pl->npan && strcmp(pl->panels[k].model, s->cases[i].model))
            k++;
        if (k == pl->npan) {
            pl->panels[pl->npan].model = s->cases[i].model;
            pl->panels[pl->npan].log_delta = true;
            pl->npan++;
        }
    }
}

/* Series and points; mixed: scorers mixed in the run, so the legend says
 * which line is whose. */
static void collect_points(const xf_regress_results *r, bool mixed, svg_plot *pl)
{
    const xf_regress_suite *s = r->suite;
    for (size_t i = 0; i < s->n_cases; i++) {
        if (!plotted(r, i))
            continue;
        const xf_regress_case *c = &s->cases[i];
        int k = 0;
        while (strcmp(pl->panels[k].model, c->model))
            k++;
        if (c->recipe.method == XF_REGRESS_FP16)
            continue; /* a reference, not a point */
        char label[96];
        series_label(c, mixed, label, sizeof label);
        int se = 0;
        while (se < pl->nser && strcmp(pl->series[se].label, label))
            se++;
        if (se == pl->nser) {
            snprintf(pl->series[pl->nser].label, sizeof pl->series[pl->nser].label, "%s", label);
            pl->series[pl->nser].llamacpp = c->recipe.method == XF_REGRESS_LLAMA_QUANTIZE;
            pl->nser++;
        }
        long ref = reference_of(r, i);
        svg_point *p = &pl->pts[pl->n++];
        p->case_index = i;
        p->series = se;
        p->panel = k;
        p->x = r->cases[i].got.bits_per_weight;
        p->ppl = r->cases[i].got.ppl;
        p->ref = ref >= 0 ? r->cases[ref].got.ppl : NAN;
        if (ref < 0)
            pl->panels[k].log_delta = false;
    }
}

/* Panel k's ranges: x over its points (padded so that no point sits on the
 * frame); y over the deltas (log) or the perplexities and fp16 references. */
static void panel_ranges(const xf_regress_results *r, svg_plot *pl, int k)
{
    const xf_regress_suite *s = r->suite;
    svg_panel *p = &pl->panels[k];
    svg_point *pts = pl->pts;
    p->xlo = p->ylo = INFINITY;
    p->xhi = p->yhi = -INFINITY;
    for (size_t i = 0; i < pl->n; i++) {
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
    for (size_t i = 0; i < pl->n; i++)
        if (pts[i].panel == k && p->log_delta && !(pts[i].y > 0))
            pts[i].clamped = true;
}

/* The legend at y = ly: one entry per series (line + marker), then fp16
 * and the clamped-point marker where the plot has them. */
static void draw_legend(FILE *o, const svg_plot *pl, double ly, bool any_linear,
                        bool any_clamped)
{
    fputs("<g class=\"legend\">\n", o);
    for (int se = 0; se < pl->nser; se++) {
        double y = ly + se * LEGEND_ROW;
        fprintf(o,
                "<g class=\"legend-entry\"><line x1=\"%d\" y1=\"%.2f\" x2=\"%d\" y2=\"%.2f\" "
                "stroke=\"%s\" stroke-width=\"2\"/>\n",
                PL, y, PL + 36, y, series_colors[se % N_COLORS]);
        svg_marker(o, PL + 18, y, &pl->series[se], se, false, NULL);
        svg_text(o, PL + 46, y + 4, "start", "", pl->series[se].label);
        fputs("</g>\n", o);
    }
    double y = ly + pl->nser * LEGEND_ROW;
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
    fputs("</g>\n", o);
}

int xf_regress_render_svg(FILE *o, const xf_regress_results *r)
{
    const xf_regress_suite *s = r->suite;
    svg_plot pl;
    if (plot_init(&pl, s->n_cases) != 0)
        return -1;
    bool seen[2] = {false, false};
    for (size_t i = 0; i < s->n_cases; i++)
        if (plotted(r, i))
            seen[s->cases[i].eval.scorer == XF_SCORER_LLAMA_PERPLEXITY] = true;
    collect_panels(r, &pl);
    collect_points(r, seen[0] && seen[1], &pl);
    for (int k = 0; k < pl.npan; k++)
        panel_ranges(r, &pl, k);
    qsort(pl.pts, pl.n, sizeof *pl.pts, cmp_point);

    const int npan = pl.npan;
    int cols = npan < SVG_COLS ? (npan > 0 ? npan : 1) : SVG_COLS;
    int rows = npan > 0 ? (npan + cols - 1) / cols : 1;
    bool any_linear = false, any_clamped = false; /* any_linear: a dashed fp16 line drawn */
    for (int k = 0; k < npan; k++)
        for (size_t i = 0; i < s->n_cases && !pl.panels[k].log_delta; i++)
            any_linear |= s->cases[i].recipe.method == XF_REGRESS_FP16 && plotted(r, i) &&
                          !strcmp(s->cases[i].model, pl.panels[k].model);
    for (size_t i = 0; i < pl.n; i++)
        any_clamped |= pl.pts[i].clamped;
    int legend_rows = pl.nser + any_linear + any_clamped;
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
        while (b < pl.n && pl.pts[b].panel == k)
            b++;
        draw_panel(o, r, &pl.panels[k], pl.pts + at, b - at, pl.series,
                   10 + (k % cols) * PANEL_W, 44 + (k / cols) * PANEL_H);
        at = b;
    }
    if (npan == 0) {
        svg_panel empty = {"(no cases)", false, 0, 16, 0, 100, 0};
        draw_panel(o, r, &empty, NULL, 0, pl.series, 10, 44);
    }
    draw_legend(o, &pl, 44 + rows * PANEL_H + 20, any_linear, any_clamped);
    fputs("</svg>\n", o);
    plot_free(&pl);
    return 0;
}

