/* xfquant ppl MODEL --text FILE: perplexity under the GPTQ (default) or the
 * llama.cpp protocol. */
#include <stdio.h>

#include "cli/cli.h"
#include "cli/eval_args.h"

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
    "  --progress MODE           auto (default: a bar on a terminal, else nothing), bar,\n"
    "                            json (one JSON object per event and line) or none\n"
    "  --text-half 1|2           score only that half of FILE: its bytes cut after the first\n"
    "                            line break at or after the middle (two disjoint held-out\n"
    "                            texts; the hash and tokens are the half's)\n"
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
    xf_cli_progress prog;
    xf_run_opts run = xf_cli_run_opts_mode(a.threads, a.progress, &prog);
    xf_status st = {0};
    xf_model *m = xf_open_model(a.positional[0], &run, &st);
    if (!m)
        return xf_cli_status_exit("ppl", &st);
    xf_ppl_stats r;
    char *json = NULL;
    if (xf_perplexity(m, a.text, &a.eval, &run, &r, a.json ? &json : NULL, &st) != 0) {
        xf_close_model(m);
        return xf_cli_status_exit("ppl", &st);
    }
    const char *sep = r.act_scheme[0] ? "; " : "";
    const char *half = r.text_half == 1 ? ", text half 1" : r.text_half == 2 ? ", text half 2" : "";
    if (a.json)
        printf("%s\n", json);
    else if (r.protocol[0] == 'l') /* llamacpp */
        printf("%s: ppl %.4f +/- %.4f (llama.cpp protocol, ctx %lld, %lld chunks, %lld tokens "
               "scored of %lld%s, %.0f tok/s%s%s)\n",
               a.positional[0], r.ppl, r.ppl_stderr, (long long)r.seqlen, (long long)r.n_windows,
               (long long)r.n_scored, (long long)r.n_tokens, half, r.tokens_per_second, sep,
               r.act_scheme);
    else
        printf("%s: ppl %.4f (GPTQ protocol, seqlen %lld, %lld windows, %lld tokens%s, %.0f tok/s%s%s)\n",
               a.positional[0], r.ppl, (long long)r.seqlen, (long long)r.n_windows,
               (long long)r.n_tokens, half, r.tokens_per_second, sep, r.act_scheme);
    xf_free(json);
    xf_close_model(m);
    return XF_EXIT_OK;
}
