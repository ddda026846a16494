/* xf_stats: activation statistics of every layer's linear inputs on
 * calibration windows (calib/act_capture.h), the numbers to look at before
 * choosing a quantization scheme (`xfquant stats`). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "calib/act_capture.h"
#include "calib/calib_windows.h"
#include "api/call.h"
#include "api/model.h"
#include "core/log.h"
#include "model/loader.h"
#include "quant/transform/qsur.h"
#include "sim/act_hooks.h"
#include "sim/online.h"

#define STATS_DEFAULT_NSAMPLES 32

#define STATS_MAX_TOP 4096

typedef struct stats_args {
    xf_calib_source src;
    int64_t top;
    bool qsur;
    const char *in;
} stats_args;

/* The options with their defaults, checked as the CLI checks its flags. */
static int stats_args_make(stats_args *a, const xf_stats_options *o, const char *in, xf_status *st)
{
    memset(a, 0, sizeof *a);
    a->in = in;
    a->src.path = o->calib;
    a->src.field = o->calib_field;
    a->src.nsamples = o->nsamples ? o->nsamples : STATS_DEFAULT_NSAMPLES;
    a->src.seqlen = o->seqlen;
    a->src.seed = o->seed;
    a->top = o->top ? o->top : XF_ACT_STATS_DEFAULT_TOP;
    a->qsur = o->qsur != 0;
    if (!o->calib)
        return xf_api_fail_msg(st, XF_USAGE, "--calib FILE is required");
    if (!o->calib_format)
        a->src.format = XF_CALIB_AUTO;
    else if (!strcmp(o->calib_format, "text"))
        a->src.format = XF_CALIB_TEXT;
    else if (!strcmp(o->calib_format, "jsonl"))
        a->src.format = XF_CALIB_JSONL;
    else if (!strcmp(o->calib_format, "dir"))
        a->src.format = XF_CALIB_DIR;
    else
        return xf_api_failf(st, XF_USAGE, "--calib-format must be text, jsonl or dir, not '%s'",
                            o->calib_format);
    if (a->src.nsamples < 1 || a->src.nsamples > (1 << 20))
        return xf_api_failf(st, XF_USAGE, "--nsamples must be a positive integer, not '%lld'",
                            (long long)o->nsamples);
    if (a->src.seqlen < 0 || a->src.seqlen > (1 << 20))
        return xf_api_failf(st, XF_USAGE, "--seqlen must be a positive integer, not '%lld'",
                            (long long)o->seqlen);
    if (a->top < 1 || a->top > STATS_MAX_TOP)
        return xf_api_failf(st, XF_USAGE, "--top must be an integer in [1, 4096], not '%lld'",
                            (long long)o->top);
    return 0;
}

/* The window length: the explicit one or min(2048, max_pos), as gptq. */
static int window_length(const stats_args *a, const xf_model_config *cfg, int64_t *T,
                         xf_status *st)
{
    if (!a->src.seqlen) {
        *T = cfg->max_pos > 0 && cfg->max_pos < 2048 ? cfg->max_pos : 2048;
        return 0;
    }
    bool learned_positions = cfg->family == XF_FAMILY_OPT || cfg->family == XF_FAMILY_GPT2;
    if (learned_positions && a->src.seqlen > cfg->max_pos)
        return xf_api_failf(st, XF_USAGE,
                            "window of %lld tokens exceeds the model's %lld learned positions",
                            (long long)a->src.seqlen, (long long)cfg->max_pos);
    if (a->src.seqlen > cfg->max_pos)
        xf_log_warn("window of %lld tokens is longer than the model's max_position_embeddings %lld",
                    (long long)a->src.seqlen, (long long)cfg->max_pos);
    *T = a->src.seqlen;
    return 0;
}

/* --qsur: every input's QSUR (quant/transform/qsur.h) from its covariance,
 * [n_layers * XF_IN_COUNT]; NULL without --qsur. */
static int compute_qsur(const xf_model_act_stats *st, xf_qsur **out, xf_error *err)
{
    *out = NULL;
    if (!st->cov)
        return 0;
    const int64_t n = st->n_layers * XF_IN_COUNT;
    xf_qsur *q = calloc((size_t)n, sizeof *q);
    if (!q)
        return xf_fail(err, "out of memory for QSUR");
    int rc = 0;
    for (int64_t i = 0; i < n && rc == 0; i++) {
        const int64_t d = st->cov[i].d;
        double *mean = malloc((size_t)d * sizeof *mean);
        double *cov = malloc((size_t)d * (size_t)d * sizeof *cov);
        rc = mean && cov ? xf_act_cov_finalize(&st->cov[i], mean, cov, err)
                         : xf_fail(err, "out of memory for QSUR");
        if (rc == 0)
            rc = xf_qsur_compute(mean, cov, d, &q[i], err);
        if (rc != 0)
            xf_fail_prefix(err, "layer %lld %s input", (long long)(i / XF_IN_COUNT),
                           xf_lin_input_name((xf_lin_input)(i % XF_IN_COUNT)));
        free(mean);
        free(cov);
    }
    if (rc != 0) {
        free(q);
        return -1;
    }
    *out = q;
    return 0;
}

static json_t *num_or_null(double v)
{
    return isfinite(v) ? json_real(v) : json_null();
}

static json_t *qsur_json(const xf_qsur *q, const xf_act_cov *c)
{
    return json_pack("{s:o, s:o, s:f, s:o, s:o, s:I}", "root", num_or_null(q->root), "log10",
                     num_or_null(q->log10), "chi2", q->chi2, "min_eigenvalue",
                     num_or_null(q->min_eig), "max_eigenvalue", num_or_null(q->max_eig), "rows",
                     (json_int_t)c->rows);
}

static json_t *report_json(const stats_args *a, const xf_loaded_model *m,
                           const xf_model_act_stats *st, const xf_qsur *qs, json_t *calib)
{
    json_t *rows = json_array();
    for (int64_t l = 0; l < st->n_layers; l++)
        for (int in = 0; in < XF_IN_COUNT; in++) {
            json_t *o = xf_act_stats_json(xf_model_act_stats_at(st, l, in), a->top);
            if (!o) {
                json_decref(rows);
                return NULL;
            }
            json_object_set_new(o, "layer", json_integer(l));
            json_object_set_new(o, "input", json_string(xf_lin_input_name(in)));
            if (qs)
                json_object_set_new(o, "qsur", qsur_json(&qs[l * XF_IN_COUNT + in],
                                                         &st->cov[l * XF_IN_COUNT + in]));
            json_array_append_new(rows, o);
        }
    return json_pack("{s:s, s:s, s:I, s:I, s:O, s:I, s:I, s:o}", "model", a->in, "model_type",
                     m->cfg.model_type, "layers", (json_int_t)m->cfg.n_layers, "hidden",
                     (json_int_t)m->cfg.hidden, "calibration", calib, "tokens",
                     (json_int_t)st->tokens, "top_k", (json_int_t)a->top, "inputs", rows);
}

/* The number with `prec` decimals and `suffix`, or "-" for a NaN. */
static const char *fmt_num(char *buf, size_t cap, double v, int prec, const char *suffix)
{
    if (isfinite(v))
        snprintf(buf, cap, "%.*f%s", prec, v, suffix);
    else
        snprintf(buf, cap, "-");
    return buf;
}

#define ROW_FORMAT "%5s  %-5s %6s %10s %9s %7s %8s  "

/* One table row: layer, input, width, absmax, kurtosis, top-1% energy
 * share, largest/median channel absmax, top channels as ch:absmax. */
static int print_row(FILE *out, int64_t layer, xf_lin_input in, const xf_act_stats *s, int64_t k,
                     xf_act_channel *top)
{
    int64_t nt = xf_act_stats_top(s, k, top);
    if (nt < 0)
        return -1;
    char l[24], w[24], amax[32], kurt[32], share[32], ratio[32];
    snprintf(l, sizeof l, "%lld", (long long)layer);
    snprintf(w, sizeof w, "%lld", (long long)s->cols);
    fprintf(out, ROW_FORMAT, l, xf_lin_input_name(in), w,
           fmt_num(amax, sizeof amax, xf_act_stats_absmax(s), 3, ""),
           fmt_num(kurt, sizeof kurt, xf_act_stats_kurtosis(s), 2, ""),
           fmt_num(share, sizeof share, 100.0 * xf_act_stats_top_pct_energy_share(s), 1, "%"),
           fmt_num(ratio, sizeof ratio, nt > 0 ? top[0].ratio_to_median : NAN, 1, "x"));
    for (int64_t i = 0; i < nt; i++)
        fprintf(out, "%s%lld:%.3g", i ? " " : "", (long long)top[i].channel, top[i].absmax);
    fprintf(out, "\n");
    return 0;
}

static int report_text(FILE *out, const stats_args *a, const xf_loaded_model *m,
                       const xf_model_act_stats *st, const xf_qsur *qs, const json_t *calib)
{
    fprintf(out, "model:       %s (%s, %lld layers, hidden %lld)\n", a->in, m->cfg.model_type,
           (long long)m->cfg.n_layers, (long long)m->cfg.hidden);
    fprintf(out, "calibration: %s (%s, sha256 %.12s...): %lld window%s x %lld tokens = %lld tokens "
           "(seed %lld, %lld tokens available)\n",
           a->src.path, json_string_value(json_object_get(calib, "format")),
           json_string_value(json_object_get(calib, "sha256")), (long long)st->windows,
           st->windows == 1 ? "" : "s", (long long)(st->windows ? st->tokens / st->windows : 0), (long long)st->tokens,
           (long long)json_integer_value(json_object_get(calib, "seed")),
           (long long)json_integer_value(json_object_get(calib, "tokens_available")));
    fprintf(out, "kurtosis: Pearson over all values (Gaussian = 3); top1%%: share of sum x^2 in the\n"
           "ceil(1%%) channels with the most energy; max/med: largest channel abs-max over\n"
           "the median channel abs-max; top channels by abs-max as ch:absmax.\n\n");
    fprintf(out, ROW_FORMAT "%s\n", "layer", "input", "width", "absmax", "kurtosis", "top1%",
           "max/med", "top channels (ch:absmax)");
    xf_act_channel *top = malloc((size_t)a->top * sizeof *top);
    if (!top)
        return -1;
    int rc = 0;
    for (int64_t l = 0; l < st->n_layers && rc == 0; l++)
        for (int in = 0; in < XF_IN_COUNT && rc == 0; in++)
            rc = print_row(out, l, in, xf_model_act_stats_at(st, l, in), a->top, top);
    free(top);
    if (rc != 0 || !qs)
        return rc;
    fprintf(out, "\nQSUR (OstQuant): volume of the data's 0.99 Gaussian ellipsoid over that of the\n"
                 "cube one shared range must span; qsur^(1/d) per dimension (higher is better;\n"
                 "a ball in its cube is the bound), log10 of the ratio, covariance eigenvalues.\n\n");
    fprintf(out, "%5s  %-5s %6s %10s %12s %11s %11s\n", "layer", "input", "width", "qsur^(1/d)",
            "log10(qsur)", "min eig", "max eig");
    for (int64_t l = 0; l < st->n_layers; l++)
        for (int in = 0; in < XF_IN_COUNT; in++) {
            const xf_qsur *q = &qs[l * XF_IN_COUNT + in];
            char r[32], lg[32];
            fprintf(out, "%5lld  %-5s %6lld %10s %12s %11.4g %11.4g\n", (long long)l,
                    xf_lin_input_name((xf_lin_input)in), (long long)st->cov[l * XF_IN_COUNT + in].d,
                    fmt_num(r, sizeof r, q->root, 4, ""), fmt_num(lg, sizeof lg, q->log10, 2, ""),
                    q->min_eig, q->max_eig);
        }
    return 0;
}

static int stats_run(const xf_loaded_model *m, const stats_args *a0, int format, char **report,
                     xf_status *st)
{
    stats_args a = *a0;
    xf_error err = {0};
    /* a rotated .xfq's activations exist only with its online transforms
     * applied (statistics of the plain forward pass would describe no real
     * model): they run before the capture, as the evaluator runs them; its
     * quantizers do not (the statistics are of what they would quantize) */
    xf_online_transforms online;
    xf_online_init(&online);
    xf_act_hooks ah = {0};
    xf_act_capture_opts copts = {.covariance = a.qsur};
    if (m->has_online_transforms) {
        char what[1200];
        snprintf(what, sizeof what, "%s: recipe", a.in);
        const json_t *arr =
            json_object_get(json_object_get(m->xfq.meta, "recipe"), "online_transforms");
        xf_act_scheme off;
        xf_act_scheme_default(&off);
        if (xf_online_from_json(&online, arr, &m->cfg, what, &err) != 0 ||
            xf_act_hooks_init_online(&ah, &off, &online, NULL, &err) != 0) {
            xf_online_free(&online);
            return xf_api_fail(st, XF_FAIL, &err);
        }
        copts.pre = &ah.hooks;
    }
    xf_qsur *qs = NULL;
    int64_t T = 0;
    if (window_length(&a, &m->cfg, &T, st) != 0) {
        xf_act_hooks_free(&ah);
        xf_online_free(&online);
        return -1;
    }
    a.src.seqlen = T;
    xf_calib_set cs;
    json_t *calib = NULL;
    xf_model_act_stats acts = {0};
    int rc = -1;
    if (xf_calib_windows_load(&cs, m, &a.src, &calib, &err) != 0)
        goto out;
    int crc = xf_model_act_stats_collect_opts(&acts, &m->weights, cs.tokens, cs.nsamples,
                                              cs.seqlen, &copts, &err);
    if (crc == 0)
        crc = compute_qsur(&acts, &qs, &err);
    xf_calib_set_free(&cs);
    if (crc != 0) {
        xf_fail_prefix(&err, "%s", a.in);
        goto out;
    }
    char *s = NULL;
    if (format == XF_FORMAT_JSON) {
        json_t *j = report_json(&a, m, &acts, qs, calib);
        s = j ? json_dumps(j, JSON_INDENT(2) | JSON_SORT_KEYS | JSON_REAL_PRECISION(10)) : NULL;
        json_decref(j);
        if (!s) {
            xf_fail(&err, "%s: out of memory for the JSON report", a.in);
            goto out;
        }
    } else {
        xf_api_text t;
        if (xf_api_text_open(&t) != 0) {
            xf_fail(&err, "%s: out of memory for the report", a.in);
            goto out;
        }
        int trc = report_text(t.f, &a, m, &acts, qs, calib);
        s = xf_api_text_take(&t);
        if (trc != 0 || !s) {
            free(s);
            xf_fail(&err, "%s: out of memory for the report", a.in);
            goto out;
        }
    }
    if (report)
        *report = s;
    else
        free(s);
    rc = 0;
out:
    if (rc != 0)
        xf_api_fail(st, XF_FAIL, &err);
    xf_model_act_stats_free(&acts);
    free(qs);
    xf_act_hooks_free(&ah);
    xf_online_free(&online);
    json_decref(calib);
    return rc;
}

XF_API int xf_stats(const xf_model *m, const xf_stats_options *o, const xf_run_opts *run,
                    int format, char **report, xf_status *st)
{
    if (report)
        *report = NULL;
    if (!m || !o)
        return xf_api_fail_msg(st, XF_USAGE, "xf_stats: model and options are required");
    if (format != XF_FORMAT_TEXT && format != XF_FORMAT_JSON)
        return xf_api_failf(st, XF_USAGE, "xf_stats: unknown format %d", format);
    stats_args a;
    if (stats_args_make(&a, o, m->m.path, st) != 0)
        return -1;
    xf_api_call call;
    xf_api_begin(&call, run);
    int rc = stats_run(&m->m, &a, format, report, st);
    xf_api_end(&call);
    if (rc == 0)
        xf_api_ok(st);
    return rc;
}
