/* A program built against the *installed* libxfquant (header and library
 * found through pkg-config only): quantizes stories260K to 4 bits by RTN
 * through the public API and evaluates both models. Run by run.sh.
 *
 * usage: consumer MODEL_DIR TEXT OUT_DIR; exit 0 ok, 1 failure. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <xfquant.h>

#define CHECK(cond, ...)                                                                     \
    do {                                                                                     \
        if (!(cond)) {                                                                       \
            fprintf(stderr, "consumer: " __VA_ARGS__);                                       \
            fputc('\n', stderr);                                                             \
            exit(1);                                                                         \
        }                                                                                    \
    } while (0)

typedef struct counts {
    int progress, ends, logs;
} counts;

static void on_progress(void *user, const char *stage, int64_t done, int64_t total)
{
    counts *c = user;
    if (done < 0)
        c->ends++;
    else if (stage && done <= total)
        c->progress++;
}

static void on_log(void *user, int level, const char *message)
{
    counts *c = user;
    if (level >= XF_LEVEL_QUIET && message)
        c->logs++;
}

int main(int argc, char **argv)
{
    CHECK(argc == 4, "usage: consumer MODEL_DIR TEXT OUT_DIR");
    const char *model_dir = argv[1], *text = argv[2];
    char out[4096];
    snprintf(out, sizeof out, "%s/stories260K-rtn4.xfq", argv[3]);
    CHECK(xf_version() && *xf_version(), "no version");
    counts c = {0};
    xf_set_log(on_log, &c, XF_LEVEL_WARN);
    xf_run_opts run = {.threads = 2, .progress = on_progress, .progress_user = &c};
    xf_status st;

    /* the fp model */
    xf_model *fp = xf_open_model(model_dir, &run, &st);
    CHECK(fp, "open %s: %s", model_dir, st.message);
    xf_model_info info;
    CHECK(xf_model_get_info(fp, &info) == 0, "info");
    CHECK(!strcmp(info.format, "hf") && !strcmp(info.model_type, "llama") && info.layers > 0 &&
              info.vocab > 0, "unexpected model: %s %s, %lld layers", info.format,
          info.model_type, (long long)info.layers);

    /* RTN 4-bit, groups of 32 (stories260K's rows are 64 wide) */
    xf_recipe *r = xf_recipe_new("rtn", &st);
    CHECK(r, "recipe: %s", st.message);
    CHECK(xf_recipe_set(r, "bits", "4", &st) == 0, "bits: %s", st.message);
    CHECK(xf_recipe_set(r, "group", "32", &st) == 0, "group: %s", st.message);
    CHECK(xf_recipe_check(r, &st) == 0, "check: %s", st.message);
    char *summary = NULL;
    CHECK(xf_quantize(model_dir, r, out, &run, XF_FORMAT_JSON, &summary, &st) == 0, "quantize: %s", st.message);
    xf_free(summary);
    xf_recipe_free(r);

    char *desc = xf_info(out, XF_FORMAT_JSON, &run, &st);
    CHECK(desc && strstr(desc, "\"format\": \"xfq\""), "info of %s: %s", out,
          desc ? desc : st.message);
    xf_free(desc);

    /* perplexity of both, KL of the quantized from the fp one */
    xf_model *q = xf_open_model(out, &run, &st);
    CHECK(q, "open %s: %s", out, st.message);
    xf_eval_opts eo = {.seqlen = 256, .max_windows = 8};
    xf_ppl_stats pf, pq;
    char *json = NULL;
    CHECK(xf_perplexity(fp, text, &eo, &run, &pf, &json, &st) == 0, "ppl fp: %s", st.message);
    CHECK(json && strstr(json, "\"ppl\": "), "ppl json: %s", json ? json : "(null)");
    xf_free(json);
    CHECK(xf_perplexity(q, text, &eo, &run, &pq, NULL, &st) == 0, "ppl q: %s", st.message);
    xf_kld_stats k;
    CHECK(xf_kld(fp, q, text, &eo, &run, &k, NULL, &st) == 0, "kld: %s", st.message);
    printf("ppl fp16 %.4f, rtn4 %.4f; kl mean %.5f, same top-1 %.3f; %lld windows x %lld\n",
           pf.ppl, pq.ppl, k.kl_mean, k.same_top1, (long long)pf.n_windows,
           (long long)pf.seqlen);
    CHECK(isfinite(pf.ppl) && isfinite(pq.ppl) && pf.ppl > 1.0, "ppl not finite");
    CHECK(pf.n_windows == 8 && pf.seqlen == 256 && pf.threads == 2, "windows/threads: %lld %lld %d",
          (long long)pf.n_windows, (long long)pf.seqlen, pf.threads);
    /* 4-bit weights cost accuracy, but not all of it */
    CHECK(pq.ppl >= 0.99 * pf.ppl && pq.ppl < 3.0 * pf.ppl, "rtn4 ppl %.4f vs fp %.4f", pq.ppl,
          pf.ppl);
    CHECK(k.kl_mean > 0.0 && isfinite(k.kl_mean) && k.same_top1 > 0.3 && k.same_top1 <= 1.0,
          "kl %.5f same top-1 %.3f", k.kl_mean, k.same_top1);
    CHECK(fabs(k.base.ppl - pf.ppl) <= 1e-9 * pf.ppl, "kld's base ppl %.6f != ppl %.6f",
          k.base.ppl, pf.ppl);
    CHECK(c.progress > 0 && c.ends > 0, "no progress reported");

    /* errors: one line, the right code */
    CHECK(!xf_open_model("/nonexistent/model", &run, &st) && st.code == XF_FAIL &&
              strstr(st.message, "/nonexistent/model") && !strchr(st.message, '\n'),
          "bad path: %s", st.message);
    xf_eval_opts bad = {.protocol = "nope"};
    CHECK(xf_perplexity(fp, text, &bad, &run, &pf, NULL, &st) != 0 && st.code == XF_USAGE,
          "bad protocol accepted");

    xf_close_model(q);
    xf_close_model(fp);
    xf_set_log(NULL, NULL, XF_LEVEL_WARN);
    return 0;
}
