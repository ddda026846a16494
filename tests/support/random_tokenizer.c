/* Test tokenizers (tests/support/random_tokenizer.h). */
#include "tests/support/random_tokenizer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "tests/support/test_util.h"

static int write_text(const char *dir, const char *name, const char *s)
{
    char *p = xf_test_write_file(dir, name, s, strlen(s));
    free(p);
    return p ? 0 : -1;
}

/* A SentencePiece-style tokenizer.json: specials, 256 byte tokens, and
 * "▁", "a", "b", "▁a", "ab" with two merges (264 tokens). */
static int write_spm_tokenizer(const char *dir)
{
    json_t *vocab = json_object();
    json_object_set_new(vocab, "<unk>", json_integer(0));
    json_object_set_new(vocab, "<s>", json_integer(1));
    json_object_set_new(vocab, "</s>", json_integer(2));
    for (int b = 0; b < 256; b++) {
        char s[8];
        snprintf(s, sizeof s, "<0x%02X>", b);
        json_object_set_new(vocab, s, json_integer(3 + b));
    }
    json_object_set_new(vocab, "\xe2\x96\x81", json_integer(259));
    json_object_set_new(vocab, "a", json_integer(260));
    json_object_set_new(vocab, "b", json_integer(261));
    json_object_set_new(vocab, "\xe2\x96\x81" "a", json_integer(262));
    json_object_set_new(vocab, "ab", json_integer(263));
    json_t *tj = json_pack(
        "{s:s, s:[{s:i, s:s, s:b, s:b, s:b, s:b, s:b}, {s:i, s:s, s:b, s:b, s:b, s:b, s:b},"
        " {s:i, s:s, s:b, s:b, s:b, s:b, s:b}],"
        " s:{s:s, s:[{s:s, s:s}, {s:s, s:{s:s}, s:s}]}, s:n,"
        " s:{s:s, s:[{s:{s:s, s:i}}, {s:{s:s, s:i}}], s:[], s:{s:{s:s, s:[i], s:[s]}}},"
        " s:{s:s, s:[{s:s, s:{s:s}, s:s}, {s:s}, {s:s}, {s:s, s:s, s:i, s:i}]},"
        " s:{s:s, s:n, s:s, s:n, s:n, s:b, s:b, s:b, s:o, s:[[s, s], [s, s]]}}",
        "version", "1.0", "added_tokens", "id", 0, "content", "<unk>", "single_word", 0,
        "lstrip", 0, "rstrip", 0, "normalized", 0, "special", 1, "id", 1, "content", "<s>",
        "single_word", 0, "lstrip", 0, "rstrip", 0, "normalized", 0, "special", 1, "id", 2,
        "content", "</s>", "single_word", 0, "lstrip", 0, "rstrip", 0, "normalized", 0,
        "special", 1, "normalizer", "type", "Sequence", "normalizers", "type", "Prepend",
        "prepend", "\xe2\x96\x81", "type", "Replace", "pattern", "String", " ", "content",
        "\xe2\x96\x81", "pre_tokenizer", "post_processor", "type", "TemplateProcessing",
        "single", "SpecialToken", "id", "<s>", "type_id", 0, "Sequence", "id", "A", "type_id", 0,
        "pair", "special_tokens", "<s>", "id", "<s>", "ids", 1, "tokens", "<s>", "decoder",
        "type", "Sequence", "decoders", "type", "Replace", "pattern", "String", "\xe2\x96\x81",
        "content", " ", "type", "ByteFallback", "type", "Fuse", "type", "Strip", "content", " ",
        "start", 1, "stop", 0, "model", "type", "BPE", "dropout", "unk_token", "<unk>",
        "continuing_subword_prefix", "end_of_word_suffix", "fuse_unk", 1, "byte_fallback", 1,
        "ignore_merges", 0, "vocab", vocab, "merges", "\xe2\x96\x81", "a", "a", "b");
    if (!tj)
        return -1;
    char *s = json_dumps(tj, JSON_SORT_KEYS);
    int rc = s ? write_text(dir, "tokenizer.json", s) : -1;
    free(s);
    json_decref(tj);
    return rc | write_text(dir, "tokenizer_config.json",
               "{\"add_bos_token\": true, \"add_eos_token\": false, \"bos_token\": \"<s>\","
               " \"eos_token\": \"</s>\", \"unk_token\": \"<unk>\"}");
}

/* UTF-8 of GPT-2's byte -> unicode map (bytes_to_unicode). */
static void byte_char(int b, char *out)
{
    int cp;
    if ((b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255))
        cp = b;
    else {
        int n = 0;
        for (int x = 0; x < b; x++)
            if (!((x >= 33 && x <= 126) || (x >= 161 && x <= 172) || (x >= 174 && x <= 255)))
                n++;
        cp = 256 + n;
    }
    if (cp < 0x80) {
        out[0] = (char)cp;
        out[1] = 0;
    } else {
        out[0] = (char)(0xc0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 63));
        out[2] = 0;
    }
}

/* A byte-level BPE tokenizer.json: 256 byte symbols (id = byte), "Ġa",
 * "ab", <|endoftext|> = 258 (259 tokens). */
static int write_bytelevel_tokenizer(const char *dir)
{
    json_t *vocab = json_object();
    for (int b = 0; b < 256; b++) {
        char s[4];
        byte_char(b, s);
        json_object_set_new(vocab, s, json_integer(b));
    }
    json_object_set_new(vocab, "\xc4\xa0" "a", json_integer(256));
    json_object_set_new(vocab, "ab", json_integer(257));
    json_t *tj = json_pack(
        "{s:s, s:[{s:i, s:s, s:b, s:b, s:b, s:b, s:b}], s:n,"
        " s:{s:s, s:b, s:b, s:b}, s:{s:s, s:b, s:b, s:b}, s:{s:s, s:b, s:b, s:b},"
        " s:{s:s, s:n, s:n, s:n, s:n, s:b, s:b, s:b, s:o, s:[s, s]}}",
        "version", "1.0", "added_tokens", "id", 258, "content", "<|endoftext|>", "single_word",
        0, "lstrip", 0, "rstrip", 0, "normalized", 1, "special", 1, "normalizer",
        "pre_tokenizer", "type", "ByteLevel", "add_prefix_space", 0, "trim_offsets", 1,
        "use_regex", 1, "post_processor", "type", "ByteLevel", "add_prefix_space", 1,
        "trim_offsets", 0, "use_regex", 1, "decoder", "type", "ByteLevel", "add_prefix_space",
        1, "trim_offsets", 1, "use_regex", 1, "model", "type", "BPE", "dropout", "unk_token",
        "continuing_subword_prefix", "end_of_word_suffix", "fuse_unk", 0, "byte_fallback", 0,
        "ignore_merges", 0, "vocab", vocab, "merges", "\xc4\xa0 a", "a b");
    if (!tj)
        return -1;
    char *s = json_dumps(tj, JSON_SORT_KEYS);
    int rc = s ? write_text(dir, "tokenizer.json", s) : -1;
    free(s);
    json_decref(tj);
    return rc | write_text(dir, "tokenizer_config.json",
               "{\"bos_token\": \"<|endoftext|>\", \"eos_token\": \"<|endoftext|>\"}");
}

int xf_random_tokenizer_write(const char *dir, bool byte_level)
{
    return byte_level ? write_bytelevel_tokenizer(dir) : write_spm_tokenizer(dir);
}
