#include "eval/regress_exec.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/progress.h"
#include "eval/model_scorer.h"
#include "eval/perplexity.h"
#include "eval/text_tokens.h"
#include "model/loader.h"
#include "quant/quantize_model.h"

/* Recipe -> quantization options; the same defaults as the CLI. */
static int options_from_recipe(const xf_regress_recipe *r, xf_quant_options *o, xf_error *err)
{
    if (r->act_bits != XF_REGRESS_ABSENT || r->kv_bits != XF_REGRESS_ABSENT || r->rotation)
        return xf_fail(err, "activation/KV quantization and rotations are not implemented yet");
    xf_quant_options_defaults(o, r->method == XF_REGRESS_GPTQ ? XF_METHOD_GPTQ : XF_METHOD_RTN);
    o->grid.bits = (int)r->bits;
    if (r->group != XF_REGRESS_ABSENT)
        o->group = r->group;
    if (r->sym > 0)
        o->grid.sym = true;
    if (r->clip && xf_clip_from_name(r->clip, &o->grid.clip) != 0)
        return xf_fail(err, "unknown clip \"%s\"", r->clip);
    if (r->quantize_head > 0)
        o->quantize_head = true;
    o->calib_path = r->calib_path;
    o->calib_field = r->calib_field;
    if (r->calib_format) {
        if (!strcmp(r->calib_format, "text"))
            o->calib_format = XF_CALIB_TEXT;
        else if (!strcmp(r->calib_format, "jsonl"))
            o->calib_format = XF_CALIB_JSONL;
        else if (!strcmp(r->calib_format, "dir"))
            o->calib_format = XF_CALIB_DIR;
        else
            return xf_fail(err, "unknown calib_format \"%s\"", r->calib_format);
    }
    if (r->nsamples != XF_REGRESS_ABSENT)
        o->nsamples = r->nsamples;
    if (r->seqlen != XF_REGRESS_ABSENT)
        o->seqlen = r->seqlen;
    if (r->seed != XF_REGRESS_ABSENT)
        o->seed = (uint64_t)r->seed;
    if (r->act_order > 0)
        o->act_order = true;
    if (r->static_groups > 0)
        o->static_groups = true;
    if (r->gptq_v2 > 0)
        o->gptq_v2 = true;
    if (!isnan(r->damp))
        o->damp = r->damp;
    if (r->block != XF_REGRESS_ABSENT)
        o->block = r->block;
    return 0;
}

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
    int rc = xf_text_tokens_load(&tt, c->eval.text_path, tok, err);
    int32_t bos = xf_tokenizer_bos_id(tok);
    xf_tokenizer_free(tok);
    if (rc != 0)
        return -1;
    int64_t T = window_length(&c->eval, &model->cfg);
    int64_t maxw = c->eval.max_windows == XF_REGRESS_ABSENT ? 0 : c->eval.max_windows;
    xf_window_plan plan;
    xf_model_scorer sm, sb;
    rc = xf_window_plan_make(&plan, c->eval.protocol, T, (int64_t)tt.n, maxw, bos, err);
    if (rc == 0)
        rc = xf_model_scorer_init(&sm, &model->weights, T, err);
    if (rc == 0) {
        if (c->wants[XF_REGRESS_KLD]) {
            rc = xf_model_scorer_init(&sb, &base->weights, T, err);
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
    xf_quant_options o;
    if (options_from_recipe(&c->recipe, &o, why) != 0) {
        xf_model_close(&base);
        return XF_REGRESS_EXEC_FAIL;
    }
    o.progress = ctx && ctx->progress;
    char path[4096];
    snprintf(path, sizeof path, "%s/xfquant-regress-%ld-%s.xfq",
             ctx && ctx->tmpdir ? ctx->tmpdir : "/tmp", (long)getpid(), c->id);
    json_t *cmd = json_pack("[s, s]", "xfquant", "regress");
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
    unlink(path);
    xf_model_close(&base);
    out->seconds = xf_now_seconds() - t0;
    return verdict;
}
