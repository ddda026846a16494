/* tokenizer.json -> tokenizer.ggml.* (export/gguf_vocab.h). */
#include "export/gguf_vocab.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "calib/bpe.h"
#include "calib/tokenizer.h"
#include "calib/vocab.h"

/* llama.cpp's token types (llama_token_type) */
enum { TT_NORMAL = 1, TT_UNKNOWN = 2, TT_CONTROL = 3, TT_USER = 4, TT_UNUSED = 5, TT_BYTE = 6 };

/* True when some object under j has "type": type (pre_tokenizer and
 * decoder trees: Sequence nests them). */
static bool has_type(const json_t *j, const char *type)
{
    if (json_is_object(j)) {
        const char *t = json_string_value(json_object_get(j, "type"));
        if (t && !strcmp(t, type))
            return true;
        const char *k;
        const json_t *v;
        json_object_foreach((json_t *)j, k, v)
            if (has_type(v, type))
                return true;
    } else if (json_is_array(j)) {
        size_t i;
        const json_t *v;
        json_array_foreach(j, i, v)
            if (has_type(v, type))
                return true;
    }
    return false;
}

/* Whether the SentencePiece-style pipeline puts "▁" before the text:
 * a Prepend normalizer, or a Metaspace pre-tokenizer not set to "never". */
static bool find_space_prefix(const json_t *j)
{
    if (json_is_object(j)) {
        const char *t = json_string_value(json_object_get(j, "type"));
        if (t && !strcmp(t, "Prepend"))
            return true;
        if (t && !strcmp(t, "Metaspace")) {
            const char *scheme = json_string_value(json_object_get(j, "prepend_scheme"));
            const json_t *add = json_object_get(j, "add_prefix_space");
            if (scheme)
                return strcmp(scheme, "never") != 0;
            return !json_is_false(add);
        }
        const char *k;
        const json_t *v;
        json_object_foreach((json_t *)j, k, v)
            if (find_space_prefix(v))
                return true;
    } else if (json_is_array(j)) {
        size_t i;
        const json_t *v;
        json_array_foreach(j, i, v)
            if (find_space_prefix(v))
                return true;
    }
    return false;
}

typedef struct vocab_out {
    int64_t n;
    char **tok;      /* [n] owned */
    size_t *len;     /* [n] */
    int32_t *type;   /* [n] */
    float *score;    /* [n] */
    xf_vocab index;  /* string -> id, refuses duplicates */
} vocab_out;

static void vocab_out_free(vocab_out *v)
{
    if (v->tok)
        for (int64_t i = 0; i < v->n; i++)
            free(v->tok[i]);
    free(v->tok);
    free(v->len);
    free(v->type);
    free(v->score);
    xf_vocab_free(&v->index);
}

/* The id of a tokenizer_config.json token entry (a string or an object with
 * "content"), or -1. */
static int32_t config_token_id(const vocab_out *v, const json_t *cfg, const char *key)
{
    const json_t *e = json_object_get(cfg, key);
    if (json_is_object(e))
        e = json_object_get(e, "content");
    const char *s = json_string_value(e);
    return s ? xf_vocab_find(&v->index, s, strlen(s)) : -1;
}

static int fill_tokens(vocab_out *v, const xf_bpe *bpe, const json_t *added, bool spm,
                       int64_t n_rows, const char *what, xf_error *err)
{
    int64_t n_tok = bpe->vocab.n_ids;
    size_t i;
    const json_t *a;
    json_array_foreach(added, i, a) {
        json_int_t id = json_integer_value(json_object_get(a, "id"));
        if (id + 1 > n_tok)
            n_tok = id + 1;
    }
    if (n_tok > n_rows)
        return xf_fail(err, "%s: the tokenizer has %lld tokens, the embedding only %lld rows",
                       what, (long long)n_tok, (long long)n_rows);
    v->n = n_rows;
    v->tok = calloc((size_t)n_rows, sizeof *v->tok);
    v->len = calloc((size_t)n_rows, sizeof *v->len);
    v->type = calloc((size_t)n_rows, sizeof *v->type);
    v->score = calloc((size_t)n_rows, sizeof *v->score);
    if (!v->tok || !v->len || !v->type || !v->score)
        return xf_fail(err, "%s: out of memory", what);
    for (int32_t id = 0; id < bpe->vocab.n_ids; id++) {
        size_t n;
        const char *s = xf_vocab_str(&bpe->vocab, id, &n);
        if (!s)
            continue;
        if (!(v->tok[id] = strndup(s, n)))
            return xf_fail(err, "%s: out of memory", what);
        v->len[id] = n;
        v->type[id] = TT_NORMAL;
    }
    if (spm) {
        if (bpe->unk_id >= 0)
            v->type[bpe->unk_id] = TT_UNKNOWN;
        for (int b = 0; b < 256; b++)
            if (bpe->byte_ids[b] >= 0)
                v->type[bpe->byte_ids[b]] = TT_BYTE;
    }
    /* added tokens take their id's place (HF: added tokens win) */
    json_array_foreach(added, i, a) {
        json_int_t id = json_integer_value(json_object_get(a, "id"));
        const char *s = json_string_value(json_object_get(a, "content"));
        if (!s || id < 0)
            return xf_fail(err, "%s: added_tokens[%zu] has no content or id", what, i);
        free(v->tok[id]);
        if (!(v->tok[id] = strdup(s)))
            return xf_fail(err, "%s: out of memory", what);
        v->len[id] = strlen(s);
        v->type[id] = json_is_true(json_object_get(a, "special")) ? TT_CONTROL : TT_USER;
        if (spm && id == bpe->unk_id)
            v->type[id] = TT_UNKNOWN;
    }
    for (int64_t id = 0; id < n_rows; id++) {
        if (v->tok[id])
            continue;
        char buf[48];
        int n = snprintf(buf, sizeof buf, "[PAD%lld]", (long long)id);
        if (!(v->tok[id] = strdup(buf)))
            return xf_fail(err, "%s: out of memory", what);
        v->len[id] = (size_t)n;
        v->type[id] = TT_UNUSED;
    }
    if (xf_vocab_init(&v->index, (size_t)n_rows, (int32_t)n_rows, what, err) != 0)
        return -1;
    for (int64_t id = 0; id < n_rows; id++)
        if (xf_vocab_add(&v->index, v->tok[id], v->len[id], (int32_t)id, what, err) != 0)
            return xf_fail_prefix(err, "GGUF needs distinct token strings");
    return 0;
}

/* SPM scores from the merge table: -(first rank producing the token);
 * multi-character tokens no merge produces: -1e9 (never preferred). */
static void spm_scores(vocab_out *v, const xf_bpe *bpe)
{
    for (int64_t id = 0; id < v->n; id++) {
        /* one UTF-8 character: an initial symbol, never a merge result */
        const unsigned char c0 = (unsigned char)v->tok[id][0];
        size_t clen = c0 < 0x80 ? 1 : c0 < 0xe0 ? 2 : c0 < 0xf0 ? 3 : 4;
        v->score[id] = v->type[id] == TT_NORMAL && v->len[id] > clen ? -1e9f : 0.0f;
    }
    const xf_merge_map *m = &bpe->merges;
    float *best = malloc((size_t)v->n * sizeof *best);
    if (!best)
        return;
    for (int64_t id = 0; id < v->n; id++)
        best[id] = 1.0f; /* none yet */
    for (size_t s = 0; m->slots && s <= m->mask; s++) {
        const xf_merge_slot *sl = &m->slots[s];
        if (sl->key == UINT64_MAX || sl->merged < 0 || sl->merged >= v->n)
            continue;
        float sc = -(float)sl->rank;
        if (best[sl->merged] > 0.5f || sc > best[sl->merged])
            best[sl->merged] = sc;
    }
    for (int64_t id = 0; id < v->n; id++)
        if (best[id] <= 0.0f && v->type[id] == TT_NORMAL)
            v->score[id] = best[id];
    free(best);
}

typedef struct merge_entry {
    uint32_t rank;
    int32_t left, right;
} merge_entry;

static int cmp_merge(const void *a, const void *b)
{
    const merge_entry *x = a, *y = b;
    return x->rank < y->rank ? -1 : x->rank > y->rank;
}

/* "left right" strings of the merge table in rank order. */
static int add_merges(xf_gguf_writer *w, const xf_bpe *bpe, const char *what, size_t *n_out,
                      xf_error *err)
{
    const xf_merge_map *m = &bpe->merges;
    merge_entry *e = malloc((m->count + 1) * sizeof *e);
    char **s = calloc(m->count + 1, sizeof *s);
    int rc = -1;
    size_t n = 0;
    if (!e || !s) {
        xf_fail(err, "%s: out of memory", what);
        goto out;
    }
    for (size_t k = 0; m->slots && k <= m->mask; k++)
        if (m->slots[k].key != UINT64_MAX)
            e[n++] = (merge_entry){m->slots[k].rank, (int32_t)(m->slots[k].key >> 32),
                                   (int32_t)(m->slots[k].key & 0xffffffffu)};
    qsort(e, n, sizeof *e, cmp_merge);
    for (size_t k = 0; k < n; k++) {
        size_t la, lb;
        const char *a = xf_vocab_str(&bpe->vocab, e[k].left, &la);
        const char *b = xf_vocab_str(&bpe->vocab, e[k].right, &lb);
        if (!a || !b || !(s[k] = malloc(la + lb + 2))) {
            xf_fail(err, "%s: merge %zu names an unknown token", what, k);
            goto out;
        }
        memcpy(s[k], a, la);
        s[k][la] = ' ';
        memcpy(s[k] + la + 1, b, lb);
        s[k][la + lb + 1] = 0;
    }
    rc = xf_gguf_add_str_array(w, "tokenizer.ggml.merges", (const char *const *)s, NULL, n, err);
    *n_out = n;
out:
    if (s)
        for (size_t k = 0; k < n; k++)
            free(s[k]);
    free(s);
    free(e);
    return rc;
}

int xf_gguf_add_vocab(xf_gguf_writer *w, const json_t *tokenizer_json,
                      const json_t *tokenizer_config, const char *bpe_pre, int64_t n_rows,
                      const char *what, json_t *summary, xf_error *err)
{
    if (!tokenizer_json)
        return xf_fail(err, "%s: no tokenizer.json: a GGUF file must carry the tokenizer", what);
    /* loading the whole tokenizer checks that xfquant supports it and gives
     * the special tokens exactly as evaluation uses them */
    xf_tokenizer *tok = xf_tokenizer_load(tokenizer_json, tokenizer_config, what, err);
    if (!tok)
        return -1;
    const json_t *model = json_object_get(tokenizer_json, "model");
    xf_bpe bpe;
    memset(&bpe, 0, sizeof bpe);
    vocab_out v;
    memset(&v, 0, sizeof v);
    int rc = -1;
    if (xf_bpe_load(&bpe, model, what, err) != 0)
        goto out;
    const bool byte_level = has_type(json_object_get(tokenizer_json, "pre_tokenizer"), "ByteLevel") ||
                            has_type(json_object_get(tokenizer_json, "decoder"), "ByteLevel");
    const bool spm = !byte_level;
    if (fill_tokens(&v, &bpe, json_object_get(tokenizer_json, "added_tokens"), spm, n_rows,
                    what, err) != 0)
        goto out;
    size_t n_merges = 0;
    if (xf_gguf_add_string(w, "tokenizer.ggml.model", spm ? "llama" : "gpt2", err) != 0)
        goto out;
    if (!spm && xf_gguf_add_string(w, "tokenizer.ggml.pre", bpe_pre, err) != 0)
        goto out;
    if (xf_gguf_add_str_array(w, "tokenizer.ggml.tokens", (const char *const *)v.tok, v.len,
                              (size_t)v.n, err) != 0)
        goto out;
    if (spm) {
        spm_scores(&v, &bpe);
        if (xf_gguf_add_f32_array(w, "tokenizer.ggml.scores", v.score, (size_t)v.n, err) != 0)
            goto out;
    }
    if (xf_gguf_add_i32_array(w, "tokenizer.ggml.token_type", v.type, (size_t)v.n, err) != 0)
        goto out;
    if (!spm && add_merges(w, &bpe, what, &n_merges, err) != 0)
        goto out;
    const int32_t bos = xf_tokenizer_bos_id(tok), eos = xf_tokenizer_eos_id(tok);
    const int32_t pad = config_token_id(&v, tokenizer_config, "pad_token");
    if (bos >= 0 && xf_gguf_add_u32(w, "tokenizer.ggml.bos_token_id", (uint32_t)bos, err) != 0)
        goto out;
    if (eos >= 0 && xf_gguf_add_u32(w, "tokenizer.ggml.eos_token_id", (uint32_t)eos, err) != 0)
        goto out;
    if (bpe.unk_id >= 0 &&
        xf_gguf_add_u32(w, "tokenizer.ggml.unknown_token_id", (uint32_t)bpe.unk_id, err) != 0)
        goto out;
    if (pad >= 0 && xf_gguf_add_u32(w, "tokenizer.ggml.padding_token_id", (uint32_t)pad, err) != 0)
        goto out;
    const bool add_bos = xf_tokenizer_adds_bos(tok);
    const bool add_eos = json_is_true(json_object_get(tokenizer_config, "add_eos_token"));
    if (xf_gguf_add_bool(w, "tokenizer.ggml.add_bos_token", add_bos, err) != 0 ||
        xf_gguf_add_bool(w, "tokenizer.ggml.add_eos_token", add_eos, err) != 0)
        goto out;
    if (spm && xf_gguf_add_bool(w, "tokenizer.ggml.add_space_prefix",
                                find_space_prefix(json_object_get(tokenizer_json, "normalizer")) ||
                                    find_space_prefix(json_object_get(tokenizer_json,
                                                                      "pre_tokenizer")),
                                err) != 0)
        goto out;
    if (summary) {
        json_t *o = json_pack("{s:s, s:I, s:I, s:b, s:I, s:I}", "model", spm ? "llama" : "gpt2",
                              "tokens", (json_int_t)v.n, "padded",
                              (json_int_t)(v.n - xf_tokenizer_vocab_size(tok)), "add_bos",
                              add_bos, "bos", (json_int_t)bos, "eos", (json_int_t)eos);
        if (!spm) {
            json_object_set_new(o, "pre", json_string(bpe_pre));
            json_object_set_new(o, "merges", json_integer((json_int_t)n_merges));
        }
        json_object_set_new(summary, "tokenizer", o);
    }
    rc = 0;
out:
    vocab_out_free(&v);
    xf_bpe_free(&bpe);
    xf_tokenizer_free(tok);
    return rc;
}
