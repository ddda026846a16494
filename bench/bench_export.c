/* Export throughput: `xfquant export --to gguf` of a random Llama model
 * (tests/support/random_model.c, fp16) in MB/s of output, against `cp` of
 * the same output bytes followed by `sync` of the copy (export fsyncs its
 * output, so the baseline does too), measured in the same run. Best of
 * `reps` runs each. With an xfquant binary as argv[1], also the RTN 4-bit
 * .xfq of the model exported to Q4_0.
 * Usage: bench_export [XFQUANT_BIN] [hidden] [layers] [reps] */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/progress.h"
#include "export/export.h"
#include "tests/support/random_model.h"
#include "tests/support/test_util.h"

static double file_mb(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0 ? (double)st.st_size / 1e6 : 0.0;
}

/* Best wall time of `reps` exports of in -> out. */
static double time_export(const char *in, const char *out, const xf_export_opts *o, int reps)
{
    double best = 1e30;
    for (int r = 0; r < reps; r++) {
        xf_error err;
        json_t *sum = NULL;
        double t0 = xf_now_seconds();
        if (xf_export_gguf(in, out, o, &sum, &err) != 0) {
            fprintf(stderr, "export failed: %s\n", err.msg);
            exit(1);
        }
        double t = xf_now_seconds() - t0;
        json_decref(sum);
        if (t < best)
            best = t;
    }
    return best;
}

static double time_cp(const char *src, const char *dst, int reps)
{
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "cp '%s' '%s' && sync '%s'", src, dst, dst);
    double best = 1e30;
    for (int r = 0; r < reps; r++) {
        double t0 = xf_now_seconds();
        if (system(cmd) != 0) {
            fprintf(stderr, "cp failed\n");
            exit(1);
        }
        double t = xf_now_seconds() - t0;
        if (t < best)
            best = t;
    }
    return best;
}

static void report(const char *what, const char *in, const char *out, const xf_export_opts *o,
                   const char *tmp, int reps)
{
    double te = time_export(in, out, o, reps);
    char cp_dst[1024];
    snprintf(cp_dst, sizeof cp_dst, "%s/copy.bin", tmp);
    double tc = time_cp(out, cp_dst, reps);
    double mb = file_mb(out);
    printf("%-28s %8.1f MB  export %7.3f s %8.1f MB/s   cp+sync %7.3f s %8.1f MB/s   "
           "export/cp %.2f\n",
           what, mb, te, mb / te, tc, mb / tc, tc / te);
    remove(cp_dst);
}

int main(int argc, char **argv)
{
    const char *xfq_bin = argc > 1 ? argv[1] : NULL;
    int hidden = argc > 2 ? atoi(argv[2]) : 768;
    int layers = argc > 3 ? atoi(argv[3]) : 6;
    int reps = argc > 4 ? atoi(argv[4]) : 3;
    char *tmp = xf_test_tmpdir();
    if (!tmp)
        return 1;
    char dir[1024], out[1024], xq[1024];
    snprintf(dir, sizeof dir, "%s/model", tmp);
    snprintf(out, sizeof out, "%s/out.gguf", tmp);
    snprintf(xq, sizeof xq, "%s/model.xfq", tmp);
    xf_random_model_spec s = {.family = "llama", .hidden = hidden, .intermediate = hidden * 8 / 3 / 32 * 32,
                              .layers = layers, .heads = hidden / 64, .kv_heads = hidden / 128,
                              .vocab = 32000, .max_pos = 2048, .f16 = true, .seed = 1};
    char *d = xf_random_model_write(dir, &s);
    if (!d)
        return 1;
    free(d);
    /* a one-token-type tokenizer is enough for the export */
    char tj[] = "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"<unk>\": 0, \"<s>\": 1, \"</s>\": 2, "
                "\"a\": 3}, \"merges\": [], \"unk_token\": \"<unk>\"}, \"added_tokens\": []}";
    free(xf_test_write_file(dir, "tokenizer.json", tj, strlen(tj)));
    long long params = (long long)layers * ((long long)hidden * hidden * 2 +
                                            2LL * hidden * (hidden / 2) +
                                            3LL * hidden * s.intermediate) +
                       2LL * 32000 * hidden;
    printf("random llama: hidden %d, intermediate %d, %d layers, vocab 32000: %.1f M params; "
           "best of %d\n",
           hidden, s.intermediate, layers, (double)params / 1e6, reps);
    xf_export_opts o = {0};
    report("fp16 dir -> GGUF F16", dir, out, &o, tmp, reps);
    o.float_type = XF_EXPORT_FLOAT_F32;
    report("fp16 dir -> GGUF F32", dir, out, &o, tmp, reps);
    if (xfq_bin) {
        char cmd[4096];
        snprintf(cmd, sizeof cmd, "'%s' rtn --bits 4 --group 32 --sym '%s' '%s' >/dev/null",
                 xfq_bin, dir, xq);
        if (system(cmd) == 0) {
            xf_export_opts q = {0};
            report("rtn .xfq -> GGUF Q4_0", xq, out, &q, tmp, reps);
        }
    }
    xf_test_rmtree(tmp);
    free(tmp);
    return 0;
}
