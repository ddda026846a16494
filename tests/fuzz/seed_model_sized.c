/* Writes the tiny random HF model directories the GGUF and GPTQ /
 * compressed-tensors seed corpora are exported from (make_seeds.sh): as
 * seed_model.c, but with widths that the block formats take (GGUF blocks
 * of 32 along the rows, GPTQ words of 32 bits along the columns).
 *   fuzz_seed_model_sized DIR FAMILY HIDDEN VOCAB [KV_HEADS]    FAMILY: llama, qwen2 or gpt2
 * (KV_HEADS: llama / qwen2 only, default 1 of the 2 heads). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/support/random_model.h"

int main(int argc, char **argv)
{
    if (argc != 5 && argc != 6) {
        fprintf(stderr, "usage: fuzz_seed_model_sized DIR llama|qwen2|gpt2 HIDDEN VOCAB [KV_HEADS]\n");
        return 2;
    }
    bool gpt2 = strcmp(argv[2], "gpt2") == 0;
    int hidden = atoi(argv[3]);
    xf_random_model_spec s = {.family = argv[2], .hidden = hidden,
                              .intermediate = gpt2 ? 0 : 2 * hidden, .layers = 1, .heads = 2,
                              .kv_heads = gpt2 ? 0 : argc == 6 ? atoi(argv[5]) : 1, .vocab = atoi(argv[4]), .max_pos = 16,
                              .tied = gpt2, .seed = 11};
    char *dir = xf_random_model_write(argv[1], &s);
    if (!dir)
        return 1;
    free(dir);
    return 0;
}
