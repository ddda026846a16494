/* Tokenizers on synthetic tokenizer.json files built here: SentencePiece-
 * style BPE (merge order, byte fallback, unk, spaces, CRLF, BOM, special
 * tokens, both merges formats, Metaspace), GPT-2 byte-level BPE (regex
 * splits, ids), a Llama-3 style Split regex, BOS/EOS rules, round trips on
 * random bytes, unsupported types, the heap merge against a naive merge,
 * and linear time on 1 MB of text. Expected ids are derived by hand in the
 * comments (merge ranks listed with each vocabulary). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/progress.h"
#include "calib/byte_level.h"
#include "calib/pretokenize.h"
#include "calib/tokenizer.h"
#include "calib/utf8.h"
#include "tests/support/test_util.h"

/* ---- a small string builder for JSON text ---------------------------- */

typedef struct {
    char *p;
    size_t n, cap;
} sbuf;

static void sb_add(sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_add(sbuf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int need = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    assert_true(need >= 0);
    if (b->n + (size_t)need + 1 > b->cap) {
        b->cap = 2 * (b->n + (size_t)need + 1);
        b->p = realloc(b->p, b->cap);
        assert_non_null(b->p);
    }
    va_start(ap, fmt);
    vsnprintf(b->p + b->n, b->cap - b->n, fmt, ap);
    va_end(ap);
    b->n += (size_t)need;
}

/* A JSON string literal of raw UTF-8 bytes (escapes ", \ and controls). */
static void sb_str(sbuf *b, const char *s, size_t n)
{
    sb_add(b, "\"");
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\')
            sb_add(b, "\\%c", c);
        else if (c < 0x20)
            sb_add(b, "\\u%04x", c);
        else
            sb_add(b, "%c", c);
    }
    sb_add(b, "\"");
}

static json_t *parse(const char *text)
{
    json_error_t jerr;
    json_t *j = json_loads(text, 0, &jerr);
    if (!j)
        print_message("JSON error: %s at line %d\n%s\n", jerr.text, jerr.line, text);
    assert_non_null(j);
    return j;
}

static xf_tokenizer *load_text(const char *tok_json, const char *config_json)
{
    json_t *t = parse(tok_json);
    json_t *c = config_json ? parse(config_json) : NULL;
    xf_error err = {{0}};
    xf_tokenizer *tok = xf_tokenizer_load(t, c, "test", &err);
    if (!tok)
        print_message("load error: %s\n", err.msg);
    assert_non_null(tok);
    json_decref(t);
    json_decref(c);
    return tok;
}

/* Loading must fail with a message containing `needle`. */
static void expect_load_error(const char *tok_json, const char *needle)
{
    json_t *t = parse(tok_json);
    xf_error err = {{0}};
    xf_tokenizer *tok = xf_tokenizer_load(t, NULL, "test", &err);
    json_decref(t);
    assert_null(tok);
    if (!strstr(err.msg, needle))
        print_message("error \"%s\" lacks \"%s\"\n", err.msg, needle);
    assert_non_null(strstr(err.msg, needle));
}

static void expect_ids_n(const xf_tokenizer *tok, const char *text, size_t len, bool add_special,
                         const int32_t *want, size_t n_want)
{
    int32_t *ids = NULL;
    size_t n = 0;
    xf_error err = {{0}};
    int rc = xf_tokenizer_encode(tok, text, len, add_special, &ids, &n, &err);
    if (rc != 0)
        print_message("encode error: %s\n", err.msg);
    assert_int_equal(rc, 0);
    bool same = n == n_want && (n == 0 || memcmp(ids, want, n * sizeof *ids) == 0);
    if (!same) {
        print_message("text \"%.*s\": got", (int)len, text);
        for (size_t i = 0; i < n; i++)
            print_message(" %d", ids[i]);
        print_message(", want");
        for (size_t i = 0; i < n_want; i++)
            print_message(" %d", want[i]);
        print_message("\n");
    }
    assert_true(same);
    free(ids);
}

#define EXPECT_IDS(tok, text, add, ...)                                                   \
    do {                                                                                  \
        const int32_t want_[] = {__VA_ARGS__};                                            \
        expect_ids_n(tok, text, strlen(text), add, want_, sizeof want_ / sizeof want_[0]); \
    } while (0)

static char *decode(const xf_tokenizer *tok, const int32_t *ids, size_t n, bool skip, size_t *len)
{
    char *text = NULL;
    xf_error err = {{0}};
    int rc = xf_tokenizer_decode(tok, ids, n, skip, &text, len, &err);
    if (rc != 0)
        print_message("decode error: %s\n", err.msg);
    assert_int_equal(rc, 0);
    return text;
}

/* ---- SentencePiece-style vocabulary ------------------------------------
 * ids 0 <unk>, 1 <s>, 2 </s>, 3 + b for "<0xHH>" (b = 0..255), then
 * 259 ▁  260 h  261 e  262 l  263 o  264 w  265 r  266 d  267 ll  268 he
 * 269 ▁h  270 ▁he  271 hell  272 hello  273 ▁hell  274 ▁hello  275 or
 * 276 wor  277 ▁w  278 ▁wor  279 ld  280 ▁world
 * merges, by rank: 0 l+l  1 h+e  2 ▁+h  3 ▁h+e  4 he+ll  5 ▁+he  6 hell+o
 * 7 ▁he+ll  8 ▁hell+o  9 o+r  10 w+or  11 ▁+w  12 ▁w+or  13 l+d
 * 14 ▁wor+ld */
#define U "\xe2\x96\x81" /* ▁ */

static const char *const sp_tokens[] = {U,     "h",        "e",   "l",          "o",    "w",
                                        "r",   "d",        "ll",  "he",         U "h",  U "he",
                                        "hell", "hello",   U "hell", U "hello", "or",   "wor",
                                        U "w", U "wor",    "ld",  U "world"};
static const char *const sp_merges[][2] = {
    {"l", "l"},     {"h", "e"},      {U, "h"},   {U "h", "e"},  {"he", "ll"},
    {U, "he"},      {"hell", "o"},   {U "he", "ll"}, {U "hell", "o"}, {"o", "r"},
    {"w", "or"},    {U, "w"},        {U "w", "or"}, {"l", "d"},  {U "wor", "ld"}};

#define SP_NORMALIZER                                                                    \
    "{\"type\": \"Sequence\", \"normalizers\": [{\"type\": \"Prepend\", \"prepend\": \"" U \
    "\"}, {\"type\": \"Replace\", \"pattern\": {\"String\": \" \"}, \"content\": \"" U "\"}]}"
#define SP_DECODER                                                                        \
    "{\"type\": \"Sequence\", \"decoders\": [{\"type\": \"Replace\", \"pattern\": "          \
    "{\"String\": \"" U "\"}, \"content\": \" \"}, {\"type\": \"ByteFallback\"}, "           \
    "{\"type\": \"Fuse\"}, {\"type\": \"Strip\", \"content\": \" \", \"start\": 1, "        \
    "\"stop\": 0}]}"
#define SP_TEMPLATE                                                                       \
    "{\"type\": \"TemplateProcessing\", \"single\": [{\"SpecialToken\": {\"id\": \"<s>\", " \
    "\"type_id\": 0}}, {\"Sequence\": {\"id\": \"A\", \"type_id\": 0}}], \"pair\": [], "    \
    "\"special_tokens\": {\"<s>\": {\"id\": \"<s>\", \"ids\": [1], \"tokens\": [\"<s>\"]}}}"

typedef struct {
    bool array_merges, byte_fallback, fuse_unk;
    const char *normalizer, *pre_tokenizer, *decoder, *post_processor;
} sp_opts;

static char *sp_json(sp_opts o)
{
    sbuf b = {0};
    sb_add(&b, "{\"version\": \"1.0\", \"added_tokens\": [");
    const char *specials[] = {"<unk>", "<s>", "</s>"};
    for (int i = 0; i < 3; i++)
        sb_add(&b, "%s{\"id\": %d, \"content\": \"%s\", \"single_word\": false, \"lstrip\": false, "
                   "\"rstrip\": false, \"normalized\": false, \"special\": true}",
               i ? ", " : "", i, specials[i]);
    sb_add(&b, "], \"normalizer\": %s, \"pre_tokenizer\": %s, \"post_processor\": %s, "
               "\"decoder\": %s, ",
           o.normalizer ? o.normalizer : "null", o.pre_tokenizer ? o.pre_tokenizer : "null",
           o.post_processor ? o.post_processor : "null", o.decoder ? o.decoder : "null");
    sb_add(&b, "\"model\": {\"type\": \"BPE\", \"dropout\": null, \"unk_token\": \"<unk>\", "
               "\"continuing_subword_prefix\": null, \"end_of_word_suffix\": null, "
               "\"fuse_unk\": %s, \"byte_fallback\": %s, \"ignore_merges\": false, \"vocab\": {",
           o.fuse_unk ? "true" : "false", o.byte_fallback ? "true" : "false");
    sb_add(&b, "\"<unk>\": 0, \"<s>\": 1, \"</s>\": 2");
    for (int i = 0; i < 256; i++)
        sb_add(&b, ", \"<0x%02X>\": %d", i, 3 + i);
    for (size_t i = 0; i < sizeof sp_tokens / sizeof *sp_tokens; i++)
        sb_add(&b, ", \"%s\": %zu", sp_tokens[i], 259 + i);
    sb_add(&b, "}, \"merges\": [");
    for (size_t i = 0; i < sizeof sp_merges / sizeof *sp_merges; i++) {
        if (o.array_merges)
            sb_add(&b, "%s[\"%s\", \"%s\"]", i ? ", " : "", sp_merges[i][0], sp_merges[i][1]);
        else
            sb_add(&b, "%s\"%s %s\"", i ? ", " : "", sp_merges[i][0], sp_merges[i][1]);
    }
    sb_add(&b, "]}}");
    return b.p;
}

static xf_tokenizer *sp_load(sp_opts o, const char *config)
{
    char *json = sp_json(o);
    xf_tokenizer *tok = load_text(json, config);
    free(json);
    return tok;
}

static sp_opts sp_llama(bool array_merges)
{
    return (sp_opts){.array_merges = array_merges, .byte_fallback = true, .fuse_unk = true,
                     .normalizer = SP_NORMALIZER, .decoder = SP_DECODER,
                     .post_processor = SP_TEMPLATE};
}

/* The hand-derived encodings, for either merges format. */
static void check_sp_llama(bool array_merges)
{
    xf_tokenizer *tok = sp_load(sp_llama(array_merges), NULL);
    /* "▁hello▁world": ▁ h e l l o ▁ w o r l d. Rank 0 l+l, rank 1 h+e
     * (now ▁+h is stale), rank 4 he+ll (beats ▁+he, rank 5), rank 6
     * hell+o: "▁hello" (274) is never reached. Then rank 9 o+r, rank 10
     * w+or (▁+w stale; ▁+wor is no merge), rank 13 l+d. */
    EXPECT_IDS(tok, "hello world", false, 259, 272, 259, 276, 279);
    EXPECT_IDS(tok, "hello world", true, 1, 259, 272, 259, 276, 279);
    EXPECT_IDS(tok, "he", false, 270);       /* h+e (1), then ▁+he (5) */
    EXPECT_IDS(tok, "hw", false, 269, 264);  /* ▁+h (2); ▁h+w no merge */
    EXPECT_IDS(tok, "hell", false, 259, 271); /* l+l, h+e, he+ll (4) before ▁+he (5) */
    /* Leading space: "▁▁he" -> ▁, then ▁+he. */
    EXPECT_IDS(tok, " he", false, 259, 270);
    /* é (C3 A9) is not in the vocab: byte fallback 3 + 0xC3, 3 + 0xA9. */
    EXPECT_IDS(tok, "\xc3\xa9", false, 259, 198, 172);
    /* CRLF: <0x0D> = 16, <0x0A> = 13. */
    EXPECT_IDS(tok, "he\r\n", false, 270, 16, 13);
    /* BOM U+FEFF (EF BB BF) sits between ▁ and "he": 242 190 194, then he. */
    EXPECT_IDS(tok, "\xef\xbb\xbfhe", false, 259, 242, 190, 194, 268);
    /* "<s>" inside the text is the special token; Prepend applies to each
     * piece around it (HF's behaviour). */
    EXPECT_IDS(tok, "he<s>he", false, 270, 1, 270);
    EXPECT_IDS(tok, "he<s>he", true, 1, 270, 1, 270);
    /* Invalid UTF-8: 0xFF alone, a truncated C3: byte fallback. */
    EXPECT_IDS(tok, "\xffhe", false, 259, 258, 268);
    EXPECT_IDS(tok, "\xc3", false, 259, 198);
    EXPECT_IDS(tok, "", true, 1);
    const int32_t none[1] = {0};
    expect_ids_n(tok, "", 0, false, none, 0);
    assert_true(xf_tokenizer_adds_bos(tok));
    assert_int_equal(xf_tokenizer_bos_id(tok), 1);
    assert_int_equal(xf_tokenizer_eos_id(tok), -1);
    assert_int_equal(xf_tokenizer_vocab_size(tok), 281);
    xf_tokenizer_free(tok);
}

static void test_sp_merges_strings(void **state)
{
    (void)state;
    check_sp_llama(false);
}

static void test_sp_merges_arrays(void **state)
{
    (void)state;
    check_sp_llama(true);
}

static void test_sp_decode(void **state)
{
    (void)state;
    xf_tokenizer *tok = sp_load(sp_llama(false), NULL);
    const int32_t ids[] = {1, 259, 272, 259, 276, 279};
    size_t len;
    char *s = decode(tok, ids, 6, false, &len);
    /* "<s>" goes through the decoder too, so the leading space stays. */
    assert_string_equal(s, "<s> hello world");
    assert_int_equal(len, strlen("<s> hello world"));
    free(s);
    s = decode(tok, ids, 6, true, &len);
    assert_string_equal(s, "hello world");
    free(s);
    const int32_t bytes[] = {259, 198, 172, 16, 13};
    s = decode(tok, bytes, 5, true, &len);
    assert_string_equal(s, "\xc3\xa9\r\n");
    free(s);
    const int32_t bad[] = {259, 281};
    char *text = NULL;
    xf_error err = {{0}};
    assert_int_equal(xf_tokenizer_decode(tok, bad, 2, false, &text, &len, &err), -1);
    assert_null(text);
    assert_non_null(strstr(err.msg, "281"));
    xf_tokenizer_free(tok);
}

static void test_sp_unk(void **state)
{
    (void)state;
    sp_opts o = sp_llama(false);
    o.byte_fallback = false;
    xf_tokenizer *tok = sp_load(o, NULL);
    /* ▁ h é é: the two é fuse into one unk; ▁+h (rank 2). */
    EXPECT_IDS(tok, "h\xc3\xa9\xc3\xa9", false, 269, 0);
    EXPECT_IDS(tok, "\xc3\xa9h\xc3\xa9", false, 259, 0, 260, 0);
    xf_tokenizer_free(tok);
    o.fuse_unk = false;
    tok = sp_load(o, NULL);
    EXPECT_IDS(tok, "h\xc3\xa9\xc3\xa9", false, 269, 0, 0);
    xf_tokenizer_free(tok);
}

#define METASPACE(scheme, split)                                                          \
    "{\"type\": \"Metaspace\", \"replacement\": \"" U "\", \"prepend_scheme\": \"" scheme   \
    "\", \"split\": " split "}"

static void test_sp_metaspace(void **state)
{
    (void)state;
    sp_opts o = sp_llama(false);
    o.normalizer = NULL;
    o.pre_tokenizer = METASPACE("first", "false");
    o.decoder = METASPACE("first", "false");
    xf_tokenizer *tok = sp_load(o, NULL);
    EXPECT_IDS(tok, "hello world", false, 259, 272, 259, 276, 279);
    /* "first": only the piece at offset 0 of the text gets the ▁. */
    EXPECT_IDS(tok, "<s>he", false, 1, 268);
    EXPECT_IDS(tok, "he<s>he", false, 270, 1, 268);
    /* "▁he" already starts with ▁: nothing prepended (unlike Prepend). */
    EXPECT_IDS(tok, " he", false, 270);
    const int32_t ids[] = {259, 272, 259, 276, 279};
    size_t len;
    char *s = decode(tok, ids, 5, true, &len);
    assert_string_equal(s, "hello world"); /* first token's ▁ dropped */
    free(s);
    xf_tokenizer_free(tok);

    o.pre_tokenizer = METASPACE("always", "false");
    tok = sp_load(o, NULL);
    EXPECT_IDS(tok, "<s>he", false, 1, 270);
    xf_tokenizer_free(tok);

    /* split: words "▁hello", "▁world" (merges cannot cross the ▁). */
    o.pre_tokenizer = METASPACE("always", "true");
    tok = sp_load(o, NULL);
    EXPECT_IDS(tok, "hello world", false, 259, 272, 259, 276, 279);
    EXPECT_IDS(tok, " he", false, 270);
    xf_tokenizer_free(tok);

    /* Legacy form: add_prefix_space without prepend_scheme = always. */
    o.pre_tokenizer = "{\"type\": \"Metaspace\", \"replacement\": \"" U "\", "
                      "\"add_prefix_space\": true}";
    tok = sp_load(o, NULL);
    EXPECT_IDS(tok, "<s>he", false, 1, 270);
    xf_tokenizer_free(tok);
}

static void test_bos_eos_rules(void **state)
{
    (void)state;
    sp_opts o = sp_llama(false);
    o.post_processor = NULL;
    xf_tokenizer *tok = sp_load(o, NULL); /* no template, no config: nothing added */
    assert_false(xf_tokenizer_adds_bos(tok));
    assert_int_equal(xf_tokenizer_bos_id(tok), -1);
    EXPECT_IDS(tok, "he", true, 270);
    xf_tokenizer_free(tok);

    tok = sp_load(o, "{\"add_bos_token\": true, \"add_eos_token\": true, \"bos_token\": \"<s>\", "
                     "\"eos_token\": {\"content\": \"</s>\"}}");
    assert_true(xf_tokenizer_adds_bos(tok));
    assert_int_equal(xf_tokenizer_bos_id(tok), 1);
    assert_int_equal(xf_tokenizer_eos_id(tok), 2);
    EXPECT_IDS(tok, "he", true, 1, 270, 2);
    EXPECT_IDS(tok, "he", false, 270);
    xf_tokenizer_free(tok);

    /* The config's explicit add_bos_token false overrides the template. */
    tok = sp_load(sp_llama(false), "{\"add_bos_token\": false, \"bos_token\": \"<s>\"}");
    assert_false(xf_tokenizer_adds_bos(tok));
    assert_int_equal(xf_tokenizer_bos_id(tok), 1);
    EXPECT_IDS(tok, "he", true, 270);
    xf_tokenizer_free(tok);

    /* A template with a trailing special token adds it as EOS. */
    o.post_processor =
        "{\"type\": \"TemplateProcessing\", \"single\": [{\"SpecialToken\": {\"id\": \"<s>\", "
        "\"type_id\": 0}}, {\"Sequence\": {\"id\": \"A\", \"type_id\": 0}}, {\"SpecialToken\": "
        "{\"id\": \"</s>\", \"type_id\": 0}}], \"special_tokens\": {\"<s>\": {\"id\": \"<s>\", "
        "\"ids\": [1], \"tokens\": [\"<s>\"]}, \"</s>\": {\"id\": \"</s>\", \"ids\": [2], "
        "\"tokens\": [\"</s>\"]}}}";
    tok = sp_load(o, NULL);
    assert_int_equal(xf_tokenizer_bos_id(tok), 1);
    assert_int_equal(xf_tokenizer_eos_id(tok), 2);
    EXPECT_IDS(tok, "he", true, 1, 270, 2);
    xf_tokenizer_free(tok);
}

/* ---- GPT-2 byte-level vocabulary ---------------------------------------
 * ids 0..255: the byte-level character of byte b has id b (computed below
 * with GPT-2's bytes_to_unicode, written out independently here), then
 * 256 Ġw  257 or  258 Ġwor  259 ld  260 Ġworld  261 He  262 ll  263 Hell
 * 264 Hello  265 's  266 12  267 123  268 ĠĠ  269 Ġwo  270 <|endoftext|>
 * merges: 0 Ġ+w  1 o+r  2 Ġw+or  3 l+d  4 Ġwor+ld  5 H+e  6 l+l  7 He+ll
 * 8 Hell+o  9 '+s  10 1+2  11 12+3  12 Ġ+Ġ  (Ġwo has no merge). */
#define G "\xc4\xa0" /* Ġ = byte-level space */

/* bytes_to_unicode as GPT-2's encoder.py builds it. */
static void gpt2_alphabet(uint32_t cp_of[256])
{
    int n = 0;
    for (int b = 0; b < 256; b++) {
        bool keep = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
        cp_of[b] = keep ? (uint32_t)b : 0;
    }
    for (int b = 0; b < 256; b++)
        if (!((b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF)))
            cp_of[b] = 256u + (uint32_t)n++;
}

static const char *const bl_tokens[] = {G "w", "or", G "wor", "ld",  G "world", "He",  "ll",
                                        "Hell", "Hello", "'s", "12", "123", G G, G "wo"};
static const char *const bl_merges[][2] = {{G, "w"},  {"o", "r"},  {G "w", "or"}, {"l", "d"},
                                           {G "wor", "ld"}, {"H", "e"}, {"l", "l"}, {"He", "ll"},
                                           {"Hell", "o"}, {"'", "s"}, {"1", "2"}, {"12", "3"},
                                           {G, G}};

#define GPT2_PRETOK                                                                       \
    "{\"type\": \"ByteLevel\", \"add_prefix_space\": false, \"trim_offsets\": true, "      \
    "\"use_regex\": true}"
/* As stored in a tokenizer.json string (JSON escapes doubled). */
#define LLAMA3_PATTERN                                                                    \
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\\\r\\\\n\\\\p{L}\\\\p{N}]?\\\\p{L}+|\\\\p{N}{1,3}| "          \
    "?[^\\\\s\\\\p{L}\\\\p{N}]+[\\\\r\\\\n]*|\\\\s*[\\\\r\\\\n]+|\\\\s+(?!\\\\S)|\\\\s+"

static char *bl_json(const char *pre_tokenizer, bool ignore_merges)
{
    uint32_t cp_of[256];
    gpt2_alphabet(cp_of);
    sbuf b = {0};
    sb_add(&b, "{\"version\": \"1.0\", \"added_tokens\": [{\"id\": 270, \"content\": "
               "\"<|endoftext|>\", \"single_word\": false, \"lstrip\": false, \"rstrip\": false, "
               "\"normalized\": true, \"special\": true}], \"normalizer\": null, "
               "\"pre_tokenizer\": %s, \"post_processor\": {\"type\": \"ByteLevel\"}, "
               "\"decoder\": {\"type\": \"ByteLevel\"}, \"model\": {\"type\": \"BPE\", "
               "\"unk_token\": null, \"ignore_merges\": %s, \"vocab\": {",
           pre_tokenizer, ignore_merges ? "true" : "false");
    for (int i = 0; i < 256; i++) {
        char ch[4];
        size_t n = xf_utf8_put(cp_of[i], ch);
        sb_add(&b, "%s", i ? ", " : "");
        sb_str(&b, ch, n);
        sb_add(&b, ": %d", i);
    }
    for (size_t i = 0; i < sizeof bl_tokens / sizeof *bl_tokens; i++) {
        sb_add(&b, ", ");
        sb_str(&b, bl_tokens[i], strlen(bl_tokens[i]));
        sb_add(&b, ": %zu", 256 + i);
    }
    sb_add(&b, ", \"<|endoftext|>\": 270}, \"merges\": [");
    for (size_t i = 0; i < sizeof bl_merges / sizeof *bl_merges; i++) {
        sbuf m = {0};
        sb_add(&m, "%s %s", bl_merges[i][0], bl_merges[i][1]);
        sb_add(&b, "%s", i ? ", " : "");
        sb_str(&b, m.p, m.n);
        free(m.p);
    }
    sb_add(&b, "]}}");
    return b.p;
}

static xf_tokenizer *bl_load(const char *pre_tokenizer, bool ignore_merges)
{
    char *json = bl_json(pre_tokenizer, ignore_merges);
    xf_tokenizer *tok = load_text(json, NULL);
    free(json);
    return tok;
}

/* Our alphabet function agrees with the one written out above. */
static void test_byte_level_alphabet(void **state)
{
    (void)state;
    uint32_t cp_of[256];
    gpt2_alphabet(cp_of);
    for (int b = 0; b < 256; b++) {
        assert_int_equal(xf_byte_level_char((uint8_t)b), cp_of[b]);
        assert_int_equal(xf_byte_level_byte(cp_of[b]), b);
    }
    assert_int_equal(xf_byte_level_char(' '), 0x120); /* Ġ */
    assert_int_equal(xf_byte_level_char('\n'), 0x10A); /* Ċ */
    assert_int_equal(xf_byte_level_byte(0x144), -1);
    assert_int_equal(xf_byte_level_byte('A'), 'A');
}

/* Words of a pre-tokenizer over text, compared with want[] (NULL-ended). */
static void expect_words(const char *pretok_json, const char *text, const char *const *want)
{
    json_t *j = parse(pretok_json);
    xf_pretok *pt = NULL;
    xf_error err = {{0}};
    assert_int_equal(xf_pretok_load(j, &pt, "test", &err), 0);
    xf_pieces words = {0};
    int rc = xf_pretok_apply(pt, text, strlen(text), true, &words, "test", &err);
    if (rc != 0)
        print_message("pretok error: %s\n", err.msg);
    assert_int_equal(rc, 0);
    size_t n_want = 0;
    while (want[n_want])
        n_want++;
    bool same = words.n == n_want;
    for (size_t i = 0; same && i < n_want; i++)
        same = words.v[i].len == strlen(want[i]) &&
               memcmp(words.bytes.p + words.v[i].off, want[i], words.v[i].len) == 0;
    if (!same) {
        print_message("words of \"%s\":", text);
        for (size_t i = 0; i < words.n; i++)
            print_message(" [%.*s]", (int)words.v[i].len, words.bytes.p + words.v[i].off);
        print_message("\n");
    }
    assert_true(same);
    xf_pieces_free(&words);
    xf_pretok_free(pt);
    json_decref(j);
}

static void test_gpt2_regex_splits(void **state)
{
    (void)state;
    const char *split = "{\"type\": \"Split\", \"pattern\": {\"Regex\": \"'s|'t|'re|'ve|'m|'ll|'d| "
                        "?\\\\p{L}+| ?\\\\p{N}+| ?[^\\\\s\\\\p{L}\\\\p{N}]+|\\\\s+(?!\\\\S)|\\\\s+\"}, "
                        "\"behavior\": \"Isolated\", \"invert\": false}";
    /* "  !": \s+(?!\S) takes one space (the second one precedes "!"), then " !". */
    const char *w1[] = {"Hello", " world", "'s", " 123", " ", " !", NULL};
    expect_words(split, "Hello world's 123  !", w1);
    /* "\n\n" before "x": \s+(?!\S) can only take the first newline. */
    const char *w2[] = {"na\xc3\xafve", " caf\xc3\xa9", ",", "\n", "\n", "x", NULL};
    expect_words(split, "na\xc3\xafve caf\xc3\xa9,\n\nx", w2);
    /* The ByteLevel pre-tokenizer: same splits, bytes mapped (space -> Ġ). */
    const char *w3[] = {"Hello", G "world", "'s", G "123", G, G "!", NULL};
    expect_words(GPT2_PRETOK, "Hello world's 123  !", w3);
}

static void test_gpt2_ids(void **state)
{
    (void)state;
    xf_tokenizer *tok = bl_load(GPT2_PRETOK, false);
    /* Hello: H+e (5), l+l (6), He+ll (7), Hell+o (8) -> 264. Ġworld:
     * Ġ+w, o+r, Ġw+or, l+d, Ġwor+ld -> 260. 's -> 265. Ġ123: 1+2, 12+3,
     * Ġ+123 no merge -> 32 267. Ġ -> 32. Ġ! -> 32 33. */
    EXPECT_IDS(tok, "Hello world's 123  !", true, 264, 260, 265, 32, 267, 32, 32, 33);
    /* "   x": \s+(?!\S) takes two spaces (Ġ+Ġ = 268), then "Ġx". */
    EXPECT_IDS(tok, "   x", false, 268, 32, 'x');
    /* é = C3 A9, both printable bytes: ids 0xC3, 0xA9. */
    EXPECT_IDS(tok, "\xc3\xa9", false, 0xC3, 0xA9);
    EXPECT_IDS(tok, "Hello<|endoftext|> world", false, 264, 270, 260);
    EXPECT_IDS(tok, "\r\n", false, '\r', '\n');
    assert_false(xf_tokenizer_adds_bos(tok));
    const int32_t ids[] = {264, 270, 260, 32, 0xC3, 0xA9};
    size_t len;
    char *s = decode(tok, ids, 6, false, &len);
    assert_string_equal(s, "Hello<|endoftext|> world \xc3\xa9");
    free(s);
    s = decode(tok, ids, 6, true, &len);
    assert_string_equal(s, "Hello world \xc3\xa9");
    free(s);
    xf_tokenizer_free(tok);

    tok = bl_load("{\"type\": \"ByteLevel\", \"add_prefix_space\": true, \"use_regex\": true}", false);
    EXPECT_IDS(tok, "Hello", false, 32, 264); /* " Hello": Ġ+Hello is no merge */
    EXPECT_IDS(tok, " world", false, 260);    /* already starts with a space */
    xf_tokenizer_free(tok);
}

#define LLAMA3_PRETOK                                                                     \
    "{\"type\": \"Sequence\", \"pretokenizers\": [{\"type\": \"Split\", \"pattern\": "     \
    "{\"Regex\": \"" LLAMA3_PATTERN "\"}, \"behavior\": \"Isolated\", \"invert\": false}, " \
    "{\"type\": \"ByteLevel\", \"add_prefix_space\": false, \"trim_offsets\": true, "      \
    "\"use_regex\": false}]}"

static void test_llama3_split(void **state)
{
    (void)state;
    const char *split = "{\"type\": \"Split\", \"pattern\": {\"Regex\": \"" LLAMA3_PATTERN
                        "\"}, \"behavior\": \"Isolated\", \"invert\": false}";
    /* (?i:'s) takes "'S"; digits go by at most three; " " before digits
     * is its own word; " !\r\n\n" is punctuation with its line ends. */
    const char *w[] = {"Hello", " WORLD", "'S", " ", "123", "45", " ", " !\r\n\n", "ok", NULL};
    expect_words(split, "Hello WORLD'S 12345  !\r\n\nok", w);
    const char *w2[] = {"x", "\n\n", "\xc3\xa9t\xc3\xa9", NULL};
    expect_words(split, "x\n\n\xc3\xa9t\xc3\xa9", w2);

    xf_tokenizer *tok = bl_load(LLAMA3_PRETOK, false);
    EXPECT_IDS(tok, "Hello world", false, 264, 260);
    EXPECT_IDS(tok, " wo", false, 256, 'o'); /* Ġ+w, then Ġw+o is no merge */
    xf_tokenizer_free(tok);
    /* ignore_merges: a word that is itself in the vocab is emitted whole. */
    tok = bl_load(LLAMA3_PRETOK, true);
    EXPECT_IDS(tok, " wo", false, 269);
    EXPECT_IDS(tok, "Hello world", false, 264, 260);
    xf_tokenizer_free(tok);
}

/* Split behaviors other than Isolated, on "a-b--c" split at "-". */
static void test_split_behaviors(void **state)
{
    (void)state;
    const char *removed[] = {"a", "b", "c", NULL};
    expect_words("{\"type\": \"Split\", \"pattern\": {\"String\": \"-\"}, \"behavior\": "
                 "\"Removed\"}", "a-b--c", removed);
    const char *prev[] = {"a-", "b-", "-", "c", NULL};
    expect_words("{\"type\": \"Split\", \"pattern\": {\"String\": \"-\"}, \"behavior\": "
                 "\"MergedWithPrevious\"}", "a-b--c", prev);
    const char *next[] = {"a", "-b", "-", "-c", NULL};
    expect_words("{\"type\": \"Split\", \"pattern\": {\"String\": \"-\"}, \"behavior\": "
                 "\"MergedWithNext\"}", "a-b--c", next);
    const char *contig[] = {"a", "-", "b", "--", "c", NULL};
    expect_words("{\"type\": \"Split\", \"pattern\": {\"String\": \"-\"}, \"behavior\": "
                 "\"Contiguous\"}", "a-b--c", contig);
    const char *inv[] = {"a", "-", "b", "--", "c", NULL};
    expect_words("{\"type\": \"Split\", \"pattern\": {\"Regex\": \"[a-z]\"}, \"behavior\": "
                 "\"Isolated\", \"invert\": true}", "a-b--c", inv);
}

/* ---- added tokens: flags and matching ------------------------------------ */

static void test_added_token_flags(void **state)
{
    (void)state;
    const char *json =
        "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0, \"b\": 1, \" \": 2, \"<\": 3, "
        "\">\": 4, \"m\": 5, \"r\": 6, \"w\": 7}, \"merges\": []}, \"added_tokens\": ["
        "{\"id\": 10, \"content\": \"<m>\", \"lstrip\": true, \"normalized\": false},"
        "{\"id\": 11, \"content\": \"<r>\", \"rstrip\": true, \"normalized\": false},"
        "{\"id\": 12, \"content\": \"<w>\", \"single_word\": true, \"normalized\": false},"
        "{\"id\": 14, \"content\": \"ab\", \"normalized\": false},"
        "{\"id\": 15, \"content\": \"abb\", \"normalized\": false}]}";
    xf_tokenizer *tok = load_text(json, NULL);
    EXPECT_IDS(tok, "a <m>b", false, 0, 10, 1);     /* lstrip takes the space */
    EXPECT_IDS(tok, "a<r>  b", false, 0, 11, 1);    /* rstrip takes both spaces */
    EXPECT_IDS(tok, "a <w> b", false, 0, 2, 12, 2, 1);
    EXPECT_IDS(tok, "a<w>b", false, 0, 3, 7, 4, 1); /* inside a word: plain text */
    EXPECT_IDS(tok, "abbab", false, 15, 14);        /* longest match first */
    assert_int_equal(xf_tokenizer_vocab_size(tok), 16);
    xf_tokenizer_free(tok);

    /* "normalized": true tokens match the normalized text, with their own
     * content normalized too: "he" -> "▁he", found twice in "▁he▁he". */
    tok = load_text("{\"model\": {\"type\": \"BPE\", \"vocab\": {\"" U "\": 0, \"h\": 1, "
                    "\"e\": 2}, \"merges\": []}, \"normalizer\": " SP_NORMALIZER ", "
                    "\"added_tokens\": [{\"id\": 3, \"content\": \"he\", \"normalized\": true}]}",
                    NULL);
    EXPECT_IDS(tok, "he he", false, 3, 3);
    EXPECT_IDS(tok, "ehe", false, 0, 2, 1, 2);
    xf_tokenizer_free(tok);
}

/* ---- round trips on random bytes --------------------------------------- */

static void random_text(uint64_t *rng, char *buf, size_t n)
{
    static const char common[] = "helowrd  \r\n";
    for (size_t i = 0; i < n; i++) {
        uint64_t r = xf_test_rand_u64(rng);
        buf[i] = (r & 1) ? common[(r >> 8) % (sizeof common - 1)] : (char)(r >> 16);
        if (buf[i] == '<') /* keep special tokens out */
            buf[i] = '>';
    }
}

static void roundtrip(const xf_tokenizer *tok, const char *text, size_t n)
{
    int32_t *ids;
    size_t n_ids, len;
    xf_error err = {{0}};
    assert_int_equal(xf_tokenizer_encode(tok, text, n, false, &ids, &n_ids, &err), 0);
    char *back = decode(tok, ids, n_ids, false, &len);
    assert_int_equal(len, n);
    assert_memory_equal(back, text, n);
    free(back);
    free(ids);
}

static void test_roundtrip_random_bytes(void **state)
{
    (void)state;
    xf_tokenizer *sp = sp_load(sp_llama(false), NULL);
    xf_tokenizer *bl = bl_load(GPT2_PRETOK, false);
    xf_tokenizer *l3 = bl_load(LLAMA3_PRETOK, false);
    uint64_t rng = 42;
    char buf[400];
    for (int t = 0; t < 300; t++) {
        size_t n = xf_test_rand_u64(&rng) % sizeof buf;
        random_text(&rng, buf, n);
        /* ▁ (E2 96 81) in the input would decode as a space, by design. */
        if (!memmem(buf, n, U, 3))
            roundtrip(sp, buf, n);
        roundtrip(bl, buf, n);
        roundtrip(l3, buf, n);
    }
    xf_tokenizer_free(sp);
    xf_tokenizer_free(bl);
    xf_tokenizer_free(l3);
}

/* ---- unsupported configurations ---------------------------------------- */

static void test_unsupported_types(void **state)
{
    (void)state;
    expect_load_error("{\"model\": {\"type\": \"WordPiece\", \"vocab\": {}}}", "WordPiece");
    expect_load_error("{\"model\": {\"type\": \"Unigram\", \"vocab\": []}}", "Unigram");
    expect_load_error("{\"model\": {\"type\": \"WordLevel\", \"vocab\": {}}}", "WordLevel");
    const char *base = "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": []}, ";
    char buf[512];
    snprintf(buf, sizeof buf, "%s\"normalizer\": {\"type\": \"NFKC\"}}", base);
    expect_load_error(buf, "NFKC");
    snprintf(buf, sizeof buf, "%s\"pre_tokenizer\": {\"type\": \"Whitespace\"}}", base);
    expect_load_error(buf, "Whitespace");
    snprintf(buf, sizeof buf, "%s\"decoder\": {\"type\": \"WordPiece\"}}", base);
    expect_load_error(buf, "WordPiece");
    snprintf(buf, sizeof buf, "%s\"pre_tokenizer\": {\"type\": \"Split\", \"pattern\": "
                              "{\"Regex\": \"(\"}, \"behavior\": \"Isolated\"}}", base);
    expect_load_error(buf, "regex");
    expect_load_error("{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": "
                      "[\"a a\"]}}", "merges[0]");
    expect_load_error("{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0, \"b\": 0}}}", "id 0");
    expect_load_error("{\"model\": {\"type\": \"BPE\", \"vocab\": {}, \"continuing_subword_prefix\": "
                      "\"##\"}}", "continuing_subword_prefix");

    /* NFC: text made of characters NFC leaves alone passes, others fail
     * naming NFC; a character missing without fallback or unk fails. */
    snprintf(buf, sizeof buf, "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0, "
                              "\"\\u00e9\": 1}, \"merges\": []}, \"normalizer\": {\"type\": \"NFC\"}}");
    xf_tokenizer *tok = load_text(buf, NULL);
    EXPECT_IDS(tok, "a\xc3\xa9", false, 0, 1);
    int32_t *ids;
    size_t n;
    xf_error err = {{0}};
    assert_int_equal(xf_tokenizer_encode(tok, "e\xcc\x81", 3, false, &ids, &n, &err), -1);
    assert_non_null(strstr(err.msg, "NFC"));
    assert_int_equal(xf_tokenizer_encode(tok, "b", 1, false, &ids, &n, &err), -1);
    assert_non_null(strstr(err.msg, "U+0062"));
    xf_tokenizer_free(tok);
}

/* Hostile tokenizer.json files found by fuzzing: ids far past the token
 * count used to size the id tables (a 68-byte file allocated 24 GiB), and a
 * Metaspace decoder given only "\u2581" did NULL + 0 arithmetic. */
static void test_hostile_ids_and_empty_decode(void **state)
{
    (void)state;
    expect_load_error("{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":2147483646},\"merges\":[]}}",
                      "token id 2147483646 is far past the 1 tokens");
    expect_load_error("{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0},\"merges\":[]},"
                      "\"added_tokens\":[{\"id\":2147483000,\"content\":\"<x>\"}]}",
                      "added_tokens: token id 2147483000 is far past");
    /* ids just inside the gap still load (reserved ranges are legitimate) */
    xf_tokenizer *tok = load_text("{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0,\"b\":65536},"
                                  "\"merges\":[]},\"added_tokens\":[{\"id\":131073,\"content\":\"<x>\","
                                  "\"special\":true}]}",
                                  NULL);
    assert_int_equal(xf_tokenizer_vocab_size(tok), 131074);
    xf_tokenizer_free(tok);

    tok = load_text("{\"model\":{\"type\":\"BPE\",\"vocab\":{\"" U "\":0},\"merges\":[]},"
                    "\"decoder\":{\"type\":\"Metaspace\",\"replacement\":\"" U "\","
                    "\"prepend_scheme\":\"always\",\"split\":true}}",
                    NULL);
    const int32_t ids[] = {0, 0};
    size_t len = 99;
    char *text = decode(tok, ids, 1, false, &len);
    assert_int_equal(len, 0);
    assert_string_equal(text, "");
    free(text);
    text = decode(tok, ids, 2, false, &len);
    assert_string_equal(text, " ");
    free(text);
    xf_tokenizer_free(tok);
}

/* ---- the heap merge against a naive merge ------------------------------ */

/* Naive BPE on strings: repeatedly merge the adjacent pair of lowest rank
 * (leftmost), O(n^2). Written independently of the library. */
typedef struct {
    char tok[64][16];
    int n_tok;
    int merge_a[64], merge_b[64];
    int n_merge;
} toy_bpe;

static int toy_find(const toy_bpe *t, const char *s)
{
    for (int i = 0; i < t->n_tok; i++)
        if (strcmp(t->tok[i], s) == 0)
            return i;
    return -1;
}

static size_t toy_naive(const toy_bpe *t, const char *w, int32_t *out)
{
    size_t n = strlen(w);
    for (size_t i = 0; i < n; i++) {
        char c[2] = {w[i], 0};
        out[i] = toy_find(t, c);
    }
    for (;;) {
        int best_rank = -1;
        size_t best_pos = 0;
        for (size_t i = 0; i + 1 < n; i++)
            for (int r = 0; r < t->n_merge; r++)
                if (t->merge_a[r] == out[i] && t->merge_b[r] == out[i + 1] &&
                    (best_rank < 0 || r < best_rank)) {
                    best_rank = r;
                    best_pos = i;
                }
        if (best_rank < 0)
            return n;
        char joined[32];
        snprintf(joined, sizeof joined, "%s%s", t->tok[out[best_pos]], t->tok[out[best_pos + 1]]);
        out[best_pos] = toy_find(t, joined);
        memmove(out + best_pos + 1, out + best_pos + 2, (n - best_pos - 2) * sizeof *out);
        n--;
    }
}

static void test_merge_matches_naive(void **state)
{
    (void)state;
    uint64_t rng = 7;
    for (int round = 0; round < 20; round++) {
        toy_bpe t = {0};
        for (int c = 0; c < 4; c++)
            t.tok[t.n_tok++][0] = (char)('a' + c);
        /* Random merges; several may produce the same token (as
         * "▁t he" and "▁th e" both give "▁the" in real vocabularies). */
        while (t.n_merge < 40) {
            int a = (int)(xf_test_rand_u64(&rng) % (uint64_t)t.n_tok);
            int b = (int)(xf_test_rand_u64(&rng) % (uint64_t)t.n_tok);
            if (strlen(t.tok[a]) + strlen(t.tok[b]) > 8)
                continue;
            bool dup = false;
            for (int r = 0; r < t.n_merge; r++)
                dup |= t.merge_a[r] == a && t.merge_b[r] == b;
            if (dup)
                continue;
            char joined[32];
            snprintf(joined, sizeof joined, "%s%s", t.tok[a], t.tok[b]);
            if (toy_find(&t, joined) < 0) {
                if (t.n_tok == 64)
                    break;
                strcpy(t.tok[t.n_tok++], joined);
            }
            t.merge_a[t.n_merge] = a;
            t.merge_b[t.n_merge++] = b;
        }
        sbuf j = {0};
        sb_add(&j, "{\"model\": {\"type\": \"BPE\", \"vocab\": {");
        for (int i = 0; i < t.n_tok; i++)
            sb_add(&j, "%s\"%s\": %d", i ? ", " : "", t.tok[i], i);
        sb_add(&j, "}, \"merges\": [");
        for (int r = 0; r < t.n_merge; r++)
            sb_add(&j, "%s[\"%s\", \"%s\"]", r ? ", " : "", t.tok[t.merge_a[r]], t.tok[t.merge_b[r]]);
        sb_add(&j, "]}}");
        xf_tokenizer *tok = load_text(j.p, NULL);
        free(j.p);
        for (int k = 0; k < 20; k++) {
            char w[120];
            size_t n = 1 + xf_test_rand_u64(&rng) % (sizeof w - 1);
            for (size_t i = 0; i < n; i++)
                w[i] = (char)('a' + xf_test_rand_u64(&rng) % 4);
            w[n] = 0;
            int32_t want[120];
            size_t n_want = toy_naive(&t, w, want);
            expect_ids_n(tok, w, n, false, want, n_want);
        }
        xf_tokenizer_free(tok);
    }
}

/* ---- linear time --------------------------------------------------------- */


static void test_one_megabyte_is_fast(void **state)
{
    (void)state;
    xf_tokenizer *tok = sp_load(sp_llama(false), NULL);
    const size_t n = 1 << 20;
    char *text = malloc(n);
    assert_non_null(text);
    uint64_t rng = 3;
    static const char *const words[] = {"hello", "world", "hell", "he", "low", "old", "\xc3\xa9"};
    size_t i = 0;
    while (i < n) {
        const char *w = words[xf_test_rand_u64(&rng) % 7];
        for (size_t k = 0; w[k] && i < n; k++)
            text[i++] = w[k];
        if (i < n)
            text[i++] = ' ';
    }
    /* pre_tokenizer null: the whole megabyte is one BPE word. */
    double t0 = xf_now_seconds();
    int32_t *ids;
    size_t n_ids;
    xf_error err = {{0}};
    assert_int_equal(xf_tokenizer_encode(tok, text, n, true, &ids, &n_ids, &err), 0);
    double dt = xf_now_seconds() - t0;
    print_message("encoded 1 MiB (one word) into %zu tokens in %.3f s\n", n_ids, dt);
    assert_true(n_ids > n / 8);
    assert_true(dt < 2.0);
    free(ids);
    /* Worst case for a pair queue: one repeated pair everywhere. */
    memset(text, 'l', n);
    t0 = xf_now_seconds();
    assert_int_equal(xf_tokenizer_encode(tok, text, n, false, &ids, &n_ids, &err), 0);
    dt = xf_now_seconds() - t0;
    print_message("encoded 1 MiB of 'l' into %zu tokens in %.3f s\n", n_ids, dt);
    assert_int_equal(n_ids, 1 + n / 2); /* ▁, then (l l) pairs left to right */
    assert_true(dt < 2.0);
    free(ids);
    free(text);
    xf_tokenizer_free(tok);
}

static void test_universal_newlines(void **state)
{
    (void)state;
    char s[] = "a\r\nb\rc\n\r\r\nd\r";
    size_t n = xf_text_universal_newlines(s, strlen(s));
    assert_int_equal(n, strlen("a\nb\nc\n\n\nd\n"));
    assert_string_equal(s, "a\nb\nc\n\n\nd\n");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sp_merges_strings),
        cmocka_unit_test(test_sp_merges_arrays),
        cmocka_unit_test(test_sp_decode),
        cmocka_unit_test(test_sp_unk),
        cmocka_unit_test(test_sp_metaspace),
        cmocka_unit_test(test_bos_eos_rules),
        cmocka_unit_test(test_byte_level_alphabet),
        cmocka_unit_test(test_gpt2_regex_splits),
        cmocka_unit_test(test_gpt2_ids),
        cmocka_unit_test(test_llama3_split),
        cmocka_unit_test(test_split_behaviors),
        cmocka_unit_test(test_added_token_flags),
        cmocka_unit_test(test_roundtrip_random_bytes),
        cmocka_unit_test(test_unsupported_types),
        cmocka_unit_test(test_hostile_ids_and_empty_decode),
        cmocka_unit_test(test_merge_matches_naive),
        cmocka_unit_test(test_one_megabyte_is_fast),
        cmocka_unit_test(test_universal_newlines),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
