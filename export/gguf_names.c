/* HF -> GGUF tensor names (export/gguf_names.h), by trying each GGUF name
 * the architecture can have and keeping the one model/gguf_config.c's table
 * maps back to hf_name. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "export/gguf_names.h"
#include "model/gguf_model.h"

static const char *const global_bases[] = {"token_embd", "position_embd", "output_norm",
                                           "output"};
static const char *const layer_bases[] = {"attn_norm", "attn_q",   "attn_k",   "attn_v",
                                          "attn_qkv",  "attn_output", "ffn_norm", "ffn_gate",
                                          "ffn_up",    "ffn_down"};
static const char *const suffixes[] = {"weight", "bias"};

/* The layer of "PREFIX<digits>." (-1 if hf_name has no such prefix). */
static long layer_after(const char *hf_name, const char *prefix)
{
    const size_t n = strlen(prefix);
    if (strncmp(hf_name, prefix, n) != 0 || hf_name[n] < '0' || hf_name[n] > '9')
        return -1;
    char *end;
    long l = strtol(hf_name + n, &end, 10);
    return *end == '.' && l <= 100000 ? l : -1;
}

int xf_gguf_tensor_name_for_hf(const char *arch, const char *hf_name, char *buf, size_t cap)
{
    char hf[256], cand[64], back[256];
    const int gpt2 = arch && !strcmp(arch, "gpt2");
    if (!arch || !hf_name ||
        (strcmp(arch, "llama") != 0 && strcmp(arch, "qwen2") != 0 && !gpt2))
        return -1;
    /* GPT-2 checkpoints are saved with or without "transformer." */
    int n = gpt2 && strncmp(hf_name, "transformer.", 12) != 0 && strcmp(hf_name, "lm_head.weight") &&
                    strcmp(hf_name, "lm_head.bias")
                ? snprintf(hf, sizeof hf, "transformer.%s", hf_name)
                : snprintf(hf, sizeof hf, "%s", hf_name);
    if (n < 0 || (size_t)n >= sizeof hf)
        return -1;
    const long layer = layer_after(hf, gpt2 ? "transformer.h." : "model.layers.");
    const size_t nb = layer >= 0 ? sizeof layer_bases / sizeof layer_bases[0]
                                 : sizeof global_bases / sizeof global_bases[0];
    for (size_t b = 0; b < nb; b++)
        for (size_t s = 0; s < 2; s++) {
            if (layer >= 0)
                n = snprintf(cand, sizeof cand, "blk.%ld.%s.%s", layer, layer_bases[b],
                             suffixes[s]);
            else
                n = snprintf(cand, sizeof cand, "%s.%s", global_bases[b], suffixes[s]);
            if (n < 0 || (size_t)n >= sizeof cand)
                continue;
            if (xf_gguf_hf_name(arch, cand, back, sizeof back) != 0 || strcmp(back, hf) != 0)
                continue;
            if ((size_t)n >= cap)
                return -1;
            memcpy(buf, cand, (size_t)n + 1);
            return 0;
        }
    return -1;
}
