#include "calib/bpe.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "calib/utf8.h"
#include "core/limits.h"

static int load_vocab(xf_bpe *bpe, const json_t *vocab, const char *what, xf_error *err)
{
    if (!json_is_object(vocab))
        return xf_fail(err, "%s: model.vocab must be an object", what);
    int64_t max_id = -1;
    const char *key;
    size_t key_len;
    json_t *val;
    json_object_keylen_foreach((json_t *)vocab, key, key_len, val) {
        if (!json_is_integer(val) || json_integer_value(val) < 0 ||
            json_integer_value(val) >= INT32_MAX)
            return xf_fail(err, "%s: model.vocab[\"%s\"] is not a valid token id", what, key);
        if (json_integer_value(val) > max_id)
            max_id = json_integer_value(val);
    }
    /* the id table is sized by the largest id: bound it by the token count
     * before allocating (a one-token vocab with id 2^31-2 would take 24 GiB) */
    size_t n_tokens = json_object_size(vocab);
    if (max_id >= (int64_t)n_tokens + XF_TOKEN_ID_GAP || max_id >= XF_MAX_TOKEN_IDS)
        return xf_fail(err,
                       "%s: model.vocab: token id %" PRId64 " is far past the %zu tokens defined "
                       "(ids may exceed the count by at most %d, and stay below %d)",
                       what, max_id, n_tokens, XF_TOKEN_ID_GAP, XF_MAX_TOKEN_IDS);
    if (xf_vocab_init(&bpe->vocab, n_tokens, (int32_t)(max_id + 1), what, err) != 0)
        return -1;
    json_object_keylen_foreach((json_t *)vocab, key, key_len, val) {
        if (xf_vocab_add(&bpe->vocab, key, key_len, (int32_t)json_integer_value(val), what,
                         err) != 0)
            return -1;
    }
    return 0;
}

/* One merge as its two token strings: "a b" or ["a", "b"]. */
static int merge_parts(const json_t *m, size_t i, const char **a, size_t *na, const char **b,
                       size_t *nb, const char *what, xf_error *err)
{
    if (json_is_string(m)) {
        const char *s = json_string_value(m);
        const char *sp = strchr(s, ' ');
        if (!sp)
            return xf_fail(err, "%s: model.merges[%zu] \"%s\" is not \"left right\"", what, i, s);
        *a = s, *na = (size_t)(sp - s);
        *b = sp + 1, *nb = strlen(sp + 1);
        return 0;
    }
    if (json_is_array(m) && json_array_size(m) == 2 && json_is_string(json_array_get(m, 0)) &&
        json_is_string(json_array_get(m, 1))) {
        *a = json_string_value(json_array_get(m, 0));
        *na = json_string_length(json_array_get(m, 0));
        *b = json_string_value(json_array_get(m, 1));
        *nb = json_string_length(json_array_get(m, 1));
        return 0;
    }
    return xf_fail(err, "%s: model.merges[%zu] is neither \"a b\" nor [\"a\", \"b\"]", what, i);
}

static int load_merges(xf_bpe *bpe, const json_t *merges, const char *what, xf_error *err)
{
    if (!merges || json_is_null(merges))
        merges = NULL;
    else if (!json_is_array(merges))
        return xf_fail(err, "%s: model.merges must be an array", what);
    size_t n = merges ? json_array_size(merges) : 0;
    if (n >= UINT32_MAX)
        return xf_fail(err, "%s: too many merges", what);
    if (xf_merge_map_init(&bpe->merges, n) != 0)
        return xf_fail(err, "%s: out of memory for %zu merges", what, n);
    xf_tbuf joined = {0};
    for (size_t i = 0; i < n; i++) {
        const char *a = NULL, *b = NULL;
        size_t na = 0, nb = 0;
        if (merge_parts(json_array_get(merges, i), i, &a, &na, &b, &nb, what, err) != 0)
            goto fail;
        int32_t ia = xf_vocab_find(&bpe->vocab, a, na);
        int32_t ib = xf_vocab_find(&bpe->vocab, b, nb);
        joined.n = 0;
        if (xf_tbuf_append(&joined, a, na) != 0 || xf_tbuf_append(&joined, b, nb) != 0) {
            xf_fail(err, "%s: out of memory", what);
            goto fail;
        }
        int32_t im = xf_vocab_find(&bpe->vocab, joined.p, joined.n);
        if (ia < 0 || ib < 0 || im < 0) {
            xf_fail(err, "%s: model.merges[%zu] (\"%.*s\" \"%.*s\") uses a token not in the vocab",
                    what, i, (int)na, a, (int)nb, b);
            goto fail;
        }
        xf_merge_map_put(&bpe->merges, ia, ib, (uint32_t)i, im);
    }
    xf_tbuf_free(&joined);
    return 0;
fail:
    xf_tbuf_free(&joined);
    return -1;
}

/* A string option that must be null/absent (we do not implement it). */
static int require_null(const json_t *model, const char *key, const char *what, xf_error *err)
{
    const json_t *v = json_object_get(model, key);
    if (v && !json_is_null(v) && !(json_is_string(v) && json_string_length(v) == 0))
        return xf_fail(err, "%s: BPE option %s is not supported", what, key);
    return 0;
}

static int get_flag(const json_t *model, const char *key, bool *out, const char *what,
                    xf_error *err)
{
    const json_t *v = json_object_get(model, key);
    *out = false;
    if (!v || json_is_null(v))
        return 0;
    if (!json_is_boolean(v))
        return xf_fail(err, "%s: model.%s must be a boolean", what, key);
    *out = json_is_true(v);
    return 0;
}

int xf_bpe_load(xf_bpe *bpe, const json_t *model, const char *what, xf_error *err)
{
    memset(bpe, 0, sizeof *bpe);
    bpe->unk_id = -1;
    if (!json_is_object(model))
        return xf_fail(err, "%s: \"model\" must be an object", what);
    const json_t *type = json_object_get(model, "type");
    if (type && !json_is_string(type))
        return xf_fail(err, "%s: model.type must be a string", what);
    if (type && strcmp(json_string_value(type), "BPE") != 0)
        return xf_fail(err, "%s: model type %s is not supported (only BPE)", what,
                       json_string_value(type));
    if (!type && !json_object_get(model, "merges"))
        return xf_fail(err, "%s: model has no type and no merges (only BPE is supported)", what);
    const json_t *dropout = json_object_get(model, "dropout");
    if (dropout && !json_is_null(dropout) &&
        !(json_is_number(dropout) && json_number_value(dropout) == 0.0))
        return xf_fail(err, "%s: BPE dropout is not supported", what);
    if (require_null(model, "continuing_subword_prefix", what, err) != 0 ||
        require_null(model, "end_of_word_suffix", what, err) != 0)
        return -1;
    if (get_flag(model, "byte_fallback", &bpe->byte_fallback, what, err) != 0 ||
        get_flag(model, "fuse_unk", &bpe->fuse_unk, what, err) != 0 ||
        get_flag(model, "ignore_merges", &bpe->ignore_merges, what, err) != 0)
        return -1;
    if (load_vocab(bpe, json_object_get(model, "vocab"), what, err) != 0 ||
        load_merges(bpe, json_object_get(model, "merges"), what, err) != 0) {
        xf_bpe_free(bpe);
        return -1;
    }
    const json_t *unk = json_object_get(model, "unk_token");
    if (unk && !json_is_null(unk)) {
        if (!json_is_string(unk) ||
            (bpe->unk_id = xf_vocab_find(&bpe->vocab, json_string_value(unk),
                                         json_string_length(unk))) < 0) {
            xf_bpe_free(bpe);
            return xf_fail(err, "%s: model.unk_token is not a token of the vocab", what);
        }
    }
    for (int b = 0; b < 256; b++) {
        char name[8];
        snprintf(name, sizeof name, "<0x%02X>", b);
        bpe->byte_ids[b] = xf_vocab_find(&bpe->vocab, name, 6);
    }
    for (int c = 0; c < 128; c++) {
        char ch = (char)c;
        bpe->ascii_ids[c] = xf_vocab_find(&bpe->vocab, &ch, 1);
    }
    return 0;
}

void xf_bpe_free(xf_bpe *bpe)
{
    xf_vocab_free(&bpe->vocab);
    xf_merge_map_free(&bpe->merges);
}

int xf_bpe_initial_symbols(const xf_bpe *bpe, const char *w, size_t n, xf_ids *out,
                           const char *what, xf_error *err)
{
    int32_t pending_unk = 0; /* bytes covered by a not yet emitted unk */
    for (size_t i = 0; i < n;) {
        uint32_t cp = 0;
        size_t len = xf_utf8_char(w + i, n - i, &cp);
        bool valid = len > 0;
        if (!valid)
            len = 1; /* an invalid byte stands alone and is never in the vocab */
        int32_t id = -1;
        if (valid)
            id = cp < 128 ? bpe->ascii_ids[cp] : xf_vocab_find(&bpe->vocab, w + i, len);
        if (id >= 0) {
            if (pending_unk && xf_ids_push(out, bpe->unk_id) != 0)
                goto oom;
            pending_unk = 0;
            if (xf_ids_push(out, id) != 0)
                goto oom;
            i += len;
            continue;
        }
        bool have_bytes = bpe->byte_fallback;
        for (size_t k = 0; have_bytes && k < len; k++)
            have_bytes = bpe->byte_ids[(unsigned char)w[i + k]] >= 0;
        if (have_bytes) {
            /* Like HF, a pending (fused) unk is not flushed before byte
             * fallback symbols; it is emitted at the next vocab hit. */
            for (size_t k = 0; k < len; k++)
                if (xf_ids_push(out, bpe->byte_ids[(unsigned char)w[i + k]]) != 0)
                    goto oom;
        } else if (bpe->unk_id >= 0) {
            if (pending_unk && !bpe->fuse_unk && xf_ids_push(out, bpe->unk_id) != 0)
                goto oom;
            pending_unk = 1;
        } else if (valid) {
            return xf_fail(err, "%s: character U+%04X is not in the vocab and the model has "
                                "neither byte fallback nor an unk token", what, (unsigned)cp);
        } else {
            return xf_fail(err, "%s: invalid UTF-8 byte 0x%02X in text and the model has neither "
                                "byte fallback nor an unk token", what, (unsigned char)w[i]);
        }
        i += len;
    }
    if (pending_unk && xf_ids_push(out, bpe->unk_id) != 0)
        goto oom;
    return 0;
oom:
    return xf_fail(err, "%s: out of memory", what);
}

int xf_bpe_encode_word(const xf_bpe *bpe, xf_bpe_work *work, const char *w, size_t n,
                       xf_ids *out, const char *what, xf_error *err)
{
    if (n == 0)
        return 0;
    if (bpe->ignore_merges) {
        int32_t id = xf_vocab_find(&bpe->vocab, w, n);
        if (id >= 0)
            return xf_ids_push(out, id) == 0 ? 0 : xf_fail(err, "%s: out of memory", what);
    }
    size_t start = out->n, kept;
    if (xf_bpe_initial_symbols(bpe, w, n, out, what, err) != 0)
        return -1;
    if (xf_bpe_merge(&bpe->merges, work, out->v + start, out->n - start, &kept) != 0)
        return xf_fail(err, "%s: out of memory merging a word of %zu bytes", what, n);
    out->n = start + kept;
    return 0;
}
