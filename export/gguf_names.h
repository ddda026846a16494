/* Hugging Face tensor name -> the GGUF name xfquant's exporter
 * (export/gguf_export.c) writes it under. The exporter itself names tensors
 * from the bound roles, not from HF names; this is for callers that hold
 * HF names (planning GGUF types per tensor with export/gguf_ftype.h before
 * anything is exported). It inverts model/gguf_model.h's xf_gguf_hf_name,
 * so the two directions share one table (model/gguf_config.c). */
#ifndef XF_EXPORT_GGUF_NAMES_H
#define XF_EXPORT_GGUF_NAMES_H

#include <stddef.h>

/* arch: the GGUF architecture ("llama" — also for mistral —, "qwen2",
 * "gpt2"). "model.layers.3.self_attn.v_proj.weight" -> "blk.3.attn_v.weight",
 * "model.embed_tokens.weight" -> "token_embd.weight", "lm_head.weight" ->
 * "output.weight" (a tied export writes no output.weight: the caller
 * decides), "model.norm.weight" -> "output_norm.weight"; GPT-2 names with or
 * without the "transformer." prefix ("h.0.attn.c_attn.weight" ->
 * "blk.0.attn_qkv.weight"). -1 for a name with no GGUF tensor (rotary
 * inv_freq, GPT-2's attn.bias buffers, unknown names, another arch) or buf
 * too small (64 bytes always suffice for ggml's name limit). */
int xf_gguf_tensor_name_for_hf(const char *arch, const char *hf_name, char *buf, size_t cap);

#endif
