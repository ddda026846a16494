/* ftype_model DIR FAMILY HIDDEN INTERMEDIATE LAYERS HEADS KV_HEADS: a random
 * HF model (tests/support/random_model.h, F16) of the given shape with a
 * tokenizer (byte level for qwen2, SentencePiece style otherwise), for
 * tests/interop/gguf_ftype.sh to give llama-quantize shapes the shared
 * models lack (widths that are multiples of 256, GQA 4, 16 layers). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/support/random_model.h"
#include "tests/support/random_tokenizer.h"

int main(int argc, char **argv)
{
    if (argc != 8) {
        fprintf(stderr, "usage: ftype_model DIR llama|mistral|qwen2 HIDDEN INTERMEDIATE LAYERS "
                        "HEADS KV_HEADS\n");
        return 2;
    }
    int v[5];
    for (int i = 0; i < 5; i++) {
        char *end;
        long x = strtol(argv[3 + i], &end, 10);
        if (*end || x < 1 || x > 65536) {
            fprintf(stderr, "ftype_model: bad number %s\n", argv[3 + i]);
            return 2;
        }
        v[i] = (int)x;
    }
    xf_random_model_spec s = {.family = argv[2], .hidden = v[0], .intermediate = v[1],
                              .layers = v[2], .heads = v[3], .kv_heads = v[4], .vocab = 320,
                              .max_pos = 128, .f16 = true, .seed = 5};
    char *d = xf_random_model_write(argv[1], &s);
    if (!d)
        return 1;
    int rc = xf_random_tokenizer_write(d, !strcmp(argv[2], "qwen2"));
    free(d);
    return rc ? 1 : 0;
}
