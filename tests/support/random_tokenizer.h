/* Small tokenizer.json / tokenizer_config.json pairs for the random test
 * models (tests/support/random_model.h writes none), so that a model
 * directory is complete for exports that must carry the tokenizer:
 *  - SentencePiece style (byte_fallback BPE, "▁" Prepend normalizer): ids
 *    0..2 <unk> <s> </s>, 3..258 "<0xNN>", then "▁" 259, "a" 260, "b" 261,
 *    "▁a" 262, "ab" 263, merges "▁ a" (rank 0) and "a b"; add_bos_token.
 *  - GPT-2 byte level (ByteLevel pre-tokenizer and decoder): ids 0..255 the
 *    byte symbols of GPT-2's bytes_to_unicode (id = byte), "Ġa" 256, "ab"
 *    257, special <|endoftext|> 258 (bos = eos); merges "Ġ a", "a b".
 * Both have fewer tokens (264, 259) than a model whose vocab is larger
 * (exports pad the rest). */
#ifndef XF_TEST_RANDOM_TOKENIZER_H
#define XF_TEST_RANDOM_TOKENIZER_H

#include <stdbool.h>

/* Writes dir/tokenizer.json and dir/tokenizer_config.json; 0 or -1. */
int xf_random_tokenizer_write(const char *dir, bool byte_level);

#endif
