/* make_model: writes a random Hugging Face model directory of any size, for
 * benchmarks at real model sizes (the shared models are 0.26M and 5M
 * parameters). The layout, names and value distributions are those of
 * tests/support/random_model.h (one tensor's values depend only on the seed
 * and its name); a tokenizer is copied from a model directory so that the
 * result runs through every command (vocab_size = the tokenizer's); with
 * --vocab N instead, no tokenizer is written (enough for rtn and export).
 *
 *   make_model [--preset 1b|7b|tiny] [--family llama|qwen2] [--hidden N]
 *              [--intermediate N] [--layers N] [--heads N] [--kv-heads N]
 *              [--max-pos N] [--shards N] [--seed N] [--f32]
 *              (--tokenizer-from DIR | --vocab N) OUT_DIR
 *
 * 1b: hidden 2048, MLP 5632, 22 layers, 32 heads / 4 KV heads (TinyLlama
 * shape); 7b: 4096 / 11008 / 32 layers / 32 heads (Llama-2-7B shape). OUT_DIR
 * is built under a temporary name and renamed when complete. */
#include <errno.h>
#include <stdbool.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "calib/tokenizer.h"
#include "core/json_util.h"
#include "core/read_file.h"
#include "tests/support/random_model.h"
#include "tests/support/test_util.h"

static int copy_file(const char *from_dir, const char *to_dir, const char *name, bool required)
{
    char *src = xf_path_join(from_dir, name), *dst = xf_path_join(to_dir, name);
    char *data = NULL;
    size_t len = 0;
    xf_error err = {{0}};
    int rc = 0;
    if (!xf_path_exists(src)) {
        if (required) {
            fprintf(stderr, "make_model: %s: missing\n", src);
            rc = -1;
        }
    } else if (xf_read_file(src, &data, &len, &err) != 0) {
        fprintf(stderr, "make_model: %s\n", err.msg);
        rc = -1;
    } else {
        FILE *fp = fopen(dst, "wb");
        if (!fp || fwrite(data, 1, len, fp) != len || fflush(fp) != 0 || fsync(fileno(fp)) != 0) {
            fprintf(stderr, "make_model: %s: cannot write: %s\n", dst, strerror(errno));
            rc = -1;
        }
        if (fp && fclose(fp) != 0)
            rc = -1;
    }
    free(data);
    free(src);
    free(dst);
    return rc;
}

/* The vocabulary size of the tokenizer in dir (its largest id + 1). */
static int tokenizer_vocab(const char *dir, int *vocab)
{
    char *path = xf_path_join(dir, "tokenizer.json");
    xf_error err = {{0}};
    json_t *j = xf_json_load_file(path, &err);
    xf_tokenizer *tok = j ? xf_tokenizer_load(j, NULL, path, &err) : NULL;
    if (!tok)
        fprintf(stderr, "make_model: %s\n", err.msg);
    else
        *vocab = (int)xf_tokenizer_vocab_size(tok);
    xf_tokenizer_free(tok);
    json_decref(j);
    free(path);
    return tok ? 0 : -1;
}

static int usage(const char *msg)
{
    fprintf(stderr, "make_model: %s\nusage: make_model [--preset 1b|7b|tiny] [--family llama|qwen2] "
                    "[--hidden N] [--intermediate N] [--layers N] [--heads N] [--kv-heads N] "
                    "[--max-pos N] [--shards N] [--seed N] [--f32] (--tokenizer-from DIR | --vocab N) "
                    "OUT_DIR\n",
            msg);
    return 2;
}

int main(int argc, char **argv)
{
    xf_random_model_spec s = {.family = "llama", .hidden = 2048, .intermediate = 5632,
                              .layers = 22, .heads = 32, .kv_heads = 4, .max_pos = 2048,
                              .f16 = true, .shards = 0, .seed = 1};
    const char *tok_dir = NULL;
    static const struct option opts[] = {
        {"preset", required_argument, NULL, 'p'},  {"family", required_argument, NULL, 'f'},
        {"hidden", required_argument, NULL, 'H'},  {"intermediate", required_argument, NULL, 'I'},
        {"layers", required_argument, NULL, 'L'},  {"heads", required_argument, NULL, 'a'},
        {"kv-heads", required_argument, NULL, 'k'}, {"max-pos", required_argument, NULL, 'P'},
        {"shards", required_argument, NULL, 's'},  {"seed", required_argument, NULL, 'S'},
        {"f32", no_argument, NULL, 'F'},           {"tokenizer-from", required_argument, NULL, 't'},
        {"vocab", required_argument, NULL, 'V'},
        {0, 0, 0, 0}};
    int c;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'p':
            if (strcmp(optarg, "1b") == 0)
                s.hidden = 2048, s.intermediate = 5632, s.layers = 22, s.heads = 32, s.kv_heads = 4;
            else if (strcmp(optarg, "7b") == 0)
                s.hidden = 4096, s.intermediate = 11008, s.layers = 32, s.heads = 32, s.kv_heads = 32;
            else if (strcmp(optarg, "tiny") == 0)
                s.hidden = 256, s.intermediate = 768, s.layers = 2, s.heads = 8, s.kv_heads = 2;
            else
                return usage("--preset must be 1b, 7b or tiny");
            break;
        case 'f':
            if (strcmp(optarg, "llama") != 0 && strcmp(optarg, "qwen2") != 0)
                return usage("--family must be llama or qwen2");
            s.family = optarg;
            break;
        case 'H': s.hidden = atoi(optarg); break;
        case 'I': s.intermediate = atoi(optarg); break;
        case 'L': s.layers = atoi(optarg); break;
        case 'a': s.heads = atoi(optarg); break;
        case 'k': s.kv_heads = atoi(optarg); break;
        case 'P': s.max_pos = atoi(optarg); break;
        case 's': s.shards = atoi(optarg); break;
        case 'S': s.seed = strtoull(optarg, NULL, 10); break;
        case 'F': s.f16 = false; break;
        case 't': tok_dir = optarg; break;
        case 'V': s.vocab = atoi(optarg); break;
        default: return usage("unknown option");
        }
    }
    if (optind != argc - 1 || (!tok_dir) == (s.vocab <= 0))
        return usage("OUT_DIR and one of --tokenizer-from DIR or --vocab N are required");
    const char *out = argv[optind];
    if (xf_path_exists(out)) {
        fprintf(stderr, "make_model: %s exists; remove it first\n", out);
        return 1;
    }
    if (tok_dir && tokenizer_vocab(tok_dir, &s.vocab) != 0)
        return 1;
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp-%ld", out, (long)getpid());
    char *made = xf_random_model_write(tmp, &s);
    bool ok = made && (!tok_dir || (copy_file(tok_dir, tmp, "tokenizer.json", true) == 0 &&
                                    copy_file(tok_dir, tmp, "tokenizer_config.json", false) == 0));
    free(made);
    if (!ok || rename(tmp, out) != 0) {
        fprintf(stderr, "make_model: could not write %s\n", out);
        xf_test_rmtree(tmp);
        return 1;
    }
    int64_t d = s.hidden, f = s.intermediate, hd = d / s.heads, kv = (int64_t)s.kv_heads * hd;
    int64_t params = (int64_t)s.layers * (d * d * 2 + 2 * d * kv + 3 * d * f + 2 * d) +
                     2 * (int64_t)s.vocab * d + d;
    printf("%s: %s, hidden %d, MLP %d, %d layers, %d/%d heads, vocab %d: %.3f G parameters\n",
           out, s.family, s.hidden, s.intermediate, s.layers, s.heads, s.kv_heads, s.vocab,
           (double)params / 1e9);
    return 0;
}
