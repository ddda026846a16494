/* xfquant kld BASE MODEL --text FILE: KL(P_base || P_model) per scored
 * token (mean, median, 99th/99.9th percentile, max), same-top-1 rate and
 * both perplexities. Base logits are computed on the fly. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/eval_args.h"
#include "core/threads.h"
#include "eval/model_scorer.h"
#include "eval/perplexity.h"
#include "eval/text_tokens.h"
#include "model/loader.h"

static const char kld_help[] =
    "usage: xfquant kld BASE MODEL --text FILE [options]\n\n"
    "KL divergence of MODEL's next-token distributions from BASE's on FILE\n"
    "(tokenized with BASE's tokenizer; both models must share the vocabulary).\n"
    "Options as for 'xfquant ppl': --protocol, --seqlen, --ctx, --max-windows,\n"
    "--threads, --json, --text-binary-ok.\n";

int xf_cmd_kld(const xf_cli_ctx *ctx, int argc, char **argv)
{
    (void)ctx;
    xf_eval_args a;
    bool done;
    int rc = xf_eval_args_parse(&a, "kld", kld_help, 2, argc, argv, &done);
    if (rc != 0 || done)
        return rc;
    xf_threads_set(a.threads);
    xf_error err = {0};
    xf_loaded_model base, model;
    if (xf_model_open(&base, a.positional[0], &err) != 0)
        return xf_failure(err.msg);
    if (xf_model_open(&model, a.positional[1], &err) != 0) {
        xf_model_close(&base);
        return xf_failure(err.msg);
    }
    int exit_code = XF_EXIT_FAIL;
    xf_tokenizer *tok = NULL;
    xf_text_tokens tt = {0};
    xf_model_scorer sb = {0}, sm = {0};
    bool sb_ok = false, sm_ok = false;
    int64_t seqlen;
    char why[256];
    if (xf_eval_window_length(&a, &base.cfg, &seqlen, why, sizeof why) != 0) {
        exit_code = xf_usage_error("kld", "%s", why);
        goto out_quiet;
    }
    if (base.cfg.vocab != model.cfg.vocab) {
        xf_fail(&err, "%s and %s have different vocabularies (%lld vs %lld)", a.positional[0],
                a.positional[1], (long long)base.cfg.vocab, (long long)model.cfg.vocab);
        goto out;
    }
    tok = xf_model_tokenizer(&base, &err);
    if (!tok || xf_text_tokens_load(&tt, a.text, tok, a.text_binary_ok, &err) != 0)
        goto out;
    xf_window_plan plan;
    if (xf_window_plan_make(&plan, a.protocol, seqlen, (int64_t)tt.n, a.max_windows,
                            xf_llamacpp_chunk_bos(tok), &err) != 0) {
        xf_fail_prefix(&err, "%s", a.text);
        goto out;
    }
    if (xf_model_scorer_open(&sb, &base, seqlen, &err) != 0)
        goto out;
    sb_ok = true;
    if (xf_model_scorer_open(&sm, &model, seqlen, &err) != 0)
        goto out;
    sm_ok = true;
    xf_kld_result r;
    if (xf_kld_run(&sb.scorer, &sm.scorer, tt.ids, (int64_t)tt.n, &plan, &r, &err) != 0)
        goto out;
    if (a.json) {
        json_t *o = json_pack(
            "{s:s, s:s, s:s, s:s, s:s, s:I, s:I, s:I, s:f, s:f, s:f, s:f, s:f, s:f, s:f, s:f, s:f}",
            "base", a.positional[0], "model", a.positional[1], "text", a.text, "text_sha256",
            tt.sha256, "protocol", xf_protocol_name(a.protocol), "seqlen", (json_int_t)r.base.seqlen,
            "nwindows", (json_int_t)r.base.n_windows, "n_scored", (json_int_t)r.n_scored,
            "kl_mean", r.kl_mean, "kl_median", r.kl_median, "kl_p99", r.kl_p99, "kl_p999",
            r.kl_p999, "kl_max", r.kl_max, "same_top1", r.same_top1, "ppl_base", r.base.ppl,
            "ppl_model", r.model.ppl, "seconds", r.base.seconds);
        char *s = json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS | JSON_REAL_PRECISION(10));
        puts(s ? s : "{}");
        free(s);
        json_decref(o);
    } else {
        printf("KL(base || model) over %lld tokens (%s protocol, window %lld, %lld windows)\n",
               (long long)r.n_scored, xf_protocol_name(a.protocol), (long long)r.base.seqlen,
               (long long)r.base.n_windows);
        printf("  mean %.6f  median %.6f  p99 %.6f  p99.9 %.6f  max %.6f\n", r.kl_mean,
               r.kl_median, r.kl_p99, r.kl_p999, r.kl_max);
        printf("  same top-1: %.4f %%\n", 100.0 * r.same_top1);
        printf("  ppl base %.4f  model %.4f\n", r.base.ppl, r.model.ppl);
    }
    exit_code = XF_EXIT_OK;
out:
    if (exit_code != XF_EXIT_OK)
        xf_failure(err.msg);
out_quiet:
    if (sb_ok)
        xf_model_scorer_free(&sb);
    if (sm_ok)
        xf_model_scorer_free(&sm);
    xf_text_tokens_free(&tt);
    xf_tokenizer_free(tok);
    xf_model_close(&model);
    xf_model_close(&base);
    return exit_code;
}
