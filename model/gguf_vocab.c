/* tokenizer.ggml.* -> tokenizer.json / tokenizer_config.json equivalents
 * (model/gguf_model.h), so that calib/tokenizer.c builds the tokenizer
 * with the same code and checks as from an HF directory.
 *
 * "llama" (SentencePiece-style): llama.cpp merges the adjacent pair whose
 * concatenation is a token with the highest score, leftmost first. A BPE
 * with one merge (l, r) for every token t = l + r with l, r also tokens,
 * ranked by t's score (descending; ties by t's id, then l's and r's ids:
 * the order of transformers' SentencePieceExtractor), merges the same
 * pairs in the same order: that is the model written here. Byte tokens
 * "<0xNN>" give the byte fallback, the space prefix is a Prepend
 * normalizer (tokenizer.ggml.add_space_prefix, default true).
 * "gpt2": byte-level BPE; tokenizer.ggml.merges is the merge list and
 * tokenizer.ggml.pre names the pre-tokenizer regex (gpt-2, qwen2,
 * llama-bpe; the regexes are those of the models' tokenizer.json files).
 * Token types (tokenizer.ggml.token_type): unknown (2) and control (3)
 * tokens become special added tokens, user-defined (4) plain added
 * tokens, as llama.cpp cuts them out of the text before tokenizing. */
#include "model/gguf_model.h"

#include <stdlib.h>
#include <string.h>

#include "core/limits.h"

#define TT_NORMAL 1
#define TT_UNKNOWN 2
#define TT_CONTROL 3
#define TT_USER 4

typedef struct vocab_src {
    const xf_gguf_file *f;
    const xf_gguf_kv *tokens, *scores, *types;
    uint64_t n;
} vocab_src;

static json_t *tok_string(const vocab_src *v, uint64_t id)
{
    return json_stringn(v->tokens->strs[id].ptr, v->tokens->strs[id].len);
}

static int token_type(const vocab_src *v, uint64_t id)
{
    return v->types ? xf_gguf_arr_i32(v->types, id) : TT_NORMAL;
}

/* The vocab object {piece: id}; refuses invalid UTF-8 and duplicates. */
static json_t *build_vocab(const vocab_src *v, xf_error *err)
{
    json_t *vocab = json_object();
    for (uint64_t i = 0; i < v->n; i++) {
        const xf_gguf_str s = v->tokens->strs[i];
        if (s.len > XF_MAX_GGUF_TOKEN_BYTES) {
            xf_fail(err, "%s: tokenizer.ggml.tokens: token %llu is %zu bytes long (at most %d)",
                    v->f->path, (unsigned long long)i, s.len, XF_MAX_GGUF_TOKEN_BYTES);
            json_decref(vocab);
            return NULL;
        }
        const json_t *prev = json_object_getn(vocab, s.ptr, s.len);
        if (prev) {
            xf_fail(err, "%s: tokenizer.ggml.tokens: token %llu duplicates token %lld", v->f->path,
                    (unsigned long long)i, (long long)json_integer_value(prev));
            json_decref(vocab);
            return NULL;
        }
        if (json_object_setn_new(vocab, s.ptr, s.len, json_integer((json_int_t)i)) != 0) {
            xf_fail(err, "%s: tokenizer.ggml.tokens: token %llu is not valid UTF-8 (or empty)",
                    v->f->path, (unsigned long long)i);
            json_decref(vocab);
            return NULL;
        }
    }
    return vocab;
}

typedef struct cand {
    float score;
    int32_t t, l, r;
} cand;

static int cmp_cand(const void *pa, const void *pb)
{
    const cand *a = pa, *b = pb;
    if (a->score != b->score)
        return a->score > b->score ? -1 : 1;
    if (a->t != b->t)
        return a->t < b->t ? -1 : 1;
    if (a->l != b->l)
        return a->l < b->l ? -1 : 1;
    return (a->r > b->r) - (a->r < b->r);
}

/* The merges of a SentencePiece-style vocab, as ["l", "r"] pairs. */
static json_t *spm_merges(const vocab_src *v, const json_t *vocab, xf_error *err)
{
    size_t cap = 1024, n = 0;
    cand *c = malloc(cap * sizeof *c);
    if (!c) {
        xf_fail(err, "%s: out of memory", v->f->path);
        return NULL;
    }
    /* a split needs two tokens of these lengths: skips the lookups (which
     * hash the pieces) where no token is that long */
    bool has_len[XF_MAX_GGUF_TOKEN_BYTES + 1] = {0};
    for (uint64_t t = 0; t < v->n; t++)
        has_len[v->tokens->strs[t].len] = true; /* build_vocab bounded the lengths */
    for (uint64_t t = 0; t < v->n; t++) {
        const xf_gguf_str s = v->tokens->strs[t];
        for (size_t k = 1; k < s.len; k++) {
            if (((unsigned char)s.ptr[k] & 0xC0) == 0x80 || !has_len[k] || !has_len[s.len - k])
                continue; /* split between characters only */
            const json_t *l = json_object_getn(vocab, s.ptr, k);
            const json_t *r = json_object_getn(vocab, s.ptr + k, s.len - k);
            if (!l || !r)
                continue;
            if (n == cap) {
                cand *nc = realloc(c, 2 * cap * sizeof *c);
                if (!nc) {
                    free(c);
                    xf_fail(err, "%s: out of memory", v->f->path);
                    return NULL;
                }
                c = nc, cap *= 2;
            }
            c[n++] = (cand){v->scores ? xf_gguf_arr_f32(v->scores, t) : 0.0f, (int32_t)t,
                            (int32_t)json_integer_value(l), (int32_t)json_integer_value(r)};
        }
    }
    qsort(c, n, sizeof *c, cmp_cand);
    json_t *merges = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(merges,
                              json_pack("[o, o]", tok_string(v, (uint64_t)c[i].l),
                                        tok_string(v, (uint64_t)c[i].r)));
    free(c);
    return merges;
}

static json_t *added_tokens(const vocab_src *v)
{
    json_t *arr = json_array();
    for (uint64_t i = 0; i < v->n; i++) {
        int tt = token_type(v, i);
        if (tt != TT_UNKNOWN && tt != TT_CONTROL && tt != TT_USER)
            continue;
        json_array_append_new(
            arr, json_pack("{s:I, s:o, s:b, s:b, s:b, s:b, s:b}", "id", (json_int_t)i, "content",
                           tok_string(v, i), "single_word", 0, "lstrip", 0, "rstrip", 0,
                           "normalized", 0, "special", tt != TT_USER));
    }
    return arr;
}

static json_t *spm_tokenizer(const vocab_src *v, json_t *vocab, int64_t unk, bool space_prefix,
                             xf_error *err)
{
    json_t *merges = spm_merges(v, vocab, err);
    if (!merges) {
        json_decref(vocab);
        return NULL;
    }
    json_t *model = json_pack("{s:s, s:o, s:o, s:b, s:b, s:b}", "type", "BPE", "vocab", vocab,
                              "merges", merges, "fuse_unk", 1, "byte_fallback", 1,
                              "ignore_merges", 0);
    json_object_set_new(model, "unk_token", unk >= 0 ? tok_string(v, (uint64_t)unk) : json_null());
    json_t *norm = json_array();
    if (space_prefix)
        json_array_append_new(norm, json_pack("{s:s, s:s}", "type", "Prepend", "prepend",
                                              "\xe2\x96\x81"));
    json_array_append_new(norm, json_pack("{s:s, s:{s:s}, s:s}", "type", "Replace", "pattern",
                                          "String", " ", "content", "\xe2\x96\x81"));
    json_t *dec = json_pack("[{s:s, s:{s:s}, s:s}, {s:s}, {s:s}]", "type", "Replace", "pattern",
                            "String", "\xe2\x96\x81", "content", " ", "type", "ByteFallback",
                            "type", "Fuse");
    if (space_prefix)
        json_array_append_new(dec, json_pack("{s:s, s:s, s:i, s:i}", "type", "Strip", "content",
                                             " ", "start", 1, "stop", 0));
    return json_pack("{s:o, s:{s:s, s:o}, s:n, s:{s:s, s:o}, s:o}", "model", model, "normalizer",
                     "type", "Sequence", "normalizers", norm, "pre_tokenizer", "decoder", "type",
                     "Sequence", "decoders", dec, "added_tokens", added_tokens(v));
}

/* HF tokenizer.json pre-tokenizers of the byte-level families llama.cpp
 * names in tokenizer.ggml.pre. */
static const char qwen2_regex[] =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+"
    "[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
static const char llama3_regex[] =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+"
    "[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

static json_t *bpe_tokenizer(const vocab_src *v, json_t *vocab, xf_gguf_str pre, xf_error *err)
{
    const xf_gguf_kv *mk;
    if (xf_gguf_get_array(v->f, "tokenizer.ggml.merges", true, XF_GGUF_STRING, &mk, err)) {
        json_decref(vocab);
        return NULL;
    }
    const char *rx = NULL;
    bool gpt2 = false, llama3 = false;
    if (pre.len == 5 && memcmp(pre.ptr, "gpt-2", 5) == 0)
        gpt2 = true;
    else if (pre.len == 5 && memcmp(pre.ptr, "qwen2", 5) == 0)
        rx = qwen2_regex;
    else if (pre.len == 9 && memcmp(pre.ptr, "llama-bpe", 9) == 0)
        rx = llama3_regex, llama3 = true;
    else {
        xf_fail(err, "%s: tokenizer.ggml.pre \"%.*s\" is not supported (gpt-2, qwen2, llama-bpe)",
                v->f->path, (int)(pre.len > 64 ? 64 : pre.len), pre.ptr ? pre.ptr : "");
        json_decref(vocab);
        return NULL;
    }
    json_t *merges = json_array();
    for (uint64_t i = 0; i < mk->n; i++) {
        json_t *s = json_stringn(mk->strs[i].ptr, mk->strs[i].len);
        if (!s) {
            xf_fail(err, "%s: tokenizer.ggml.merges[%llu] is not valid UTF-8", v->f->path,
                    (unsigned long long)i);
            json_decref(merges);
            json_decref(vocab);
            return NULL;
        }
        json_array_append_new(merges, s);
    }
    json_t *model = json_pack("{s:s, s:o, s:o, s:n, s:b, s:b, s:b}", "type", "BPE", "vocab",
                              vocab, "merges", merges, "unk_token", "fuse_unk", 0,
                              "byte_fallback", 0, "ignore_merges", llama3);
    json_t *pt = gpt2 ? json_pack("{s:s, s:b, s:b, s:b}", "type", "ByteLevel",
                                  "add_prefix_space", 0, "trim_offsets", 1, "use_regex", 1)
                      : json_pack("{s:s, s:[{s:s, s:{s:s}, s:s, s:b}, {s:s, s:b, s:b, s:b}]}",
                                  "type", "Sequence", "pretokenizers", "type", "Split", "pattern",
                                  "Regex", rx, "behavior", "Isolated", "invert", 0, "type",
                                  "ByteLevel", "add_prefix_space", 0, "trim_offsets", 0,
                                  "use_regex", 0);
    json_t *norm = rx == qwen2_regex ? json_pack("{s:s}", "type", "NFC") : json_null();
    return json_pack("{s:o, s:o, s:o, s:{s:s}, s:o}", "model", model, "normalizer", norm,
                     "pre_tokenizer", pt, "decoder", "type", "ByteLevel", "added_tokens",
                     added_tokens(v));
}

static int opt_id(const xf_gguf_file *f, const char *key, int64_t dflt, uint64_t n, int64_t *out,
                  xf_error *err)
{
    uint64_t v;
    if (xf_gguf_get_uint(f, key, false, (uint64_t)(dflt < 0 ? UINT64_MAX : (uint64_t)dflt), &v,
                         err))
        return -1;
    *out = v < n ? (int64_t)v : -1; /* ids past the vocab (e.g. 0xFFFFFFFF): none */
    return 0;
}

int xf_gguf_tokenizer_json(const xf_gguf_file *f, int64_t vocab_rows, json_t **tok,
                           json_t **tok_config, xf_error *err)
{
    *tok = *tok_config = NULL;
    xf_gguf_str model;
    if (xf_gguf_get_str(f, "tokenizer.ggml.model", false, &model, err))
        return -1;
    if (!model.ptr)
        return 0;
    bool spm = model.len == 5 && memcmp(model.ptr, "llama", 5) == 0;
    bool bpe = model.len == 4 && memcmp(model.ptr, "gpt2", 4) == 0;
    if (!spm && !bpe)
        return xf_fail(err, "%s: tokenizer.ggml.model \"%.*s\" is not supported (llama, gpt2)",
                       f->path, (int)(model.len > 64 ? 64 : model.len), model.ptr);
    vocab_src v = {.f = f};
    if (xf_gguf_get_array(f, "tokenizer.ggml.tokens", true, XF_GGUF_STRING, &v.tokens, err) ||
        xf_gguf_get_array(f, "tokenizer.ggml.scores", false, XF_GGUF_F32, &v.scores, err) ||
        xf_gguf_get_array(f, "tokenizer.ggml.token_type", false, XF_GGUF_I32, &v.types, err))
        return -1;
    v.n = v.tokens->n;
    if (v.n != (uint64_t)vocab_rows)
        return xf_fail(err, "%s: tokenizer.ggml.tokens has %llu tokens but token_embd.weight has "
                            "%lld rows",
                       f->path, (unsigned long long)v.n, (long long)vocab_rows);
    if (v.scores && v.scores->n != v.n)
        return xf_fail(err, "%s: tokenizer.ggml.scores has %llu entries for %llu tokens", f->path,
                       (unsigned long long)v.scores->n, (unsigned long long)v.n);
    if (v.types && v.types->n != v.n)
        return xf_fail(err, "%s: tokenizer.ggml.token_type has %llu entries for %llu tokens",
                       f->path, (unsigned long long)v.types->n, (unsigned long long)v.n);

    /* llama.cpp's defaults (src/llama-vocab.cpp): SPM bos 1, eos 2, unk 0,
     * add BOS; BPE ids from the keys, BOS added for llama-bpe only */
    xf_gguf_str pre = {0};
    if (bpe && xf_gguf_get_str(f, "tokenizer.ggml.pre", false, &pre, err))
        return -1;
    bool llama3 = pre.len == 9 && memcmp(pre.ptr, "llama-bpe", 9) == 0;
    int64_t bos, eos, unk;
    bool add_bos, add_eos, space_prefix;
    if (opt_id(f, "tokenizer.ggml.bos_token_id", spm ? 1 : -1, v.n, &bos, err) ||
        opt_id(f, "tokenizer.ggml.eos_token_id", spm ? 2 : -1, v.n, &eos, err) ||
        opt_id(f, "tokenizer.ggml.unknown_token_id", spm ? 0 : -1, v.n, &unk, err) ||
        xf_gguf_get_bool(f, "tokenizer.ggml.add_bos_token", false, spm || llama3, &add_bos,
                         err) ||
        xf_gguf_get_bool(f, "tokenizer.ggml.add_eos_token", false, false, &add_eos, err) ||
        xf_gguf_get_bool(f, "tokenizer.ggml.add_space_prefix", false, spm, &space_prefix, err))
        return -1;

    json_t *vocab = build_vocab(&v, err);
    if (!vocab)
        return -1;
    *tok = spm ? spm_tokenizer(&v, vocab, unk, space_prefix, err)
               : bpe_tokenizer(&v, vocab, pre, err);
    if (!*tok)
        return -1;
    json_t *cfg = json_pack("{s:b, s:b}", "add_bos_token", add_bos, "add_eos_token", add_eos);
    if (bos >= 0)
        json_object_set_new(cfg, "bos_token", tok_string(&v, (uint64_t)bos));
    if (eos >= 0)
        json_object_set_new(cfg, "eos_token", tok_string(&v, (uint64_t)eos));
    if (unk >= 0)
        json_object_set_new(cfg, "unk_token", tok_string(&v, (uint64_t)unk));
    *tok_config = cfg;
    return 0;
}
