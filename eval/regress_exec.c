#include "eval/regress_exec.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/atomic_file.h"
#include "core/log.h"

#include "core/progress.h"
#include "eval/model_scorer.h"
#include "eval/perplexity.h"
#include "eval/text_tokens.h"
#include "model/loader.h"
#include "quant/quantize_model.h"

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
    int rc = xf_text_tokens_load(&tt, c->eval.text_path, tok, false, err);
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

/* Each quantized case writes "xfquant-regress-HOST-PID-ID.xfq" into tmpdir
 * and removes it after the case. A killed run cannot, and neither the file
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
        if (strncmp(name, prefix, pl) != 0 || !strstr(name, ".xfq"))
            continue;
        char *end;
        long pid = strtol(name + pl, &end, 10);
        if (end == name + pl || *end != '-' || pid == (long)getpid() || !xf_process_gone(pid))
            continue;
        struct stat st;
        if (fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(st.st_mode) &&
            unlinkat(dirfd(d), e->d_name, 0) == 0)
            xf_log_info("%s/%s: removed, left by regress process %ld, which is gone", tmpdir,
                        e->d_name, pid);
    }
    closedir(d);
}

xf_regress_exec xf_regress_execute(const xf_regress_case *c, void *user, xf_regress_metrics *out,
                                   xf_error *why)
{
    const xf_regress_exec_ctx *ctx = user;
    double t0 = xf_now_seconds();
    xf_loaded_model base;
    if (xf_model_open(&base, c->model_path, why) != 0)
        return XF_REGRESS_EXEC_FAIL;
    xf_regress_exec verdict = XF_REGRESS_EXEC_FAIL;
    if (c->recipe.method == XF_REGRESS_FP16) {
        out->bits_per_weight = source_bits_per_weight(&base.weights);
        if (evaluate(c, &base, &base, out, why) == 0)
            verdict = XF_REGRESS_EXEC_OK;
        xf_model_close(&base);
        out->seconds = xf_now_seconds() - t0;
        return verdict;
    }
    const char *tmpdir = ctx && ctx->tmpdir ? ctx->tmpdir : "/tmp";
    sweep_dead_runs(tmpdir);
    char path[4096];
    snprintf(path, sizeof path, "%s/xfquant-regress-%08x-%ld-%s.xfq", tmpdir,
             xf_atomic_host_tag(), (long)getpid(), c->id);
    int qargc;
    char **qargv = xf_regress_quant_argv(c, path, &qargc);
    xf_quant_options o;
    if (!qargv || !ctx || !ctx->parse_quant || ctx->parse_quant(qargc, qargv, &o) != 0) {
        xf_fail(why, "%s", !qargv ? "out of memory"
                           : !ctx || !ctx->parse_quant ? "no recipe parser given"
                                                       : "the recipe's flags were refused "
                                                         "(see the message above)");
        xf_regress_argv_free(qargv);
        xf_model_close(&base);
        return XF_REGRESS_EXEC_FAIL;
    }
    o.progress = ctx->progress;
    json_t *cmd = json_pack("[s]", "xfquant");
    for (int i = 0; i < qargc; i++)
        json_array_append_new(cmd, json_string(qargv[i]));
    json_t *summary = NULL;
    int rc = xf_quantize_model(&base, &o, path, cmd, &summary, why);
    json_decref(cmd);
    if (rc == 0) {
        out->bits_per_weight = json_real_value(json_object_get(summary, "bits_per_weight"));
        xf_loaded_model q;
        if (xf_model_open(&q, path, why) == 0) {
            if (evaluate(c, &base, &q, out, why) == 0)
                verdict = XF_REGRESS_EXEC_OK;
            xf_model_close(&q);
        }
    }
    json_decref(summary);
    xf_regress_argv_free(qargv); /* o's strings point into it */
    unlink(path);
    xf_model_close(&base);
    out->seconds = xf_now_seconds() - t0;
    return verdict;
}
