/* The CLI's rendering of the library's progress events (--progress,
 * docs/cli.md "Progress"): the bar, redrawn in place on stderr, or one
 * JSON object per event and line, flushed at once so that a notebook or
 * a CI log can follow it. */
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"

bool xf_cli_progress_mode_parse(const char *s, xf_cli_progress_mode *out)
{
    static const char *const names[] = {"auto", "bar", "json", "none"};
    for (int i = 0; i < 4; i++)
        if (strcmp(s, names[i]) == 0) {
            *out = (xf_cli_progress_mode)i;
            return true;
        }
    return false;
}

/* ---- the bar --------------------------------------------------------- */

/* "42s", "3m12s", "1h05m" */
static void fmt_duration(char *b, size_t n, double s)
{
    if (s < 0) {
        snprintf(b, n, "?");
        return;
    }
    long t = lround(s);
    if (t < 60)
        snprintf(b, n, "%lds", t);
    else if (t < 3600)
        snprintf(b, n, "%ldm%02lds", t / 60, t % 60);
    else
        snprintf(b, n, "%ldh%02ldm", t / 3600, t / 60 % 60);
}

static void draw_bar(xf_cli_progress *p, const xf_progress_event *e)
{
    if (e->kind == XF_PROGRESS_END) {
        if (p->drawn)
            fputs("\r\033[K", stderr);
        p->drawn = false;
        fflush(stderr);
        return;
    }
    enum { WIDTH = 20 };
    const double frac = e->total > 0 && e->done >= 0 ? (double)e->done / (double)e->total : 0.0;
    char bar[WIDTH + 1];
    const int fill = (int)(frac * WIDTH + 1e-9);
    for (int i = 0; i < WIDTH; i++)
        bar[i] = i < fill ? '#' : '-';
    bar[WIDTH] = '\0';
    char eta[32], where[96] = "";
    fmt_duration(eta, sizeof eta, e->eta_s);
    if (e->n_blocks > 0 && e->block >= 0)
        snprintf(where, sizeof where, "block %lld/%lld%s%s", (long long)e->block + 1,
                 (long long)e->n_blocks, e->input ? " " : "", e->input ? e->input : "");
    else if (e->input)
        snprintf(where, sizeof where, "%s", e->input);
    else if (e->total > 0)
        snprintf(where, sizeof where, "%lld/%lld", (long long)e->done, (long long)e->total);
    fprintf(stderr, "\r%s [%s] %3.0f%%  %s  ETA %s", e->stage ? e->stage : "", bar, 100.0 * frac,
            where, eta);
    if (e->tokens_per_s >= 0)
        fprintf(stderr, "  %.0f tok/s", e->tokens_per_s);
    if (e->gflop_per_s >= 0)
        fprintf(stderr, "  %.2f GFLOP/s", e->gflop_per_s);
    if (e->peak_rss_bytes >= 0)
        fprintf(stderr, "  peak %.0f MiB", (double)e->peak_rss_bytes / 1048576.0);
    fputs("\033[K", stderr);
    fflush(stderr);
    p->drawn = true;
}

/* ---- JSON lines -------------------------------------------------------- */

static void json_str(FILE *f, const char *key, const char *v)
{
    fprintf(f, ",\"%s\":", key);
    if (!v) {
        fputs("null", f);
        return;
    }
    fputc('"', f);
    for (const unsigned char *c = (const unsigned char *)v; *c; c++) {
        if (*c == '"' || *c == '\\')
            fprintf(f, "\\%c", *c);
        else if (*c < 0x20)
            fprintf(f, "\\u%04x", *c);
        else
            fputc(*c, f);
    }
    fputc('"', f);
}

/* -1 (unknown) as null */
static void json_int(FILE *f, const char *key, int64_t v)
{
    if (v < 0)
        fprintf(f, ",\"%s\":null", key);
    else
        fprintf(f, ",\"%s\":%lld", key, (long long)v);
}

static void json_num(FILE *f, const char *key, double v)
{
    if (!(v >= 0) || !isfinite(v))
        fprintf(f, ",\"%s\":null", key);
    else
        fprintf(f, ",\"%s\":%.9g", key, v);
}

static void write_json(const xf_progress_event *e)
{
    static const char *const kinds[] = {"start", "update", "block", "input", "end"};
    FILE *f = stderr;
    fprintf(f, "{\"event\":\"%s\"",
            e->kind >= 0 && e->kind <= XF_PROGRESS_END ? kinds[e->kind] : "unknown");
    json_str(f, "stage", e->stage);
    json_str(f, "input", e->input);
    json_str(f, "detail", e->detail);
    json_int(f, "done", e->done);
    json_int(f, "total", e->total);
    json_int(f, "block", e->block);
    json_int(f, "n_blocks", e->n_blocks);
    json_num(f, "elapsed_s", e->elapsed_s);
    json_num(f, "eta_s", e->eta_s);
    json_int(f, "tokens", e->tokens);
    json_num(f, "tokens_per_s", e->tokens_per_s);
    json_num(f, "gflop_per_s", e->gflop_per_s);
    json_num(f, "forward_s", e->forward_s);
    json_num(f, "hessian_s", e->hessian_s);
    json_num(f, "solve_s", e->solve_s);
    json_num(f, "input_forward_s", e->input_forward_s);
    json_num(f, "input_hessian_s", e->input_hessian_s);
    json_num(f, "input_solve_s", e->input_solve_s);
    json_int(f, "peak_rss_bytes", e->peak_rss_bytes);
    json_int(f, "rss_bytes", e->rss_bytes);
    fputs("}\n", f);
    fflush(f);
}

static void on_event(void *user, const xf_progress_event *e)
{
    xf_cli_progress *p = user;
    if (p->mode == XF_CLI_PROGRESS_JSON)
        write_json(e);
    else if (p->mode == XF_CLI_PROGRESS_BAR)
        draw_bar(p, e);
}

xf_run_opts xf_cli_run_opts_mode(int threads, xf_cli_progress_mode mode, xf_cli_progress *p)
{
    if (mode == XF_CLI_PROGRESS_AUTO)
        mode = isatty(STDERR_FILENO) ? XF_CLI_PROGRESS_BAR : XF_CLI_PROGRESS_NONE;
    p->mode = mode;
    p->drawn = false;
    xf_run_opts run = {.threads = threads};
    if (mode != XF_CLI_PROGRESS_NONE) {
        run.progress_event = on_event;
        run.progress_event_user = p;
    }
    return run;
}

xf_run_opts xf_cli_run_opts(int threads, xf_cli_progress *p)
{
    return xf_cli_run_opts_mode(threads, XF_CLI_PROGRESS_AUTO, p);
}
