/* Writes a random fp16 llama HF directory (tests/support/random_model.c)
 * for the I/O benchmarks: gen_random_model DIR HIDDEN INTERMEDIATE LAYERS
 * [VOCAB]. 1B parameters: 2048 5632 22 32000 (TinyLlama's shape). */
#include <stdio.h>
#include <stdlib.h>

#include "tests/support/random_model.h"

int main(int argc, char **argv)
{
    if (argc < 5) {
        fprintf(stderr, "usage: gen_random_model DIR HIDDEN INTERMEDIATE LAYERS [VOCAB]\n");
        return 2;
    }
    const int hidden = atoi(argv[2]), inter = atoi(argv[3]), layers = atoi(argv[4]);
    const int vocab = argc > 5 ? atoi(argv[5]) : 32000;
    const int heads = hidden / 64 > 0 ? hidden / 64 : 1;
    xf_random_model_spec s = {.family = "llama", .hidden = hidden, .intermediate = inter,
                              .layers = layers, .heads = heads, .kv_heads = heads,
                              .vocab = vocab, .max_pos = 2048, .f16 = true, .seed = 1};
    char *dir = xf_random_model_write(argv[1], &s);
    if (!dir)
        return 1;
    free(dir);
    return 0;
}
