/* xf_perplexity and xf_kld: a text scored by one model, or by a model
 * against a base model (`xfquant ppl`, `xfquant kld`). */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "api/call.h"
#include "api/model.h"
#include "core/log.h"
#include "eval/model_scorer.h"
#include "eval/perplexity.h"
#include "eval/text_tokens.h"

/* The options checked as the CLI checks its flags (usage errors). */
static int eval_protocol(const xf_eval_opts *eo, xf_protocol *p, xf_status *st)
{
    *p = XF_PROTOCOL_GPTQ;
    if (!eo)
        return 0;
    if (eo->protocol && xf_protocol_parse(eo->protocol, p) != 0)
        return xf_api_failf(st, XF_USAGE, "--protocol must be gptq or llamacpp, not '%s'",
                            eo->protocol);
    if (eo->seqlen && eo->seqlen < 2)
        return xf_api_failf(st, XF_USAGE, "--seqlen must be an integer >= 2, not '%lld'",
                            (long long)eo->seqlen);
    if (eo->ctx && eo->ctx < 4)
        return xf_api_failf(st, XF_USAGE, "--ctx must be an integer >= 4, not '%lld'",
                            (long long)eo->ctx);
    if (eo->max_windows < 0)
        return xf_api_failf(st, XF_USAGE, "--max-windows must be a positive integer, not '%lld'",
                            (long long)eo->max_windows);
    if (*p == XF_PROTOCOL_GPTQ && eo->ctx)
        return xf_api_fail_msg(st, XF_USAGE, "--ctx applies to --protocol llamacpp; use --seqlen");
    if (*p == XF_PROTOCOL_LLAMACPP && eo->seqlen)
        return xf_api_fail_msg(st, XF_USAGE, "--seqlen applies to --protocol gptq; use --ctx");
    return 0;
}

/* Window length for cfg under the protocol: the explicit value, or
 * min(2048, max_pos) for gptq and min(512, max_pos) for llama.cpp. An
 * explicit value beyond learned position tables is a usage error. */
static int window_length(const xf_eval_opts *eo, xf_protocol p, const xf_model_config *cfg,
                         int64_t *out, xf_status *st)
{
    int64_t explicit_len = !eo ? 0 : p == XF_PROTOCOL_GPTQ ? eo->seqlen : eo->ctx;
    int64_t dflt = p == XF_PROTOCOL_GPTQ ? 2048 : 512;
    if (!explicit_len) {
        *out = cfg->max_pos > 0 && cfg->max_pos < dflt ? cfg->max_pos : dflt;
        return 0;
    }
    bool learned_positions = cfg->family == XF_FAMILY_OPT || cfg->family == XF_FAMILY_GPT2;
    if (learned_positions && explicit_len > cfg->max_pos)
        return xf_api_failf(st, XF_USAGE,
                            "window of %lld tokens exceeds the model's %lld learned positions",
                            (long long)explicit_len, (long long)cfg->max_pos);
    *out = explicit_len;
    return 0;
}

static void ppl_stats(xf_ppl_stats *o, const xf_ppl_result *r, xf_protocol p,
                      const char *sha256, int half, const char *scheme)
{
    memset(o, 0, sizeof *o);
    o->ppl = r->ppl;
    o->nll = r->mean_nll;
    o->ppl_stderr = r->ppl_stderr;
    o->n_tokens = r->n_tokens;
    o->n_windows = r->n_windows;
    o->seqlen = r->seqlen;
    o->n_scored = r->n_scored;
    o->seconds = r->seconds;
    o->tokens_per_second = r->tokens_per_second;
    o->threads = xf_threads_get();
    snprintf(o->protocol, sizeof o->protocol, "%s", xf_protocol_name(p));
    snprintf(o->text_sha256, sizeof o->text_sha256, "%s", sha256);
    o->text_half = half;
    snprintf(o->act_scheme, sizeof o->act_scheme, "%s", scheme);
}

/* The `ppl --json` line (no newline). */
static char *ppl_json(const xf_ppl_stats *r, const char *model, const char *text)
{
    json_t *names = json_pack("{s:s, s:s, s:o}", "model", model, "text", text, "act_scheme",
                              r->act_scheme[0] ? json_string(r->act_scheme) : json_null());
    char *s = json_dumps(names, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(names);
    if (s) /* strip the braces: splice the escaped strings into the object */
        s[strlen(s) - 1] = '\0';
    char *line = NULL;
    int n = asprintf(&line,
                     "{\"ppl\": %.10g, \"nll\": %.10g, \"ppl_stderr\": %.6g, \"ntokens\": %lld, "
                     "\"nwindows\": %lld, \"seqlen\": %lld, \"n_scored\": %lld, \"protocol\": "
                     "\"%s\", \"tokens_per_second\": %.1f, \"seconds\": %.3f, \"threads\": %d, "
                     "%s%s\"text_half\": %d, \"text_sha256\": \"%s\"}",
                     r->ppl, r->nll, r->ppl_stderr, (long long)r->n_tokens,
                     (long long)r->n_windows, (long long)r->seqlen, (long long)r->n_scored,
                     r->protocol, r->tokens_per_second, r->seconds, r->threads, s ? s + 1 : "",
                     s ? ", " : "", r->text_half, r->text_sha256);
    free(s);
    return n < 0 ? NULL : line;
}

/* The evaluation text tokenized by m's tokenizer (*tok, *tt: the caller
 * frees both, also on failure) and its windows. */
static int text_windows(const xf_loaded_model *m, const char *text_path, const xf_eval_opts *eo,
                        xf_protocol protocol, int64_t seqlen, xf_tokenizer **tok,
                        xf_text_tokens *tt, xf_window_plan *plan, xf_error *err)
{
    if (!(*tok = xf_model_tokenizer(m, err)) ||
        xf_text_tokens_load_half(tt, text_path, *tok, eo && eo->text_binary_ok, eo ? eo->text_half : 0,
                                 err) != 0)
        return -1;
    if (xf_window_plan_make(plan, protocol, seqlen, (int64_t)tt->n, eo ? eo->max_windows : 0,
                            xf_llamacpp_chunk_bos(*tok), err) != 0)
        return xf_fail_prefix(err, "%s", text_path);
    return 0;
}

static int ppl_run(const xf_model *h, const char *text_path, const xf_eval_opts *eo,
                   xf_ppl_stats *out, char **json, xf_status *st)
{
    const xf_loaded_model *m = &h->m;
    xf_protocol protocol;
    int64_t seqlen = 0;
    if (eval_protocol(eo, &protocol, st) != 0 || window_length(eo, protocol, &m->cfg, &seqlen, st) != 0)
        return -1;
    if (seqlen > m->cfg.max_pos)
        xf_log_warn("window of %lld tokens is longer than the model's max_position_embeddings %lld",
                    (long long)seqlen, (long long)m->cfg.max_pos);
    xf_error err = {0};
    xf_tokenizer *tok = NULL;
    xf_text_tokens tt = {0};
    xf_model_scorer ms;
    xf_window_plan plan;
    xf_ppl_result res;
    int rc = -1;
    if (text_windows(m, text_path, eo, protocol, seqlen, &tok, &tt, &plan, &err) != 0)
        goto out;
    if (xf_model_scorer_open(&ms, m, seqlen, &err) != 0)
        goto out;
    char scheme[256] = "";
    if (ms.hooked)
        xf_act_scheme_describe(&ms.act.scheme, scheme, sizeof scheme);
    int prc = xf_perplexity_run(&ms.scorer, tt.ids, (int64_t)tt.n, &plan, &res, &err);
    xf_model_scorer_free(&ms);
    if (prc != 0)
        goto out;
    ppl_stats(out, &res, protocol, tt.sha256, eo ? eo->text_half : 0, scheme);
    if (json && !(*json = ppl_json(out, m->path, text_path))) {
        xf_fail(&err, "%s: out of memory for the JSON result", text_path);
        goto out;
    }
    rc = 0;
out:
    if (rc != 0)
        xf_api_fail(st, XF_FAIL, &err);
    xf_text_tokens_free(&tt);
    xf_tokenizer_free(tok);
    return rc;
}

XF_API int xf_perplexity(const xf_model *m, const char *text_path, const xf_eval_opts *eo,
                         const xf_run_opts *run, xf_ppl_stats *out, char **json, xf_status *st)
{
    if (json)
        *json = NULL;
    if (!m || !text_path || !out)
        return xf_api_fail_msg(st, XF_USAGE, "xf_perplexity: model, text and result are required");
    xf_api_call call;
    xf_api_begin(&call, run);
    int rc = ppl_run(m, text_path, eo, out, json, st);
    xf_api_end(&call);
    if (rc == 0)
        xf_api_ok(st);
    return rc;
}

static char *kld_json(const xf_kld_stats *r, const char *base, const char *model, const char *text)
{
    json_t *o = json_pack(
        "{s:s, s:s, s:s, s:i, s:s, s:s, s:I, s:I, s:I, s:f, s:f, s:f, s:f, s:f, s:f, s:f, s:f, s:f}",
        "base", base, "model", model, "text", text, "text_half", r->base.text_half, "text_sha256",
        r->base.text_sha256,
        "protocol", r->base.protocol, "seqlen", (json_int_t)r->base.seqlen, "nwindows",
        (json_int_t)r->base.n_windows, "n_scored", (json_int_t)r->n_scored, "kl_mean",
        r->kl_mean, "kl_median", r->kl_median, "kl_p99", r->kl_p99, "kl_p999", r->kl_p999,
        "kl_max", r->kl_max, "same_top1", r->same_top1, "ppl_base", r->base.ppl, "ppl_model",
        r->model.ppl, "seconds", r->base.seconds);
    char *s = o ? json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS | JSON_REAL_PRECISION(10)) : NULL;
    json_decref(o);
    return s;
}

static int kld_run(const xf_model *hb, const xf_model *hm, const char *text_path,
                   const xf_eval_opts *eo, xf_kld_stats *out, char **json, xf_status *st)
{
    const xf_loaded_model *base = &hb->m, *model = &hm->m;
    xf_protocol protocol;
    int64_t seqlen = 0;
    if (eval_protocol(eo, &protocol, st) != 0 ||
        window_length(eo, protocol, &base->cfg, &seqlen, st) != 0)
        return -1;
    xf_error err = {0};
    if (base->cfg.vocab != model->cfg.vocab) {
        xf_fail(&err, "%s and %s have different vocabularies (%lld vs %lld)", base->path,
                model->path, (long long)base->cfg.vocab, (long long)model->cfg.vocab);
        return xf_api_fail(st, XF_FAIL, &err);
    }
    int rc = -1;
    xf_tokenizer *tok = NULL;
    xf_text_tokens tt = {0};
    xf_model_scorer sb = {0}, sm = {0};
    bool sb_ok = false, sm_ok = false;
    xf_window_plan plan;
    if (text_windows(base, text_path, eo, protocol, seqlen, &tok, &tt, &plan, &err) != 0)
        goto out;
    if (xf_model_scorer_open(&sb, base, seqlen, &err) != 0)
        goto out;
    sb_ok = true;
    if (xf_model_scorer_open(&sm, model, seqlen, &err) != 0)
        goto out;
    sm_ok = true;
    xf_kld_result r;
    if (xf_kld_run(&sb.scorer, &sm.scorer, tt.ids, (int64_t)tt.n, &plan, &r, &err) != 0)
        goto out;
    memset(out, 0, sizeof *out);
    ppl_stats(&out->base, &r.base, protocol, tt.sha256, eo ? eo->text_half : 0, "");
    ppl_stats(&out->model, &r.model, protocol, tt.sha256, eo ? eo->text_half : 0, "");
    out->kl_mean = r.kl_mean;
    out->kl_median = r.kl_median;
    out->kl_p99 = r.kl_p99;
    out->kl_p999 = r.kl_p999;
    out->kl_max = r.kl_max;
    out->same_top1 = r.same_top1;
    out->n_scored = r.n_scored;
    if (json && !(*json = kld_json(out, base->path, model->path, text_path))) {
        xf_fail(&err, "%s: out of memory for the JSON result", text_path);
        goto out;
    }
    rc = 0;
out:
    if (rc != 0)
        xf_api_fail(st, XF_FAIL, &err);
    if (sb_ok)
        xf_model_scorer_free(&sb);
    if (sm_ok)
        xf_model_scorer_free(&sm);
    xf_text_tokens_free(&tt);
    xf_tokenizer_free(tok);
    return rc;
}

XF_API int xf_kld(const xf_model *base, const xf_model *model, const char *text_path,
                  const xf_eval_opts *eo, const xf_run_opts *run, xf_kld_stats *out,
                  char **json, xf_status *st)
{
    if (json)
        *json = NULL;
    if (!base || !model || !text_path || !out)
        return xf_api_fail_msg(st, XF_USAGE, "xf_kld: models, text and result are required");
    xf_api_call call;
    xf_api_begin(&call, run);
    int rc = kld_run(base, model, text_path, eo, out, json, st);
    xf_api_end(&call);
    if (rc == 0)
        xf_api_ok(st);
    return rc;
}
