#include "regress/exec.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/atomic_file.h"
#include "core/log.h"

#include "core/progress.h"
#include "pipeline/recipe_options.h"
#include "core/read_file.h"
#include "regress/llamacpp.h"
#include "export/export.h"
#include "eval/model_scorer.h"
#include "eval/perplexity.h"
#include "eval/text_tokens.h"
#include "model/loader.h"
#include "pipeline/quantize_model.h"

/* The evaluation window length, with `xfquant ppl`'s defaults. */
static int64_t window_length(const xf_regress_eval *e, const xf_model_config *cfg)
{
    int64_t given = e->protocol == XF_PROTOCOL_GPTQ ? e->seqlen : e->ctx;
    if (given != XF_REGRESS_ABSENT && given > 0)
        return given;
    int64_t dflt = e->protocol == XF_PROTOCOL_GPTQ ? 2048 : 512;
    return cfg->max_pos > 0 && cfg->max_pos < dflt ? cfg->max_pos : dflt;
}

/* Bits per linear weight of an unquantized model: the storage of its
 * decoder linears. */
static double source_bits_per_weight(const xf_model_weights *mw)
{
    double bits = 0, n = 0;
    for (int64_t l = 0; l < mw->cfg.n_layers; l++)
        for (int r = 0; r < XF_LIN_COUNT; r++) {
            const xf_tensor *t = mw->layers[l].lin[r].w;
            if (!t)
                continue;
            bits += 8.0 * (double)t->nbytes;
            n += (double)xf_tensor_numel(t);
        }
    return n > 0 ? bits / n : NAN;
}

static int evaluate(const xf_regress_case *c, const xf_loaded_model *base,
                    const xf_loaded_model *model, xf_regress_metrics *out, xf_error *err)
{
    xf_tokenizer *tok = xf_model_tokenizer(base, err);
    if (!tok)
        return -1;
    xf_text_tokens tt;
    int rc = xf_text_tokens_load_half(&tt, c->eval.text_path, tok, false, (int)c->eval.half, err);
    int32_t bos = xf_llamacpp_chunk_bos(tok);
    xf_tokenizer_free(tok);
    if (rc != 0)
        return -1;
    int64_t T = window_length(&c->eval, &model->cfg);
    int64_t maxw = c->eval.max_windows == XF_REGRESS_ABSENT ? 0 : c->eval.max_windows;
    xf_window_plan plan;
    xf_model_scorer sm, sb;
    rc = xf_window_plan_make(&plan, c->eval.protocol, T, (int64_t)tt.n, maxw, bos, err);
    if (rc == 0)
        rc = xf_model_scorer_open(&sm, model, T, err);
    if (rc == 0) {
        if (c->wants[XF_REGRESS_KLD]) {
            rc = xf_model_scorer_open(&sb, base, T, err);
            if (rc == 0) {
                xf_kld_result kr;
                rc = xf_kld_run(&sb.scorer, &sm.scorer, tt.ids, (int64_t)tt.n, &plan, &kr, err);
                if (rc == 0) {
                    out->ppl = kr.model.ppl;
                    out->kld = kr.kl_mean;
                }
                xf_model_scorer_free(&sb);
            }
        } else {
            xf_ppl_result pr;
            rc = xf_perplexity_run(&sm.scorer, tt.ids, (int64_t)tt.n, &plan, &pr, err);
            if (rc == 0)
                out->ppl = pr.ppl;
        }
        xf_model_scorer_free(&sm);
    }
    xf_text_tokens_free(&tt);
    return rc;
}

/* A GGUF case's temporary directory: "xfquant-regress-HOST-PID-ID.d". */
static bool is_case_dir(const char *name)
{
    size_t n = strlen(name);
    return n > 2 && !strcmp(name + n - 2, ".d");
}

/* Removes a case directory: it holds plain files only (the GGUF files,
 * texts and tool logs a case writes). */
static int remove_case_dir(const char *path)
{
    DIR *d = opendir(path);
    if (!d)
        return -1;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
            unlinkat(dirfd(d), e->d_name, 0);
    closedir(d);
    return rmdir(path);
}

/* Each quantized case writes "xfquant-regress-HOST-PID-ID.xfq" into tmpdir
 * (a GGUF case, the directory "xfquant-regress-HOST-PID-ID.d") and removes
 * it after the case. A killed run cannot, and neither the file
 * nor its atomic temp (".xfquant-regress-HOST-PID-ID.xfq.tmp.…", written by
 * the same process) is ever written to again, so xf_atomic_open's sweep
 * would never see them: every case sweeps the files of this host whose
 * process is gone (core/atomic_file.h has why that is safe). */
static void sweep_dead_runs(const char *tmpdir)
{
    DIR *d = opendir(tmpdir);
    if (!d)
        return;
    char prefix[64];
    snprintf(prefix, sizeof prefix, "xfquant-regress-%08x-", xf_atomic_host_tag());
    size_t pl = strlen(prefix);
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        const char *name = e->d_name + (e->d_name[0] == '.');
        if (strncmp(name, prefix, pl) != 0 || (!strstr(name, ".xfq") && !is_case_dir(name)))
            continue;
        char *end;
        long pid = strtol(name + pl, &end, 10);
        if (end == name + pl || *end != '-' || pid == (long)getpid() || !xf_process_gone(pid))
            continue;
        struct stat st;
        if (fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0)
            continue;
        if (S_ISDIR(st.st_mode) && is_case_dir(name)) {
            char *p = xf_path_join(tmpdir, e->d_name);
            if (p && remove_case_dir(p) == 0)
                xf_log_info("%s: removed, left by regress process %ld, which is gone", p, pid);
            free(p);
        } else if (S_ISREG(st.st_mode) && unlinkat(dirfd(d), e->d_name, 0) == 0)
            xf_log_info("%s/%s: removed, left by regress process %ld, which is gone", tmpdir,
                        e->d_name, pid);
    }
    closedir(d);
}

/* The reuse key of a quantized case: its model path and canonical recipe
 * (NULL when out of memory: no reuse). */
static char *reuse_key(const xf_regress_case *c)
{
    json_t *j = xf_quant_options_to_json(&c->recipe.quant->o);
    char *s = j ? json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
    json_decref(j);
    char *key = NULL;
    if (s && asprintf(&key, "%s\n%s", c->model_path, s) < 0)
        key = NULL;
    free(s);
    return key;
}

static void drop_reuse_file(xf_regress_exec_ctx *ctx)
{
    if (ctx->reuse_path)
        unlink(ctx->reuse_path);
    free(ctx->reuse_path);
    free(ctx->reuse_key);
    ctx->reuse_path = ctx->reuse_key = NULL;
}

void xf_regress_exec_ctx_free(xf_regress_exec_ctx *ctx)
{
    drop_reuse_file(ctx);
}

/* Quantizes base with the case's recipe into path, as `xfquant rtn|gptq
 * --recipe` would (the recipe is the option table's: regress/suite.h);
 * *bpw: the quantizer's bits per weight. */
static int quantize_case(const xf_regress_case *c, const xf_regress_exec_ctx *ctx,
                         xf_loaded_model *base, const char *path, double *bpw, xf_error *why)
{
    if (!c->recipe.quant)
        return xf_fail(why, "case '%s': no rtn/gptq recipe", c->id);
    xf_quant_options o = c->recipe.quant->o; /* strings stay the suite's */
    o.progress = ctx && ctx->progress;
    /* provenance: the case (its recipe is recorded as "recipe"."options") */
    json_t *cmd = json_pack("[s, s, s]", "xfquant", "regress", c->id);
    json_t *summary = NULL;
    int rc = xf_quantize_model(base, &o, NULL, path, cmd, &summary, why);
    json_decref(cmd);
    if (rc == 0)
        *bpw = json_real_value(json_object_get(summary, "bits_per_weight"));
    json_decref(summary);
    return rc;
}

/* `xfquant export --to gguf --type f32 MODEL OUT` (f32) or `xfquant export
 * --to gguf --fallback f16 IN.xfq OUT`: packed rows no GGML block fits (the
 * shared models' down_proj rows of 172 and 688) go F16, as llama-quantize
 * writes them; rows that fit are not touched by the flag. */
static int export_gguf(const char *in, const char *out, bool f32, xf_error *why)
{
    xf_export_opts o = {0};
    o.float_type = f32 ? XF_EXPORT_FLOAT_F32 : XF_EXPORT_FLOAT_KEEP;
    o.fallback = f32 ? XF_EXPORT_FALLBACK_NONE : XF_EXPORT_FALLBACK_F16;
    json_t *summary = NULL;
    int rc = xf_export_gguf(in, out, &o, &summary, why);
    json_decref(summary);
    if (rc != 0)
        xf_fail_prefix(why, "xfquant export --to gguf");
    return rc;
}

/* A GGUF case's steps inside its directory `dir`: make the file, measure
 * it, score it. */
static xf_regress_exec gguf_steps(const xf_regress_case *c, xf_regress_exec_ctx *ctx,
                                  xf_loaded_model *base, const char *dir, xf_regress_metrics *out,
                                  xf_error *why)
{
    if (xf_llamacpp_find(&ctx->tools, ctx->llamacpp_build_script, dir, why) != 0)
        return XF_REGRESS_EXEC_SKIP;
    const xf_llamacpp_tools *t = &ctx->tools;
    char *gguf = xf_path_join(dir, "model.gguf"), *xfq = xf_path_join(dir, "model.xfq");
    char *f32 = xf_path_join(dir, "f32.gguf"), *imat = xf_path_join(dir, "imatrix.gguf");
    char *calib = xf_path_join(dir, "calib.txt"), *text = xf_path_join(dir, "eval.txt");
    int rc = gguf && xfq && f32 && imat && calib && text ? 0 : xf_fail(why, "out of memory");
    double qbpw = NAN;
    if (rc == 0) {
        switch (c->recipe.method) {
        case XF_REGRESS_FP16: rc = export_gguf(c->model_path, gguf, true, why); break;
        case XF_REGRESS_RTN:
        case XF_REGRESS_GPTQ:
            rc = quantize_case(c, ctx, base, xfq, &qbpw, why);
            if (rc == 0)
                rc = export_gguf(xfq, gguf, false, why);
            unlink(xfq);
            break;
        case XF_REGRESS_LLAMA_QUANTIZE: {
            const xf_regress_recipe *r = &c->recipe;
            /* imatrix windows: the recipe's seqlen, else the model's
             * context (its training length) */
            int64_t seqlen = r->seqlen != XF_REGRESS_ABSENT ? r->seqlen
                             : base->cfg.max_pos > 0        ? base->cfg.max_pos
                                                            : 512;
            int64_t nsamples = r->nsamples != XF_REGRESS_ABSENT ? r->nsamples : 0;
            rc = export_gguf(c->model_path, f32, true, why);
            if (rc == 0 && r->imatrix == 1)
                rc = xf_text_to_lf(r->calib_path, 0, calib, why) ||
                     xf_llamacpp_imatrix(t, "f32.gguf", "calib.txt", seqlen, nsamples,
                                         "imatrix.gguf", dir, why);
            if (rc == 0)
                rc = xf_llamacpp_quantize(t, "f32.gguf", "model.gguf", r->gguf_type,
                                          r->imatrix == 1 ? "imatrix.gguf" : NULL,
                                          r->tensor_type, r->n_tensor_type, dir, why);
            unlink(f32);
            break;
        }
        }
    }
    if (rc == 0)
        rc = xf_gguf_weight_bits(gguf, &out->bits_per_weight, &out->file_bytes, why);
    if (rc == 0)
        rc = xf_text_to_lf(c->eval.text_path, (int)c->eval.half, text, why);
    if (rc == 0) {
        int64_t T = window_length(&c->eval, &base->cfg);
        rc = xf_llamacpp_perplexity(t, "model.gguf", "eval.txt", T, c->eval.max_windows, dir,
                                    &out->ppl, why);
    }
    if (rc == 0 && isfinite(qbpw))
        xf_log_info("regress: %s: the quantizer reports %.4f bits per weight, the GGUF %.4f", c->id,
                    qbpw, out->bits_per_weight);
    free(gguf);
    free(xfq);
    free(f32);
    free(imat);
    free(calib);
    free(text);
    return rc == 0 ? XF_REGRESS_EXEC_OK : XF_REGRESS_EXEC_FAIL;
}

xf_regress_exec xf_regress_execute(const xf_regress_case *c, void *user, xf_regress_metrics *out,
                                   xf_error *why)
{
    xf_regress_exec_ctx *ctx = user;
    double t0 = xf_now_seconds();
    xf_loaded_model base;
    if (xf_model_open(&base, c->model_path, why) != 0)
        return XF_REGRESS_EXEC_FAIL;
    xf_regress_exec verdict = XF_REGRESS_EXEC_FAIL;
    const char *tmpdir = ctx && ctx->tmpdir ? ctx->tmpdir : "/tmp";
    if (xf_regress_case_is_gguf(c)) {
        if (!ctx) {
            xf_fail(why, "no executor context given");
            xf_model_close(&base);
            return XF_REGRESS_EXEC_FAIL;
        }
        sweep_dead_runs(tmpdir);
        char dir[4096];
        snprintf(dir, sizeof dir, "%s/xfquant-regress-%08x-%ld-%s.d", tmpdir,
                 xf_atomic_host_tag(), (long)getpid(), c->id);
        if (mkdir(dir, 0700) != 0) {
            xf_fail(why, "%s: cannot create the case's temporary directory: %s", dir,
                    strerror(errno));
        } else {
            verdict = gguf_steps(c, ctx, &base, dir, out, why);
            if (remove_case_dir(dir) != 0)
                xf_log_warn("%s: could not remove it", dir);
        }
        xf_model_close(&base);
        out->seconds = xf_now_seconds() - t0;
        return verdict;
    }
    if (c->recipe.method == XF_REGRESS_FP16) {
        out->bits_per_weight = source_bits_per_weight(&base.weights);
        if (evaluate(c, &base, &base, out, why) == 0)
            verdict = XF_REGRESS_EXEC_OK;
        xf_model_close(&base);
        out->seconds = xf_now_seconds() - t0;
        return verdict;
    }
    sweep_dead_runs(tmpdir);
    char path[4096];
    snprintf(path, sizeof path, "%s/xfquant-regress-%08x-%ld-%s.xfq", tmpdir,
             xf_atomic_host_tag(), (long)getpid(), c->id);
    char *key = ctx && c->recipe.quant ? reuse_key(c) : NULL;
    bool reuse = key && ctx->reuse_key && !strcmp(key, ctx->reuse_key);
    int made = 0;
    if (reuse) {
        out->bits_per_weight = ctx->reuse_bpw;
        ctx->reused++;
        xf_log_info("regress: %s: same model and recipe as the case before: its file reused",
                    c->id);
    } else {
        if (ctx)
            drop_reuse_file(ctx);
        made = quantize_case(c, ctx, &base, path, &out->bits_per_weight, why) == 0;
    }
    const char *qpath = reuse ? ctx->reuse_path : path;
    if (reuse || made) {
        xf_loaded_model q;
        if (xf_model_open(&q, qpath, why) == 0) {
            if (evaluate(c, &base, &q, out, why) == 0)
                verdict = XF_REGRESS_EXEC_OK;
            xf_model_close(&q);
        }
    }
    if (made && key && (ctx->reuse_path = strdup(path)) != NULL) {
        ctx->reuse_key = key; /* kept for the next case */
        ctx->reuse_bpw = out->bits_per_weight;
        key = NULL;
    } else if (!reuse)
        unlink(path);
    free(key);
    xf_model_close(&base);
    out->seconds = xf_now_seconds() - t0;
    return verdict;
}
