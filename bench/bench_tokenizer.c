/* Tokenizer throughput on ../shared/data/novels/eval.txt with the
 * novels-5m tokenizer (pre_tokenizer null: the whole text is one BPE
 * word), against a deliberately naive O(n^2) merge loop (rescan every pair
 * after each merge) run in the same process on a 20 KB prefix. Usage:
 * bench_tokenizer [model_dir] [text] (run from the repository root). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/progress.h"
#include "calib/bpe.h"
#include "calib/normalizer.h"
#include "calib/tokenizer.h"
#include "calib/utf8.h"
#include "core/json_util.h"
#include "core/read_file.h"


/* The naive loop: find the lowest-rank (leftmost) pair by scanning all
 * pairs, merge it by shifting the tail, repeat. */
static size_t naive_merge(const xf_merge_map *m, int32_t *ids, size_t n)
{
    for (;;) {
        uint32_t best = UINT32_MAX, rank;
        int32_t best_id = -1, merged;
        size_t at = 0;
        for (size_t i = 0; i + 1 < n; i++)
            if (xf_merge_map_get(m, ids[i], ids[i + 1], &rank, &merged) && rank < best) {
                best = rank;
                best_id = merged;
                at = i;
            }
        if (best_id < 0)
            return n;
        ids[at] = best_id;
        memmove(ids + at + 1, ids + at + 2, (n - at - 2) * sizeof *ids);
        n--;
    }
}

int main(int argc, char **argv)
{
    const char *dir = argc > 1 ? argv[1] : "../shared/models/novels-5m";
    const char *path = argc > 2 ? argv[2] : "../shared/data/novels/eval.txt";
    xf_error err = {{0}};
    char *tj_path = xf_path_join(dir, "tokenizer.json");
    char *cfg_path = xf_path_join(dir, "tokenizer_config.json");
    if (!xf_path_exists(tj_path) || !xf_path_exists(path)) {
        printf("SKIP: %s or %s not found (shared material absent)\n", tj_path, path);
        free(tj_path);
        free(cfg_path);
        return 0;
    }
    json_t *tj = xf_json_load_file(tj_path, &err);
    json_t *cj = tj && xf_path_exists(cfg_path) ? xf_json_load_file(cfg_path, &err) : NULL;
    xf_tokenizer *tok = tj ? xf_tokenizer_load(tj, cj, dir, &err) : NULL;
    char *text = NULL;
    size_t len = 0;
    if (!tok || xf_read_file(path, &text, &len, &err) != 0) {
        fprintf(stderr, "bench_tokenizer: %s\n", err.msg);
        return 1;
    }
    len = xf_text_universal_newlines(text, len);

    /* Full text through the whole tokenizer, best of 3. */
    double best = 1e30;
    size_t n_tokens = 0;
    for (int rep = 0; rep < 3; rep++) {
        int32_t *ids;
        double t0 = xf_now_seconds();
        if (xf_tokenizer_encode(tok, text, len, true, &ids, &n_tokens, &err) != 0) {
            fprintf(stderr, "bench_tokenizer: %s\n", err.msg);
            return 1;
        }
        double dt = xf_now_seconds() - t0;
        best = dt < best ? dt : best;
        free(ids);
    }
    printf("full encode: %zu bytes -> %zu tokens in %.3f s: %.0f tokens/s, %.2f MB/s\n", len,
           n_tokens, best, (double)n_tokens / best, (double)len / best / 1e6);

    /* The merge step alone on a 20 KB prefix: heap vs naive. */
    size_t plen = len < 20000 ? len : 20000;
    while (plen < len && ((unsigned char)text[plen] & 0xC0) == 0x80)
        plen--; /* cut at a character boundary */
    xf_bpe bpe;
    xf_normalizer *nz = NULL;
    xf_tbuf norm = {0};
    xf_ids sym = {0};
    if (xf_bpe_load(&bpe, json_object_get(tj, "model"), dir, &err) != 0 ||
        xf_normalizer_load(json_object_get(tj, "normalizer"), &nz, dir, &err) != 0 ||
        (nz ? xf_normalizer_apply(nz, text, plen, &norm, dir, &err)
            : xf_tbuf_append(&norm, text, plen)) != 0 ||
        xf_bpe_initial_symbols(&bpe, norm.p, norm.n, &sym, dir, &err) != 0) {
        fprintf(stderr, "bench_tokenizer: %s\n", err.msg);
        return 1;
    }
    int32_t *a = malloc(sym.n * sizeof *a), *b = malloc(sym.n * sizeof *b);
    if (!a || !b)
        return 1;
    xf_bpe_work work = {0};
    size_t n_fast = 0, n_naive;
    double fast = 1e30;
    for (int rep = 0; rep < 5; rep++) {
        memcpy(a, sym.v, sym.n * sizeof *a);
        double t0 = xf_now_seconds();
        if (xf_bpe_merge(&bpe.merges, &work, a, sym.n, &n_fast) != 0)
            return 1;
        double dt = xf_now_seconds() - t0;
        fast = dt < fast ? dt : fast;
    }
    memcpy(b, sym.v, sym.n * sizeof *b);
    double t0 = xf_now_seconds();
    n_naive = naive_merge(&bpe.merges, b, sym.n);
    double naive = xf_now_seconds() - t0;
    int same = n_fast == n_naive && memcmp(a, b, n_fast * sizeof *a) == 0;
    printf("merge, %zu-byte prefix (%zu symbols -> %zu): heap %.2f ms (%.1f MB/s), naive O(n^2) "
           "%.1f ms (%.3f MB/s); ratio %.0fx; results %s\n",
           plen, sym.n, n_fast, fast * 1e3, (double)plen / fast / 1e6, naive * 1e3,
           (double)plen / naive / 1e6, naive / fast, same ? "identical" : "DIFFER");
    printf("per-byte throughput, whole tokenizer on the full text vs naive merge on the prefix: "
           "%.0fx\n", ((double)len / best) / ((double)plen / naive));

    free(a);
    free(b);
    xf_bpe_work_free(&work);
    free(sym.v);
    xf_tbuf_free(&norm);
    xf_normalizer_free(nz);
    xf_bpe_free(&bpe);
    free(text);
    xf_tokenizer_free(tok);
    json_decref(tj);
    json_decref(cj);
    free(tj_path);
    free(cfg_path);
    return same ? 0 : 1;
}
