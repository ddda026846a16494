/* xfquant kld BASE MODEL --text FILE: KL(P_base || P_model) per scored
 * token (mean, median, 99th/99.9th percentile, max), same-top-1 rate and
 * both perplexities. Base logits are computed on the fly. */
#include <stdio.h>

#include "cli/cli.h"
#include "cli/eval_args.h"

static const char kld_help[] =
    "usage: xfquant kld BASE MODEL --text FILE [options]\n\n"
    "KL divergence of MODEL's next-token distributions from BASE's on FILE\n"
    "(tokenized with BASE's tokenizer; both models must share the vocabulary).\n"
    "Options as for 'xfquant ppl': --protocol, --seqlen, --ctx, --max-windows,\n"
    "--threads, --json, --progress, --text-binary-ok, --text-half.\n";

int xf_cmd_kld(const xf_cli_ctx *ctx, int argc, char **argv)
{
    (void)ctx;
    xf_eval_args a;
    bool done;
    int rc = xf_eval_args_parse(&a, "kld", kld_help, 2, argc, argv, &done);
    if (rc != 0 || done)
        return rc;
    xf_cli_progress prog;
    xf_run_opts run = xf_cli_run_opts_mode(a.threads, a.progress, &prog);
    xf_status st = {0};
    xf_model *base = xf_open_model(a.positional[0], &run, &st);
    if (!base)
        return xf_cli_status_exit("kld", &st);
    xf_model *model = xf_open_model(a.positional[1], &run, &st);
    if (!model) {
        xf_close_model(base);
        return xf_cli_status_exit("kld", &st);
    }
    xf_kld_stats r;
    char *json = NULL;
    rc = xf_kld(base, model, a.text, &a.eval, &run, &r, a.json ? &json : NULL, &st);
    if (rc != 0)
        rc = xf_cli_status_exit("kld", &st);
    else if (a.json)
        printf("%s\n", json);
    else {
        printf("KL(base || model) over %lld tokens (%s protocol, window %lld, %lld windows)\n",
               (long long)r.n_scored, r.base.protocol, (long long)r.base.seqlen,
               (long long)r.base.n_windows);
        printf("  mean %.6f  median %.6f  p99 %.6f  p99.9 %.6f  max %.6f\n", r.kl_mean,
               r.kl_median, r.kl_p99, r.kl_p999, r.kl_max);
        printf("  same top-1: %.4f %%\n", 100.0 * r.same_top1);
        printf("  ppl base %.4f  model %.4f\n", r.base.ppl, r.model.ppl);
    }
    xf_free(json);
    xf_close_model(model);
    xf_close_model(base);
    return rc;
}
