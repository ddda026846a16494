/* The shared models' tokenizers (../shared/models/stories260K, novels-5m):
 * hand-checked encodings of short strings, the exact token counts of the
 * eval texts (from an independent implementation: the acceptance
 * criterion) and decode(encode(text)) == text. Skips without ../shared. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "calib/tokenizer.h"
#include "core/json_util.h"
#include "core/read_file.h"
#include "tests/support/test_util.h"

static xf_tokenizer *load_model_tokenizer(const char *dir)
{
    xf_error err = {{0}};
    char *p = xf_path_join(dir, "tokenizer.json");
    char *c = xf_path_join(dir, "tokenizer_config.json");
    json_t *tj = xf_json_load_file(p, &err);
    if (!tj)
        print_message("%s\n", err.msg);
    assert_non_null(tj);
    json_t *cj = xf_json_load_file(c, &err);
    assert_non_null(cj);
    xf_tokenizer *tok = xf_tokenizer_load(tj, cj, dir, &err);
    if (!tok)
        print_message("%s\n", err.msg);
    assert_non_null(tok);
    json_decref(tj);
    json_decref(cj);
    free(p);
    free(c);
    return tok;
}

static void expect_ids(const xf_tokenizer *tok, const char *text, const int32_t *want,
                       size_t n_want)
{
    int32_t *ids;
    size_t n;
    xf_error err = {{0}};
    assert_int_equal(xf_tokenizer_encode(tok, text, strlen(text), true, &ids, &n, &err), 0);
    bool same = n == n_want && memcmp(ids, want, n * sizeof *ids) == 0;
    if (!same) {
        print_message("\"%s\":", text);
        for (size_t i = 0; i < n; i++)
            print_message(" %d", ids[i]);
        print_message("\n");
    }
    assert_true(same);
    free(ids);
}

#define EXPECT_IDS(tok, text, ...)                                              \
    do {                                                                        \
        const int32_t want_[] = {__VA_ARGS__};                                  \
        expect_ids(tok, text, want_, sizeof want_ / sizeof want_[0]);           \
    } while (0)

/* Encodes text (BOS included), checks the count and the round trip. */
static size_t count_and_roundtrip(const xf_tokenizer *tok, const char *text, size_t len)
{
    int32_t *ids;
    size_t n, back_len;
    char *back;
    xf_error err = {{0}};
    assert_int_equal(xf_tokenizer_encode(tok, text, len, true, &ids, &n, &err), 0);
    assert_true(n > 0);
    assert_int_equal(ids[0], 1);
    assert_int_equal(xf_tokenizer_decode(tok, ids, n, true, &back, &back_len, &err), 0);
    assert_int_equal(back_len, len);
    assert_memory_equal(back, text, len);
    free(back);
    free(ids);
    return n;
}

/* Expected ids below were derived from tokenizer.json alone with a naive
 * Python re-implementation written from the HF spec (text -> "▁" + text
 * with spaces -> "▁"; characters missing from the vocab -> "<0xHH>" per
 * UTF-8 byte; repeatedly merge the adjacent pair of lowest merges rank),
 * and spot-checked by reading vocab/merges: e.g. in stories260K "▁a" = 261,
 * "▁Lily" = 317, "<0xE6>" = 3 + 0xE6 = 233 (日 = E6 97 A5 is not in the
 * vocab); BOS "<s>" = 1 from add_bos_token. */
static void test_stories260k(void **state)
{
    (void)state;
    XF_TEST_REQUIRE_SHARED(dir, "models/stories260K");
    xf_tokenizer *tok = load_model_tokenizer(dir);
    assert_int_equal(xf_tokenizer_vocab_size(tok), 512);
    assert_int_equal(xf_tokenizer_bos_id(tok), 1);
    assert_int_equal(xf_tokenizer_eos_id(tok), 2);
    assert_true(xf_tokenizer_adds_bos(tok));
    /* ▁Once ▁upon ▁a ▁time , ▁there ▁was ▁a ▁little ▁g ir l ▁named ▁Lily . */
    EXPECT_IDS(tok, "Once upon a time, there was a little girl named Lily.", 1, 403, 407, 261,
               378, 432, 383, 286, 261, 376, 298, 315, 421, 395, 317, 426);
    /* ▁He ll o ▁w or ld */
    EXPECT_IDS(tok, "Hello world", 1, 346, 306, 414, 263, 304, 341);
    /* ▁ ▁Tim ▁said : ▁" W ow ! " */
    EXPECT_IDS(tok, " Tim said: \"Wow!\"", 1, 410, 326, 336, 467, 313, 448, 327, 443, 436);
    /* ▁c a f é ▁ ñ ▁ <0xE6><0x97><0xA5> <0xE6><0x9C><0xAC> */
    EXPECT_IDS(tok, "caf\xc3\xa9 \xc3\xb1 \xe6\x97\xa5\xe6\x9c\xac", 1, 280, 412, 431, 485, 410,
               493, 410, 233, 154, 168, 233, 159, 175);
    xf_tokenizer_free(tok);
}

/* Derived the same way from novels-5m's tokenizer.json: "▁truth" = 1708,
 * "\ufeff" (the BOM) = 2026 is in this vocab, "\r" and "\n" are not
 * (<0x0D> = 16, <0x0A> = 13). */
static void test_novels5m(void **state)
{
    (void)state;
    XF_TEST_REQUIRE_SHARED(dir, "models/novels-5m");
    xf_tokenizer *tok = load_model_tokenizer(dir);
    assert_int_equal(xf_tokenizer_vocab_size(tok), 2048);
    assert_int_equal(xf_tokenizer_bos_id(tok), 1);
    /* ▁It ▁is ▁a ▁truth ▁un i vers ally ▁a ck now led ged */
    EXPECT_IDS(tok, "It is a truth universally acknowledged", 1, 786, 384, 261, 1708, 447, 1931,
               925, 634, 261, 456, 1788, 699, 772);
    /* ▁Mr . ▁D ar cy ’ s ▁letter */
    EXPECT_IDS(tok, "Mr. Darcy\xe2\x80\x99s letter", 1, 434, 1948, 489, 292, 1453, 1973, 1933, 1122);
    /* ▁ <0x0D> <0x0A> \ufeff H ell o */
    EXPECT_IDS(tok, "\r\n\xef\xbb\xbfHello", 1, 1925, 16, 13, 2026, 1959, 433, 1928);
    /* ▁n a ï ve ▁ — ▁o k */
    EXPECT_IDS(tok, "na\xc3\xafve \xe2\x80\x94 ok", 1, 297, 1929, 2028, 313, 1925, 1989, 267, 1949);
    xf_tokenizer_free(tok);
}

/* The acceptance counts (independent implementation, text read as Python
 * reads it in text mode: CRLF -> LF, BOM kept). */
static void test_stories_eval_count(void **state)
{
    (void)state;
    XF_TEST_REQUIRE_SHARED(dir, "models/stories260K");
    XF_TEST_REQUIRE_SHARED(path, "data/tinystories/eval.txt");
    char *text;
    size_t len;
    xf_error err = {{0}};
    assert_int_equal(xf_read_file(path, &text, &len, &err), 0);
    len = xf_text_universal_newlines(text, len); /* LF already: a no-op */
    xf_tokenizer *tok = load_model_tokenizer("../shared/models/stories260K");
    size_t n = count_and_roundtrip(tok, text, len);
    print_message("tinystories/eval.txt: %zu tokens\n", n);
    assert_int_equal(n, 173240);
    xf_tokenizer_free(tok);
    free(text);
}

static void test_novels_eval_count(void **state)
{
    (void)state;
    XF_TEST_REQUIRE_SHARED(dir, "models/novels-5m");
    XF_TEST_REQUIRE_SHARED(path, "data/novels/eval.txt");
    char *text;
    size_t len;
    xf_error err = {{0}};
    assert_int_equal(xf_read_file(path, &text, &len, &err), 0);
    assert_memory_equal(text, "\xef\xbb\xbf", 3); /* the BOM is there, and stays */
    xf_tokenizer *tok = load_model_tokenizer("../shared/models/novels-5m");
    size_t n_cr = 0;
    for (size_t i = 0; i < len; i++)
        n_cr += text[i] == '\r';
    assert_true(n_cr > 0);
    /* Raw bytes: every "\r" is one more <0x0D> token (no merge uses a
     * byte token, so it cannot change anything else). */
    size_t n_raw = count_and_roundtrip(tok, text, len);
    len = xf_text_universal_newlines(text, len);
    size_t n = count_and_roundtrip(tok, text, len);
    print_message("novels/eval.txt: %zu tokens (%zu on the raw CRLF bytes)\n", n, n_raw);
    assert_int_equal(n, 251878);
    assert_int_equal(n_raw, n + n_cr);
    xf_tokenizer_free(tok);
    free(text);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_stories260k),
        cmocka_unit_test(test_novels5m),
        cmocka_unit_test(test_stories_eval_count),
        cmocka_unit_test(test_novels_eval_count),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
