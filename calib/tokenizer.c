/* Loading a tokenizer.json and running the pipeline HF's tokenizers runs:
 * added tokens split -> normalizer -> pre-tokenizer -> BPE -> special
 * tokens of the post-processor (or tokenizer_config.json). */
#include "calib/tokenizer.h"

#include <stdlib.h>
#include <string.h>

#include "calib/added_tokens.h"
#include "calib/bpe.h"
#include "calib/decoder.h"
#include "calib/normalizer.h"
#include "calib/pretokenize.h"
#include "calib/tok_buffers.h"

struct xf_tokenizer {
    char *what;
    xf_bpe bpe;
    xf_normalizer *normalizer;
    xf_pretok *pretok;
    xf_decoder *decoder;
    xf_added_tokens added;
    xf_ids prefix, suffix; /* ids added around the text when add_special */
    int32_t bos_id, eos_id;
    int64_t vocab_size;
};

void xf_tokenizer_free(xf_tokenizer *tok)
{
    if (!tok)
        return;
    xf_bpe_free(&tok->bpe);
    xf_normalizer_free(tok->normalizer);
    xf_pretok_free(tok->pretok);
    xf_decoder_free(tok->decoder);
    xf_added_tokens_free(&tok->added);
    free(tok->prefix.v);
    free(tok->suffix.v);
    free(tok->what);
    free(tok);
}

/* Id of a token string: added tokens first (as HF), then the model vocab. */
static int32_t token_id(const xf_tokenizer *tok, const char *s, size_t n)
{
    const xf_added_token *t = xf_added_token_by_content(&tok->added, s, n);
    return t ? t->id : xf_vocab_find(&tok->bpe.vocab, s, n);
}

/* The ids of a TemplateProcessing "special_tokens" entry. */
static int template_special_ids(const json_t *pp, const char *name, xf_ids *out,
                                const char *what, xf_error *err)
{
    const json_t *entry = json_object_get(json_object_get(pp, "special_tokens"), name);
    const json_t *ids = json_object_get(entry, "ids");
    if (!json_is_array(ids))
        return xf_fail(err, "%s: post_processor special token %s has no ids", what, name);
    for (size_t i = 0; i < json_array_size(ids); i++) {
        const json_t *id = json_array_get(ids, i);
        if (!json_is_integer(id) || json_integer_value(id) < 0 ||
            json_integer_value(id) >= INT32_MAX)
            return xf_fail(err, "%s: post_processor special token %s has a bad id", what, name);
        if (xf_ids_push(out, (int32_t)json_integer_value(id)) != 0)
            return xf_fail(err, "%s: out of memory", what);
    }
    return 0;
}

/* TemplateProcessing "single": special tokens before the sequence go to
 * prefix, after it to suffix. */
static int load_template(xf_tokenizer *tok, const json_t *pp, const char *what, xf_error *err)
{
    const json_t *single = json_object_get(pp, "single");
    if (!json_is_array(single))
        return xf_fail(err, "%s: TemplateProcessing without a single template", what);
    bool seen_sequence = false;
    for (size_t i = 0; i < json_array_size(single); i++) {
        const json_t *item = json_array_get(single, i);
        if (json_object_get(item, "Sequence")) {
            seen_sequence = true;
            continue;
        }
        const char *name = json_string_value(json_object_get(json_object_get(item, "SpecialToken"), "id"));
        if (!name)
            return xf_fail(err, "%s: TemplateProcessing item %zu is neither Sequence nor SpecialToken",
                           what, i);
        if (template_special_ids(pp, name, seen_sequence ? &tok->suffix : &tok->prefix, what,
                                 err) != 0)
            return -1;
    }
    return 0;
}

/* ["<s>", 1] of Bert/RobertaProcessing. */
static int pair_id(const json_t *pair, const char *key, xf_ids *out, const char *what,
                   xf_error *err)
{
    const json_t *id = json_array_get(pair, 1);
    if (!json_is_integer(id) || json_integer_value(id) < 0 || json_integer_value(id) >= INT32_MAX)
        return xf_fail(err, "%s: post_processor %s must be [token, id]", what, key);
    return xf_ids_push(out, (int32_t)json_integer_value(id)) == 0
               ? 0
               : xf_fail(err, "%s: out of memory", what);
}

static int load_post_processor(xf_tokenizer *tok, const json_t *pp, const char *what,
                               xf_error *err)
{
    if (!pp || json_is_null(pp))
        return 0;
    const char *type = json_string_value(json_object_get(pp, "type"));
    if (!type)
        return xf_fail(err, "%s: post_processor without a type", what);
    if (strcmp(type, "Sequence") == 0) {
        const json_t *list = json_object_get(pp, "processors");
        if (!json_is_array(list))
            return xf_fail(err, "%s: Sequence post_processor without processors", what);
        for (size_t i = 0; i < json_array_size(list); i++)
            if (load_post_processor(tok, json_array_get(list, i), what, err) != 0)
                return -1;
        return 0;
    }
    if (strcmp(type, "TemplateProcessing") == 0)
        return load_template(tok, pp, what, err);
    if (strcmp(type, "BertProcessing") == 0 || strcmp(type, "RobertaProcessing") == 0)
        return pair_id(json_object_get(pp, "cls"), "cls", &tok->prefix, what, err) != 0 ||
                       pair_id(json_object_get(pp, "sep"), "sep", &tok->suffix, what, err) != 0
                   ? -1
                   : 0;
    if (strcmp(type, "ByteLevel") == 0)
        return 0; /* only moves offsets */
    return xf_fail(err, "%s: post_processor type %s is not supported", what, type);
}

/* bos_token / eos_token of tokenizer_config.json: a string or an
 * AddedToken object {"content": ...}. -1 when absent or unknown. */
static int32_t config_token(const xf_tokenizer *tok, const json_t *cfg, const char *key)
{
    const json_t *v = json_object_get(cfg, key);
    if (json_is_object(v))
        v = json_object_get(v, "content");
    if (!json_is_string(v))
        return -1;
    return token_id(tok, json_string_value(v), json_string_length(v));
}

/* add_bos_token / add_eos_token, when tokenizer_config.json states them,
 * decide (as transformers' Llama tokenizers rewrite their post-processor);
 * otherwise the post-processor's template does. */
static int apply_config(xf_tokenizer *tok, const json_t *cfg, const char *what, xf_error *err)
{
    int32_t cfg_bos = cfg ? config_token(tok, cfg, "bos_token") : -1;
    int32_t cfg_eos = cfg ? config_token(tok, cfg, "eos_token") : -1;
    tok->bos_id = cfg_bos >= 0 ? cfg_bos : tok->prefix.n ? tok->prefix.v[0] : -1;
    tok->eos_id = cfg_eos >= 0 ? cfg_eos : tok->suffix.n ? tok->suffix.v[tok->suffix.n - 1] : -1;
    const json_t *add_bos = cfg ? json_object_get(cfg, "add_bos_token") : NULL;
    const json_t *add_eos = cfg ? json_object_get(cfg, "add_eos_token") : NULL;
    if (json_is_boolean(add_bos)) {
        tok->prefix.n = 0;
        if (json_is_true(add_bos)) {
            if (tok->bos_id < 0)
                return xf_fail(err, "%s: add_bos_token is true but there is no BOS token", what);
            if (xf_ids_push(&tok->prefix, tok->bos_id) != 0)
                return xf_fail(err, "%s: out of memory", what);
        }
    }
    if (json_is_boolean(add_eos)) {
        tok->suffix.n = 0;
        if (json_is_true(add_eos)) {
            if (tok->eos_id < 0)
                return xf_fail(err, "%s: add_eos_token is true but there is no EOS token", what);
            if (xf_ids_push(&tok->suffix, tok->eos_id) != 0)
                return xf_fail(err, "%s: out of memory", what);
        }
    }
    return 0;
}

static int check_ids(const xf_tokenizer *tok, const xf_ids *ids, const char *what, xf_error *err)
{
    for (size_t i = 0; i < ids->n; i++)
        if (ids->v[i] < 0 || ids->v[i] >= tok->vocab_size)
            return xf_fail(err, "%s: special token id %d is outside the vocabulary", what,
                           (int)ids->v[i]);
    return 0;
}

xf_tokenizer *xf_tokenizer_load(const json_t *tokenizer_json, const json_t *tokenizer_config,
                                const char *what, xf_error *err)
{
    if (!what)
        what = "tokenizer";
    if (!json_is_object(tokenizer_json)) {
        xf_fail(err, "%s: tokenizer.json must be a JSON object", what);
        return NULL;
    }
    if (tokenizer_config && !json_is_object(tokenizer_config) && !json_is_null(tokenizer_config)) {
        xf_fail(err, "%s: tokenizer_config must be a JSON object", what);
        return NULL;
    }
    xf_tokenizer *tok = calloc(1, sizeof *tok);
    if (!tok || !(tok->what = strdup(what))) {
        free(tok);
        xf_fail(err, "%s: out of memory", what);
        return NULL;
    }
    if (xf_bpe_load(&tok->bpe, json_object_get(tokenizer_json, "model"), what, err) != 0) {
        /* xf_bpe_load leaves bpe zeroed on failure; free is safe. */
        xf_tokenizer_free(tok);
        return NULL;
    }
    if (xf_normalizer_load(json_object_get(tokenizer_json, "normalizer"), &tok->normalizer, what,
                           err) != 0 ||
        xf_pretok_load(json_object_get(tokenizer_json, "pre_tokenizer"), &tok->pretok, what,
                       err) != 0 ||
        xf_decoder_load(json_object_get(tokenizer_json, "decoder"), &tok->decoder, what, err) != 0 ||
        xf_added_tokens_load(&tok->added, json_object_get(tokenizer_json, "added_tokens"),
                             tok->normalizer, tok->bpe.vocab.n_ids, what, err) != 0 ||
        load_post_processor(tok, json_object_get(tokenizer_json, "post_processor"), what,
                            err) != 0)
        goto fail;
    tok->vocab_size = tok->bpe.vocab.n_ids;
    for (size_t i = 0; i < tok->added.n; i++)
        if (tok->added.v[i].id >= tok->vocab_size)
            tok->vocab_size = (int64_t)tok->added.v[i].id + 1;
    if (apply_config(tok, json_is_object(tokenizer_config) ? tokenizer_config : NULL, what,
                     err) != 0 ||
        check_ids(tok, &tok->prefix, what, err) != 0 || check_ids(tok, &tok->suffix, what, err) != 0)
        goto fail;
    return tok;
fail:
    xf_tokenizer_free(tok);
    return NULL;
}

/* Scratch buffers of one encode call. */
typedef struct {
    xf_tbuf normalized;
    xf_added_cuts cuts, sub_cuts;
    xf_pieces words;
    xf_bpe_work bpe;
} encode_work;

static void encode_work_free(encode_work *w)
{
    xf_tbuf_free(&w->normalized);
    xf_added_cuts_free(&w->cuts);
    xf_added_cuts_free(&w->sub_cuts);
    xf_pieces_free(&w->words);
    xf_bpe_work_free(&w->bpe);
}

/* Pre-tokenizes and BPE-encodes one plain piece (already normalized). */
static int encode_plain(const xf_tokenizer *tok, encode_work *w, const char *s, size_t n,
                        bool at_origin, xf_ids *out, xf_error *err)
{
    if (xf_pretok_apply(tok->pretok, s, n, at_origin, &w->words, tok->what, err) != 0)
        return -1;
    for (size_t i = 0; i < w->words.n; i++)
        if (xf_bpe_encode_word(&tok->bpe, &w->bpe, w->words.bytes.p + w->words.v[i].off,
                               w->words.v[i].len, out, tok->what, err) != 0)
            return -1;
    return 0;
}

/* One piece of raw text between non-normalized added tokens: normalize
 * it, cut it at the normalized added tokens, encode the rest. */
static int encode_segment(const xf_tokenizer *tok, encode_work *w, const char *s, size_t n,
                          bool at_origin, xf_ids *out, xf_error *err)
{
    if (tok->normalizer) {
        if (xf_normalizer_apply(tok->normalizer, s, n, &w->normalized, tok->what, err) != 0)
            return -1;
        s = w->normalized.p, n = w->normalized.n;
    }
    if (xf_added_tokens_split(&tok->added, &tok->added.norm, s, n, &w->sub_cuts, tok->what,
                              err) != 0)
        return -1;
    for (size_t i = 0; i < w->sub_cuts.n; i++) {
        const xf_added_cut *c = &w->sub_cuts.v[i];
        if (c->id >= 0) {
            if (xf_ids_push(out, c->id) != 0)
                return xf_fail(err, "%s: out of memory", tok->what);
        } else if (encode_plain(tok, w, s + c->start, c->end - c->start, at_origin && c->start == 0,
                                out, err) != 0) {
            return -1;
        }
    }
    return 0;
}

int xf_tokenizer_encode(const xf_tokenizer *tok, const char *text, size_t len, bool add_special,
                        int32_t **ids, size_t *n_ids, xf_error *err)
{
    *ids = NULL;
    *n_ids = 0;
    if (!text && len)
        return xf_fail(err, "%s: NULL text", tok->what);
    xf_ids out = {0};
    encode_work w = {0};
    int rc = -1;
    if (add_special && xf_ids_append(&out, tok->prefix.v, tok->prefix.n) != 0) {
        xf_fail(err, "%s: out of memory", tok->what);
        goto done;
    }
    if (xf_added_tokens_split(&tok->added, &tok->added.raw, text ? text : "", len, &w.cuts,
                              tok->what, err) != 0)
        goto done;
    for (size_t i = 0; i < w.cuts.n; i++) {
        const xf_added_cut *c = &w.cuts.v[i];
        if (c->id >= 0) {
            if (xf_ids_push(&out, c->id) != 0) {
                xf_fail(err, "%s: out of memory", tok->what);
                goto done;
            }
        } else if (encode_segment(tok, &w, text + c->start, c->end - c->start, c->start == 0, &out,
                                  err) != 0) {
            goto done;
        }
    }
    if (add_special && xf_ids_append(&out, tok->suffix.v, tok->suffix.n) != 0) {
        xf_fail(err, "%s: out of memory", tok->what);
        goto done;
    }
    if (!out.v && !(out.v = malloc(sizeof *out.v))) { /* callers may free() an empty result */
        xf_fail(err, "%s: out of memory", tok->what);
        goto done;
    }
    *ids = out.v;
    *n_ids = out.n;
    out.v = NULL;
    rc = 0;
done:
    free(out.v);
    encode_work_free(&w);
    return rc;
}

int xf_tokenizer_decode(const xf_tokenizer *tok, const int32_t *ids, size_t n_ids,
                        bool skip_special, char **text, size_t *len, xf_error *err)
{
    *text = NULL;
    if (len)
        *len = 0;
    xf_pieces tokens = {0};
    xf_tbuf out = {0};
    int rc = -1;
    for (size_t i = 0; i < n_ids; i++) {
        const xf_added_token *t = xf_added_token_by_id(&tok->added, ids[i]);
        const char *s;
        size_t n;
        if (t) {
            if (skip_special && t->special)
                continue;
            s = t->content, n = t->len;
        } else if (!(s = xf_vocab_str(&tok->bpe.vocab, ids[i], &n))) {
            xf_fail(err, "%s: cannot decode token id %d (not in the vocabulary)", tok->what,
                    (int)ids[i]);
            goto done;
        }
        if (xf_pieces_add_copy(&tokens, s, n, false) != 0) {
            xf_fail(err, "%s: out of memory", tok->what);
            goto done;
        }
    }
    if (xf_decoder_apply(tok->decoder, &tokens, &out, tok->what, err) != 0)
        goto done;
    *text = out.p;
    if (len)
        *len = out.n;
    out.p = NULL;
    rc = 0;
done:
    xf_pieces_free(&tokens);
    xf_tbuf_free(&out);
    return rc;
}

int64_t xf_tokenizer_vocab_size(const xf_tokenizer *tok)
{
    return tok->vocab_size;
}

int32_t xf_tokenizer_bos_id(const xf_tokenizer *tok)
{
    return tok->bos_id;
}

int32_t xf_tokenizer_eos_id(const xf_tokenizer *tok)
{
    return tok->eos_id;
}

bool xf_tokenizer_adds_bos(const xf_tokenizer *tok)
{
    return tok->prefix.n > 0;
}
