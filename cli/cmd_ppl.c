/* xfquant ppl MODEL --text FILE: perplexity under the GPTQ (default) or the
 * llama.cpp protocol. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/eval_args.h"
#include "core/log.h"
#include "core/threads.h"
#include "eval/model_scorer.h"
#include "eval/perplexity.h"
#include "eval/text_tokens.h"
#include "model/loader.h"

static const char ppl_help[] =
    "usage: xfquant ppl MODEL --text FILE [options]\n\n"
    "Perplexity of MODEL (HF directory, .safetensors with config.json beside it,\n"
    "or .xfq) on the text in FILE, tokenized once with the model's tokenizer.\n\n"
    "  --protocol gptq|llamacpp  gptq (default): non-overlapping windows of --seqlen\n"
    "                            tokens, tail dropped, PPL = exp(mean of window mean NLLs)\n"
    "                            (GPTQ/AWQ/QuaRot papers). llamacpp: chunks of --ctx tokens,\n"
    "                            first token -> BOS (when the tokenizer adds BOS, as\n"
    "                            llama.cpp does), second half scored, PPL +/- stderr.\n"
    "  --seqlen N                gptq window (default min(2048, max_position_embeddings))\n"
    "  --ctx N                   llamacpp chunk (default min(512, max_position_embeddings))\n"
    "  --max-windows N           evaluate at most N windows\n"
    "  --threads N               threads for BLAS and loops (default: all cores)\n"
    "  --json                    print {ppl, nll, ntokens, nwindows, seqlen, protocol,\n"
    "                            tokens_per_second, model, text_sha256, ...}\n"
    "  --text-binary-ok          score FILE even if it is not UTF-8 text (invalid UTF-8\n"
    "                            or NUL bytes are refused by default)\n";

int xf_cmd_ppl(const xf_cli_ctx *ctx, int argc, char **argv)
{
    (void)ctx;
    xf_eval_args a;
    bool done;
    int rc = xf_eval_args_parse(&a, "ppl", ppl_help, 1, argc, argv, &done);
    if (rc != 0 || done)
        return rc;
    xf_threads_set(a.threads);
    xf_error err = {0};
    xf_loaded_model m;
    if (xf_model_open(&m, a.positional[0], &err) != 0)
        return xf_failure(err.msg);
    int64_t seqlen;
    char why[256];
    if (xf_eval_window_length(&a, &m.cfg, &seqlen, why, sizeof why) != 0) {
        xf_model_close(&m);
        return xf_usage_error("ppl", "%s", why);
    }
    if (seqlen > m.cfg.max_pos)
        xf_log_warn("window of %lld tokens is longer than the model's max_position_embeddings %lld",
                    (long long)seqlen, (long long)m.cfg.max_pos);
    xf_tokenizer *tok = xf_model_tokenizer(&m, &err);
    xf_text_tokens tt = {0};
    xf_model_scorer ms;
    xf_window_plan plan;
    xf_ppl_result res;
    int exit_code = XF_EXIT_FAIL;
    if (!tok || xf_text_tokens_load(&tt, a.text, tok, a.text_binary_ok, &err) != 0)
        goto out;
    if (xf_window_plan_make(&plan, a.protocol, seqlen, (int64_t)tt.n, a.max_windows,
                            xf_llamacpp_chunk_bos(tok), &err) != 0) {
        xf_fail_prefix(&err, "%s", a.text);
        goto out;
    }
    if (xf_model_scorer_open(&ms, &m, seqlen, &err) != 0)
        goto out;
    char scheme[256] = "";
    if (ms.hooked)
        xf_act_scheme_describe(&ms.act.scheme, scheme, sizeof scheme);
    rc = xf_perplexity_run(&ms.scorer, tt.ids, (int64_t)tt.n, &plan, &res, &err);
    xf_model_scorer_free(&ms);
    if (rc != 0)
        goto out;
    if (a.json) {
        printf("{\"ppl\": %.10g, \"nll\": %.10g, \"ppl_stderr\": %.6g, \"ntokens\": %lld, "
               "\"nwindows\": %lld, \"seqlen\": %lld, \"n_scored\": %lld, \"protocol\": \"%s\", "
               "\"tokens_per_second\": %.1f, \"seconds\": %.3f, \"threads\": %d, ",
               res.ppl, res.mean_nll, res.ppl_stderr, (long long)res.n_tokens,
               (long long)res.n_windows, (long long)res.seqlen, (long long)res.n_scored,
               xf_protocol_name(a.protocol), res.tokens_per_second, res.seconds,
               xf_threads_get());
        json_t *names = json_pack("{s:s, s:s, s:o}", "model", a.positional[0], "text", a.text,
                                  "act_scheme", scheme[0] ? json_string(scheme) : json_null());
        char *s = json_dumps(names, JSON_COMPACT | JSON_SORT_KEYS);
        /* strip the braces: splice the escaped strings into the object */
        if (s) {
            s[strlen(s) - 1] = '\0';
            printf("%s, ", s + 1);
        }
        free(s);
        json_decref(names);
        printf("\"text_sha256\": \"%s\"}\n", tt.sha256);
    } else if (a.protocol == XF_PROTOCOL_LLAMACPP) {
        printf("%s: ppl %.4f +/- %.4f (llama.cpp protocol, ctx %lld, %lld chunks, %lld tokens "
               "scored of %lld, %.0f tok/s%s%s)\n",
               a.positional[0], res.ppl, res.ppl_stderr, (long long)res.seqlen,
               (long long)res.n_windows, (long long)res.n_scored, (long long)res.n_tokens,
               res.tokens_per_second, scheme[0] ? "; " : "", scheme);
    } else {
        printf("%s: ppl %.4f (GPTQ protocol, seqlen %lld, %lld windows, %lld tokens, %.0f tok/s%s%s)\n",
               a.positional[0], res.ppl, (long long)res.seqlen, (long long)res.n_windows,
               (long long)res.n_tokens, res.tokens_per_second, scheme[0] ? "; " : "", scheme);
    }
    exit_code = XF_EXIT_OK;
out:
    if (exit_code != XF_EXIT_OK)
        xf_failure(err.msg);
    xf_text_tokens_free(&tt);
    xf_tokenizer_free(tok);
    xf_model_close(&m);
    return exit_code;
}
