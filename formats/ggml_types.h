/* GGML tensor types and GGUF value types as stored in GGUF files (llama.cpp,
 * ollama): the type ids, the packed block layouts (_Static_asserted), and a
 * traits table (block size, bytes per block, name). Layouts are described in
 * docs/export.md; ids follow ggml's enum (GGUF files store them verbatim). */
#ifndef XF_FORMATS_GGML_TYPES_H
#define XF_FORMATS_GGML_TYPES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ggml_type ids (only those xfquant reads or writes are named) */
typedef enum xf_ggml_type {
    XF_GGML_F32 = 0,
    XF_GGML_F16 = 1,
    XF_GGML_Q4_0 = 2,
    XF_GGML_Q4_1 = 3,
    XF_GGML_Q5_0 = 6,
    XF_GGML_Q5_1 = 7,
    XF_GGML_Q8_0 = 8,
    XF_GGML_Q2_K = 10,
    XF_GGML_Q3_K = 11,
    XF_GGML_Q4_K = 12,
    XF_GGML_Q5_K = 13,
    XF_GGML_Q6_K = 14,
    XF_GGML_IQ4_NL = 20,
    XF_GGML_IQ4_XS = 23,
    XF_GGML_BF16 = 30,
} xf_ggml_type;

/* GGUF metadata value types */
typedef enum xf_gguf_vtype {
    XF_GGUF_U8 = 0,
    XF_GGUF_I8 = 1,
    XF_GGUF_U16 = 2,
    XF_GGUF_I16 = 3,
    XF_GGUF_U32 = 4,
    XF_GGUF_I32 = 5,
    XF_GGUF_F32 = 6,
    XF_GGUF_BOOL = 7,
    XF_GGUF_STRING = 8,
    XF_GGUF_ARRAY = 9,
    XF_GGUF_U64 = 10,
    XF_GGUF_I64 = 11,
    XF_GGUF_F64 = 12,
} xf_gguf_vtype;

#define XF_GGUF_MAGIC "GGUF"
#define XF_GGUF_VERSION 3u
#define XF_GGUF_DEFAULT_ALIGNMENT 32u
#define XF_GGUF_MAX_NAME 64 /* ggml's GGML_MAX_NAME: a tensor name has at most 63 bytes */
#define XF_GGUF_MAX_DIMS 4  /* ggml's GGML_MAX_DIMS */
#define XF_GGML_QK 32   /* elements per block of the legacy types and IQ4_NL */
#define XF_GGML_QK_K 256 /* elements per super-block of the K-quants and IQ4_XS */

/* Block layouts (fp16 fields stored as raw uint16 bits). */
typedef struct { uint16_t d; uint8_t qs[XF_GGML_QK / 2]; } xf_block_q4_0;
typedef struct { uint16_t d, m; uint8_t qs[XF_GGML_QK / 2]; } xf_block_q4_1;
typedef struct { uint16_t d; uint8_t qh[4]; uint8_t qs[XF_GGML_QK / 2]; } xf_block_q5_0;
typedef struct { uint16_t d, m; uint8_t qh[4]; uint8_t qs[XF_GGML_QK / 2]; } xf_block_q5_1;
typedef struct { uint16_t d; int8_t qs[XF_GGML_QK]; } xf_block_q8_0;
typedef struct {
    uint8_t scales[XF_GGML_QK_K / 16]; /* 4-bit scale | 4-bit min per 16 */
    uint8_t qs[XF_GGML_QK_K / 4];
    uint16_t d, dmin;
} xf_block_q2_k;
typedef struct {
    uint8_t hmask[XF_GGML_QK_K / 8];
    uint8_t qs[XF_GGML_QK_K / 4];
    uint8_t scales[12];
    uint16_t d;
} xf_block_q3_k;
typedef struct {
    uint16_t d, dmin;
    uint8_t scales[12];
    uint8_t qs[XF_GGML_QK_K / 2];
} xf_block_q4_k;
typedef struct {
    uint16_t d, dmin;
    uint8_t scales[12];
    uint8_t qh[XF_GGML_QK_K / 8];
    uint8_t qs[XF_GGML_QK_K / 2];
} xf_block_q5_k;
typedef struct {
    uint8_t ql[XF_GGML_QK_K / 2];
    uint8_t qh[XF_GGML_QK_K / 4];
    int8_t scales[XF_GGML_QK_K / 16];
    uint16_t d;
} xf_block_q6_k;
typedef struct { uint16_t d; uint8_t qs[XF_GGML_QK / 2]; } xf_block_iq4_nl;
typedef struct {
    uint16_t d;
    uint16_t scales_h;
    uint8_t scales_l[XF_GGML_QK_K / 64];
    uint8_t qs[XF_GGML_QK_K / 2];
} xf_block_iq4_xs;

_Static_assert(sizeof(xf_block_q4_0) == 18, "Q4_0 block is 18 bytes");
_Static_assert(sizeof(xf_block_q4_1) == 20, "Q4_1 block is 20 bytes");
_Static_assert(sizeof(xf_block_q5_0) == 22, "Q5_0 block is 22 bytes");
_Static_assert(sizeof(xf_block_q5_1) == 24, "Q5_1 block is 24 bytes");
_Static_assert(sizeof(xf_block_q8_0) == 34, "Q8_0 block is 34 bytes");
_Static_assert(sizeof(xf_block_q2_k) == 84, "Q2_K block is 84 bytes");
_Static_assert(sizeof(xf_block_q3_k) == 110, "Q3_K block is 110 bytes");
_Static_assert(sizeof(xf_block_q4_k) == 144, "Q4_K block is 144 bytes");
_Static_assert(sizeof(xf_block_q5_k) == 176, "Q5_K block is 176 bytes");
_Static_assert(sizeof(xf_block_q6_k) == 210, "Q6_K block is 210 bytes");
_Static_assert(sizeof(xf_block_iq4_nl) == 18, "IQ4_NL block is 18 bytes");
_Static_assert(sizeof(xf_block_iq4_xs) == 136, "IQ4_XS block is 136 bytes");

/* IQ4_NL / IQ4_XS non-uniform levels (ggml's kvalues_iq4nl). */
extern const int8_t xf_ggml_iq4nl_levels[16];

typedef struct xf_ggml_type_traits {
    xf_ggml_type type;
    const char *name;    /* as ggml prints it: "q4_0", "q4_K", "iq4_xs", "f16", ... */
    int64_t block_size;  /* elements per block (1 for f32/f16/bf16) */
    size_t type_size;    /* bytes per block */
    bool quantized;
    const char *tensor_type_name; /* "GGML q4_0": an .xfq tensor of the type as messages
                                     and `xfquant info` print it (xf_tensor_type_name) */
} xf_ggml_type_traits;

/* Traits of a type id, or NULL for an id xfquant does not handle. */
const xf_ggml_type_traits *xf_ggml_traits(uint32_t type);
/* Bytes of a row of n elements (n a multiple of the block size), 0 if not. */
size_t xf_ggml_row_bytes(const xf_ggml_type_traits *t, int64_t n);
/* ggml's name of any type id ggml defines ("q8_1", "iq2_xxs", "tq1_0", ...),
 * including those xfquant does not handle, so that a refusal can name the
 * type; NULL for an id ggml does not define. */
const char *xf_ggml_type_name(uint32_t type);
/* Bits per weight of a type: 8 * type_size / block_size (4.5 for q4_0). */
double xf_ggml_bits_per_weight(const xf_ggml_type_traits *t);

#endif
