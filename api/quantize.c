/* xf_quantize: open the model, quantize it with the recipe into an .xfq
 * (pipeline/quantize_model.h), or into a GGUF when out_path ends in .gguf
 * (the .xfq then goes to a temp name beside it and is exported with the
 * default options, its GGML blocks copied exactly). The thread counts and
 * the progress route are set for the call and restored after it
 * (api/call.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "api/api_status.h"
#include "api/call.h"
#include "api/recipe_impl.h"
#include "core/atomic_file.h"
#include "core/dist.h"
#include "core/log.h"
#include "core/json_util.h"
#include "export/export.h"
#include "model/loader.h"
#include "pipeline/gptq_checkpoint.h"
#include "pipeline/quantize_model.h"

static bool ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

/* OUT.gguf: the .xfq goes to a temp name beside OUT (the stale-temp sweep
 * of OUT removes it if this process dies), is exported and removed. */
static int quantize_to_gguf(xf_loaded_model *m, const xf_quant_options *o,
                            const xf_quant_run *qr, const char *out, const json_t *cmdline,
                            json_t **summary, xf_error *err)
{
    char *prefix = xf_atomic_temp_prefix(out, (long)getpid());
    size_t len = prefix ? strlen(prefix) + 8 : 0;
    char *tmp = prefix ? malloc(len) : NULL;
    if (!tmp) {
        free(prefix);
        return xf_fail(err, "%s: out of memory", out);
    }
    snprintf(tmp, len, "%sxfqint", prefix);
    free(prefix);
    xf_atomic_remove_stale(out);
    int rc = xf_quantize_model(m, o, qr, tmp, cmdline, summary, err);
    if (rc == 0) {
        xf_export_opts eo = {0};
        json_t *es = NULL;
        /* an MPI job's rank 0 wrote the .xfq and exports it */
        const bool writer = !qr->dist || qr->dist->rank == 0;
        rc = writer ? xf_export_gguf(tmp, out, &eo, &es, err) : 0;
        if (qr->dist)
            rc = xf_dist_agree(qr->dist, rc, err);
        if (rc == 0 && *summary) {
            json_object_set_new(*summary, "gguf_export", es);
            json_object_set_new(*summary, "output", json_string(out));
        } else {
            json_decref(es);
        }
    }
    unlink(tmp);
    free(tmp);
    return rc;
}

/* The pipeline's run options from the caller's; the checkpoint directory
 * is OUT.ckpt (*ckpt, malloc'd, NULL without checkpoints). */
static int run_options(const xf_run_opts *run, const char *out, xf_quant_run *qr, char **ckpt,
                       xf_error *err)
{
    *ckpt = NULL;
    if (!run)
        return 0;
    qr->max_memory = run->max_memory;
    qr->spill_dir = run->spill_dir;
    qr->resume = run->resume != 0;
    if (!run->checkpoint && !run->resume)
        return 0;
    if (asprintf(ckpt, "%s.ckpt", out) < 0) {
        *ckpt = NULL;
        return xf_fail(err, "%s: out of memory", out);
    }
    qr->checkpoint_dir = *ckpt;
    return 0;
}

/* The report of a run: the summary as one line or as indented JSON. */
static char *render_report(const json_t *summary, const char *out, int format)
{
    if (format == XF_FORMAT_JSON)
        return json_dumps(summary, JSON_INDENT(2) | JSON_SORT_KEYS | JSON_REAL_PRECISION(10));
    char *s = NULL;
    if (asprintf(&s, "%s: %lld tensors quantized (%lld parameters) at %.4f bits per weight in "
                     "%.1f s",
                 out, (long long)json_integer_value(json_object_get(summary, "quantized_tensors")),
                 (long long)json_integer_value(json_object_get(summary, "quantized_params")),
                 json_number_value(json_object_get(summary, "bits_per_weight")),
                 json_number_value(json_object_get(summary, "seconds"))) < 0)
        return NULL;
    return s;
}

/* Ranks other than 0 of an MPI job log only warnings and draw no
 * progress: rank 0 speaks for the job. */
static void quiet_rank(const xf_dist *d, const xf_run_opts *run, xf_run_opts *mine,
                       xf_log_level *level)
{
    *level = xf_log_get_level();
    if (d->rank == 0)
        return;
    if (run) {
        *mine = *run;
        mine->progress = NULL;
        mine->progress_event = NULL;
    }
    if (*level > XF_LOG_WARN)
        xf_log_set_level(XF_LOG_WARN);
}

XF_API int xf_quantize(const char *in_path, const xf_recipe *r, const char *out_path,
                       const xf_run_opts *run, int format, char **report, xf_status *st)
{
    xf_error err = {0};
    if (report)
        *report = NULL;
    if (!r || !in_path || !out_path) {
        xf_fail(&err, "xf_quantize: needs a recipe, an input and an output path");
        return xf_api_fail(st, XF_USAGE, &err);
    }
    if (format != XF_FORMAT_TEXT && format != XF_FORMAT_JSON) {
        xf_fail(&err, "xf_quantize: format %d is neither XF_FORMAT_TEXT nor XF_FORMAT_JSON",
                format);
        return xf_api_fail(st, XF_USAGE, &err);
    }
    if (xf_quant_recipe_check(&r->q, &err) != 0)
        return xf_api_fail(st, XF_USAGE, &err);
    /* the job's ranks when launched by mpirun/srun (core/dist.h) */
    xf_dist dist;
    if (xf_dist_open(&dist, &err) != 0)
        return xf_api_fail(st, XF_FAIL, &err);
    xf_run_opts run_rank;
    xf_log_level level;
    quiet_rank(&dist, run, &run_rank, &level);
    if (dist.rank != 0 && run)
        run = &run_rank;
    xf_api_call call;
    xf_api_begin(&call, run);
    xf_loaded_model m;
    const int orc = xf_model_open(&m, in_path, &err);
    int rc = xf_dist_agree(&dist, orc, &err);
    if (rc != 0 && orc == 0)
        xf_model_close(&m);
    json_t *summary = NULL;
    if (rc == 0) {
        json_t *cmdline = json_array();
        const int argc = run && run->argv ? run->argc : 0;
        for (int i = 0; cmdline && i < argc; i++)
            json_array_append_new(cmdline, json_string(run->argv[i]));
        char *ckpt = NULL;
        xf_quant_run qr = {0};
        qr.dist = dist.size > 1 ? &dist : NULL;
        rc = xf_dist_agree(&dist, run_options(run, out_path, &qr, &ckpt, &err), &err);
        if (rc == 0)
            rc = ends_with(out_path, ".gguf")
                     ? quantize_to_gguf(&m, &r->q.o, &qr, out_path, cmdline, &summary, &err)
                     : xf_quantize_model(&m, &r->q.o, &qr, out_path, cmdline, &summary, &err);
        /* the output is final: its checkpoint has served */
        if (rc == 0 && ckpt && dist.rank == 0)
            rc = xf_gptq_checkpoint_remove(ckpt, &err);
        rc = xf_dist_agree(&dist, rc, &err);
        free(ckpt);
        json_decref(cmdline);
        xf_model_close(&m);
    }
    xf_api_end(&call);
    xf_log_set_level(level);
    const int rank = dist.rank;
    xf_dist_close(&dist);
    if (rc != 0) {
        json_decref(summary);
        return xf_api_fail(st, XF_FAIL, &err);
    }
    if (report && rank != 0) { /* rank 0 reports for the job */
        json_decref(summary);
        xf_api_ok(st);
        return 0;
    }
    if (report) {
        *report = summary ? render_report(summary, out_path, format) : NULL;
        if (!*report) {
            json_decref(summary);
            xf_fail(&err, "%s: summary: out of memory", out_path);
            return xf_api_fail(st, XF_FAIL, &err);
        }
    }
    json_decref(summary);
    xf_api_ok(st);
    return 0;
}
