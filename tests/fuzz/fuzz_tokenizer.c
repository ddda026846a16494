/* libFuzzer harness: a tokenizer.json loaded (calib/tokenizer.h), then a
 * few texts encoded and decoded with it and a range of ids decoded. The
 * texts cover what the pipeline treats specially: spaces, newlines and
 * CR, digits, punctuation, multi-byte UTF-8, invalid UTF-8, U+2581 and
 * special-token spellings. */
#include "calib/tokenizer.h"
#include "core/json_util.h"
#include "tests/fuzz/fuzz_util.h"

static const char *const texts[] = {
    "",
    "Hello world",
    "  Once upon a time,\nthere was a tiny\r\ndragon 12345!\n\n",
    "caf\xc3\xa9 \xe2\x96\x81 \xf0\x9f\x98\x80 \xe4\xb8\xad\xe6\x96\x87 it's",
    "\xff\xfe bad \xc3 utf8 \xed\xa0\x80",
    "<s>a</s> <unk> <|endoftext|>[CLS]",
};

static void roundtrip(const xf_tokenizer *tok, const char *text, size_t len, bool special)
{
    int32_t *ids = NULL;
    size_t n = 0;
    xf_error err = {0};
    if (xf_tokenizer_encode(tok, text, len, special, &ids, &n, &err) != 0) {
        xf_fuzz_check_error(&err, "xf_tokenizer_encode");
        free(ids);
        return;
    }
    char *out = NULL;
    size_t out_len = 0;
    if (xf_tokenizer_decode(tok, ids, n, !special, &out, &out_len, &err) != 0)
        xf_fuzz_check_error(&err, "xf_tokenizer_decode");
    free(out);
    free(ids);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    xf_error err = {0};
    json_t *j = xf_json_load_buffer((const char *)data, size, "tokenizer.json", &err);
    if (!j) {
        xf_fuzz_check_error(&err, "tokenizer.json");
        return 0;
    }
    xf_tokenizer *tok = xf_tokenizer_load(j, NULL, "tokenizer.json", &err);
    if (!tok) {
        xf_fuzz_check_error(&err, "tokenizer.json");
        json_decref(j);
        return 0;
    }
    for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++)
        roundtrip(tok, texts[i], strlen(texts[i]), i % 2 == 0);
    /* the first ids, one past the end and a negative one */
    int64_t vocab = xf_tokenizer_vocab_size(tok);
    int32_t ids[64];
    size_t n = 0;
    for (int64_t id = 0; id < vocab && n < 62; id++)
        ids[n++] = (int32_t)id;
    char *out = NULL;
    if (xf_tokenizer_decode(tok, ids, n, false, &out, NULL, &err) != 0)
        xf_fuzz_check_error(&err, "xf_tokenizer_decode");
    free(out);
    out = NULL;
    ids[0] = vocab < INT32_MAX ? (int32_t)vocab : -1;
    ids[1] = -1;
    if (xf_tokenizer_decode(tok, ids, 2, true, &out, NULL, &err) == 0) {
        fprintf(stderr, "decode accepted ids outside the vocabulary\n");
        abort();
    }
    free(out);
    (void)xf_tokenizer_bos_id(tok);
    (void)xf_tokenizer_eos_id(tok);
    (void)xf_tokenizer_adds_bos(tok);
    xf_tokenizer_free(tok);
    json_decref(j);
    return 0;
}
