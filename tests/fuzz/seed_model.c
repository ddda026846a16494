/* Writes the tiny random HF model directories the .xfq and safetensors
 * seed corpora are made from (make_seeds.sh):
 *   fuzz_seed_model DIR FAMILY    FAMILY: llama, gpt2 or opt */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/support/random_model.h"

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: fuzz_seed_model DIR llama|gpt2|opt\n");
        return 2;
    }
    bool llama = strcmp(argv[2], "llama") == 0;
    xf_random_model_spec s = {.family = argv[2], .hidden = 16, .intermediate = llama ? 32 : 0,
                              .layers = 1, .heads = 2, .kv_heads = llama ? 1 : 0, .vocab = 24,
                              .max_pos = 16, .tied = !llama, .seed = 7};
    char *dir = xf_random_model_write(argv[1], &s);
    if (!dir)
        return 1;
    free(dir);
    return 0;
}
