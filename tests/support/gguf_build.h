/* A minimal GGUF v3 writer for tests, written from the layout of
 * ../shared/docs/export-formats.md §3 and independent of xfquant's reader:
 * header, key/values, tensor infos, zero padding to the alignment, data in
 * info order (each tensor padded). Also writes deliberately broken files:
 * raw values of any type and tensor infos with chosen offsets.
 *
 *   xf_gguf_build *b = xf_gguf_build_new(32);
 *   xf_gguf_build_str(b, "general.architecture", "llama");
 *   xf_gguf_build_tensor(b, "token_embd.weight", 0, 2, ne, data, nbytes);
 *   xf_gguf_build_write(b, path);   // 0 on success
 *   xf_gguf_build_free(b);
 */
#ifndef XF_TEST_GGUF_BUILD_H
#define XF_TEST_GGUF_BUILD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct xf_gguf_build xf_gguf_build;

xf_gguf_build *xf_gguf_build_new(uint32_t alignment);
void xf_gguf_build_free(xf_gguf_build *b);

void xf_gguf_build_u32(xf_gguf_build *b, const char *key, uint32_t v);
void xf_gguf_build_i32(xf_gguf_build *b, const char *key, int32_t v);
void xf_gguf_build_f32(xf_gguf_build *b, const char *key, float v);
void xf_gguf_build_bool(xf_gguf_build *b, const char *key, bool v);
void xf_gguf_build_str(xf_gguf_build *b, const char *key, const char *v);
/* Arrays: strings (lens NULL: NUL-terminated), f32, i32. */
void xf_gguf_build_str_arr(xf_gguf_build *b, const char *key, const char *const *v,
                           const size_t *lens, size_t n);
void xf_gguf_build_f32_arr(xf_gguf_build *b, const char *key, const float *v, size_t n);
void xf_gguf_build_i32_arr(xf_gguf_build *b, const char *key, const int32_t *v, size_t n);
/* A key with value type `type` and raw value bytes (as they go to disk). */
void xf_gguf_build_raw(xf_gguf_build *b, const char *key, uint32_t type, const void *v,
                       size_t n);

/* A tensor (ne[0] contiguous); its offset is the next aligned one. */
void xf_gguf_build_tensor(xf_gguf_build *b, const char *name, uint32_t ggml_type, int n_dims,
                          const int64_t *ne, const void *data, size_t nbytes);
/* A tensor info with an explicit offset and no data (broken files: the
 * data section then holds only what the other tensors and
 * xf_gguf_build_data gave). */
void xf_gguf_build_tensor_info(xf_gguf_build *b, const char *name, uint32_t ggml_type,
                               int n_dims, const int64_t *ne, uint64_t offset);
/* Raw bytes appended to the data section. */
void xf_gguf_build_data(xf_gguf_build *b, const void *data, size_t n);

/* The whole file in memory (*out malloc'd), or written to path. */
int xf_gguf_build_bytes(const xf_gguf_build *b, uint8_t **out, size_t *n);
int xf_gguf_build_write(const xf_gguf_build *b, const char *path);

#endif
