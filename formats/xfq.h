/* The .xfq container: reader (mmap, validated, CRC-checked) and writer
 * (atomic). Spec: docs/xfq-format.md. */
#ifndef XF_FORMATS_XFQ_H
#define XF_FORMATS_XFQ_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "core/error.h"
#include "core/mapped_file.h"
#include "formats/tensor.h"

#define XFQ_MAGIC "XFQUANT\0"
#define XFQ_VERSION 1u
#define XFQ_ALIGN 64u
#define XFQ_MAX_DIMS 4
#define XFQ_MAX_META (256u * 1024u * 1024u)

enum xfq_storage {
    XFQ_STORAGE_F32 = 1,
    XFQ_STORAGE_F16 = 2,
    XFQ_STORAGE_BF16 = 3,
    XFQ_STORAGE_I32 = 8, /* outlier side tables (formats/xfq_outliers.h) */
    XFQ_STORAGE_Q2 = 16,
    XFQ_STORAGE_Q3 = 17,
    XFQ_STORAGE_Q4 = 18,
    XFQ_STORAGE_Q8 = 20,
    XFQ_STORAGE_L2 = 24, /* log2-grid weights (docs/xfq-format.md) */
    XFQ_STORAGE_L3 = 25,
    XFQ_STORAGE_L4 = 26,
    XFQ_STORAGE_L8 = 28,
    /* GGML blocks (formats/ggml_types.h), exactly as GGUF stores them: the
     * id is this base + the ggml type id (Q8_0 72, Q4_K 76, Q6_K 78, IQ4_XS
     * 87), for the quantized types xf_ggml_traits knows (xfq_ggml_storable) */
    XFQ_STORAGE_GGML_BASE = 64,
    XFQ_STORAGE_GGML_END = 128, /* ids 64..127 are reserved for GGML types */
};

enum xfq_record_flags {
    XFQ_FLAG_ASYM = 1u << 0,
    XFQ_FLAG_PERM = 1u << 1,
    XFQ_FLAG_KNOWN = XFQ_FLAG_ASYM | XFQ_FLAG_PERM,
};

typedef struct xfq_file_header {
    uint8_t magic[8];
    uint32_t version;
    uint32_t flags;
    uint64_t meta_offset;
    uint64_t meta_size;
    uint64_t table_offset;
    uint32_t n_tensors;
    uint32_t names_size;
    uint64_t data_offset;
    uint32_t header_crc;
    uint32_t reserved;
} xfq_file_header;
_Static_assert(sizeof(xfq_file_header) == 64, "xfq file header is 64 bytes");

typedef struct xfq_tensor_record {
    uint32_t name_offset;
    uint32_t name_len;
    uint32_t storage;
    uint32_t ndim;
    uint64_t shape[XFQ_MAX_DIMS];
    int32_t group_size;
    uint32_t flags;
    uint64_t offset;
    uint64_t nbytes;
    uint32_t crc32;
    uint32_t reserved;
} xfq_tensor_record;
_Static_assert(sizeof(xfq_tensor_record) == 80, "xfq tensor record is 80 bytes");

typedef struct xfq_file {
    xf_mapped_file file;
    json_t *meta;          /* the metadata object */
    xf_tensor_set tensors; /* views into the mapping, sorted by name */
    char *names;           /* NUL-terminated copies of the names */
} xfq_file;

enum { XFQ_OPEN_NO_CRC = 1 };

int xfq_open(xfq_file *f, const char *path, int open_flags, xf_error *err);
void xfq_close(xfq_file *f);

/* ---- writing ---- */

/* One tensor to write. Plain: dtype F32/F16/BF16/I32 and `data` (nbytes =
 * numel * size). Packed: dtype Q2/Q3/Q4/Q8, ndim 2, and the grid in
 * `packed` (codes already packed with xfq_pack_row, row_bytes set).
 * GGML: dtype XF_DTYPE_GGML, `ggml_type` a quantized type of
 * xf_ggml_traits, ndim 2 [rows, cols], `data`/`nbytes` = rows rows of
 * xf_ggml_row_bytes(cols) bytes of blocks (written verbatim). */
typedef xf_tensor xfq_write_tensor;

/* Validates, checks every float for NaN/Inf (fails naming the tensor; GGML
 * tensors are dequantized for the check),
 * checks outlier side tables (formats/xfq_outliers.h) like the reader,
 * sorts by name, computes CRCs, and writes atomically (nothing is left
 * behind on failure). `meta` must be an object; "format": "xfq" and
 * "format_version": 1 are added when absent (other values are refused);
 * it is serialized with sorted keys. Same input => byte-identical file.
 * For packed tensors the record is assembled from `packed` (codes,
 * scales, zeros if asym, perm if non-NULL); `data`/`nbytes` are ignored. */
int xfq_write(const char *path, const json_t *meta, const xfq_write_tensor *tensors, size_t n,
              xf_error *err);

/* Bits per weight (8 * nbytes / elements, padding counted) over the packed
 * and GGML (quantized) tensors of a set (0 if none), and over all 2-D+
 * float/packed/GGML tensors.
 * The bytes of a packed weight's outlier side table count as its bytes;
 * the table's elements are not weights. */
double xfq_packed_bits_per_weight(const xf_tensor_set *s);
double xfq_all_bits_per_weight(const xf_tensor_set *s);

#endif
