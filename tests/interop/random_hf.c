/* random_hf DIR FAMILY: a small random HF model (tests/support/random_model.h)
 * with a tokenizer (tests/support/random_tokenizer.h: byte level for gpt2 and
 * qwen2, SentencePiece style otherwise), for the interop suite to run the
 * families the shared models do not cover through llama.cpp. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/support/random_model.h"
#include "tests/support/random_tokenizer.h"

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: random_hf DIR llama|mistral|qwen2|gpt2\n");
        return 2;
    }
    const bool gpt2 = !strcmp(argv[2], "gpt2");
    xf_random_model_spec s = {.family = argv[2], .hidden = 128, .intermediate = gpt2 ? 0 : 352,
                              .layers = 2, .heads = 4, .kv_heads = gpt2 ? 0 : 2, .vocab = 320,
                              .max_pos = 128, .f16 = true, .seed = 11};
    char *d = xf_random_model_write(argv[1], &s);
    if (!d)
        return 1;
    const bool byte_level = gpt2 || !strcmp(argv[2], "qwen2");
    int rc = xf_random_tokenizer_write(d, byte_level);
    free(d);
    return rc ? 1 : 0;
}
