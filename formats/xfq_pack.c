/* Bit packing of weight codes (32-code blocks, little-endian bit order),
 * the byte layout of a packed tensor, and dequantization. Spec:
 * docs/xfq-format.md, "Packed weights". */
#include "formats/xfq_pack.h"

#include <limits.h>
#include <string.h>

#include "core/half.h"

size_t xfq_block_bytes(int bits)
{
    switch (bits) {
    case 2: return sizeof(xfq_block_q2);
    case 3: return sizeof(xfq_block_q3);
    case 4: return sizeof(xfq_block_q4);
    case 8: return sizeof(xfq_block_q8);
    default: return 0;
    }
}

/* ---- one full block of 32 codes ---- */

static void pack_block(const uint8_t *c, int bits, uint8_t *out)
{
    switch (bits) {
    case 8: memcpy(out, c, 32); return;
    case 4:
        for (int i = 0; i < 16; i++)
            out[i] = (uint8_t)((c[2 * i] & 0xfu) | ((c[2 * i + 1] & 0xfu) << 4));
        return;
    case 2:
        for (int i = 0; i < 8; i++)
            out[i] = (uint8_t)((c[4 * i] & 3u) | ((c[4 * i + 1] & 3u) << 2) |
                               ((c[4 * i + 2] & 3u) << 4) | ((c[4 * i + 3] & 3u) << 6));
        return;
    case 3:
        /* 8 codes = 24 bits = 3 bytes, so the block is 4 independent triples */
        for (int t = 0; t < 4; t++) {
            const uint8_t *q = c + 8 * t;
            uint32_t v = 0;
            for (int k = 0; k < 8; k++)
                v |= (uint32_t)(q[k] & 7u) << (3 * k);
            out[3 * t] = (uint8_t)v;
            out[3 * t + 1] = (uint8_t)(v >> 8);
            out[3 * t + 2] = (uint8_t)(v >> 16);
        }
        return;
    default: return;
    }
}

static void unpack_block(const uint8_t *in, int bits, uint8_t *c)
{
    switch (bits) {
    case 8: memcpy(c, in, 32); return;
    case 4:
        for (int i = 0; i < 16; i++) {
            c[2 * i] = in[i] & 0xfu;
            c[2 * i + 1] = in[i] >> 4;
        }
        return;
    case 2:
        for (int i = 0; i < 8; i++) {
            uint8_t b = in[i];
            c[4 * i] = b & 3u;
            c[4 * i + 1] = (b >> 2) & 3u;
            c[4 * i + 2] = (b >> 4) & 3u;
            c[4 * i + 3] = b >> 6;
        }
        return;
    case 3:
        for (int t = 0; t < 4; t++) {
            uint32_t v = (uint32_t)in[3 * t] | ((uint32_t)in[3 * t + 1] << 8) |
                         ((uint32_t)in[3 * t + 2] << 16);
            uint8_t *q = c + 8 * t;
            for (int k = 0; k < 8; k++)
                q[k] = (uint8_t)((v >> (3 * k)) & 7u);
        }
        return;
    default: return;
    }
}

void xfq_pack_row(const uint8_t *codes, int64_t n, int bits, uint8_t *out)
{
    size_t bb = xfq_block_bytes(bits);
    if (bb == 0 || n <= 0)
        return;
    int64_t full = n / XFQ_BLOCK_CODES;
    for (int64_t k = 0; k < full; k++)
        pack_block(codes + k * XFQ_BLOCK_CODES, bits, out + (size_t)k * bb);
    int64_t rest = n - full * XFQ_BLOCK_CODES;
    if (rest > 0) {
        uint8_t tmp[XFQ_BLOCK_CODES] = {0}; /* padding codes are 0 */
        memcpy(tmp, codes + full * XFQ_BLOCK_CODES, (size_t)rest);
        pack_block(tmp, bits, out + (size_t)full * bb);
    }
}

void xfq_unpack_row(const uint8_t *packed, int64_t n, int bits, uint8_t *codes)
{
    size_t bb = xfq_block_bytes(bits);
    if (bb == 0 || n <= 0)
        return;
    int64_t full = n / XFQ_BLOCK_CODES;
    for (int64_t k = 0; k < full; k++)
        unpack_block(packed + (size_t)k * bb, bits, codes + k * XFQ_BLOCK_CODES);
    int64_t rest = n - full * XFQ_BLOCK_CODES;
    if (rest > 0) {
        uint8_t tmp[XFQ_BLOCK_CODES];
        unpack_block(packed + (size_t)full * bb, bits, tmp);
        memcpy(codes + full * XFQ_BLOCK_CODES, tmp, (size_t)rest);
    }
}

/* ---- layout ---- */

static bool mul_size(size_t a, size_t b, size_t *out) { return !__builtin_mul_overflow(a, b, out); }
static bool add_size(size_t a, size_t b, size_t *out) { return !__builtin_add_overflow(a, b, out); }

static bool align64(size_t a, size_t *out)
{
    if (!add_size(a, 63, out))
        return false;
    *out &= ~(size_t)63;
    return true;
}

/* Places a part of `bytes` bytes at the next 64-aligned offset after *end. */
static bool place_part(size_t *end, size_t bytes, size_t *offset)
{
    if (!align64(*end, offset))
        return false;
    return add_size(*offset, bytes, end);
}

int xfq_packed_layout_compute(int64_t rows, int64_t cols, int bits, int64_t group_size,
                              bool asym, bool has_perm, xfq_packed_layout *out,
                              const char *what, xf_error *err)
{
    memset(out, 0, sizeof *out);
    size_t bb = xfq_block_bytes(bits);
    if (bb == 0)
        return xf_fail(err, "%s: unsupported bit width %d (expected 2, 3, 4 or 8)", what, bits);
    if (rows < 1 || cols < 1)
        return xf_fail(err, "%s: packed shape [%lld, %lld] must be positive", what,
                       (long long)rows, (long long)cols);
    /* perm entries and group_size are 32-bit in the file */
    if (cols > INT32_MAX)
        return xf_fail(err, "%s: %lld columns exceed the limit %d", what, (long long)cols,
                       INT32_MAX);
    if (group_size < 1 || group_size > cols)
        return xf_fail(err, "%s: group size %lld outside [1, %lld]", what, (long long)group_size,
                       (long long)cols);
    int64_t n_groups = (cols + group_size - 1) / group_size;
    size_t blocks = (size_t)((cols + XFQ_BLOCK_CODES - 1) / XFQ_BLOCK_CODES);
    size_t r = (size_t)rows, grid = 0, end = 0;
    bool ok = (uint64_t)rows <= SIZE_MAX && mul_size(blocks, bb, &out->row_bytes) &&
              mul_size(r, out->row_bytes, &out->codes_bytes) &&
              place_part(&end, out->codes_bytes, &out->codes_offset) &&
              mul_size(r, (size_t)n_groups, &grid) && mul_size(grid, 2, &out->scales_bytes) &&
              place_part(&end, out->scales_bytes, &out->scales_offset);
    if (ok && asym) {
        out->zeros_bytes = grid;
        ok = place_part(&end, out->zeros_bytes, &out->zeros_offset);
    }
    if (ok && has_perm) {
        out->perm_bytes = (size_t)cols * sizeof(int32_t);
        ok = place_part(&end, out->perm_bytes, &out->perm_offset);
    }
    /* rows * cols must also fit, since callers allocate dequantized copies */
    int64_t numel;
    if (!ok || __builtin_mul_overflow(rows, cols, &numel) || (uint64_t)numel > SIZE_MAX / 4) {
        memset(out, 0, sizeof *out);
        return xf_fail(err, "%s: packed shape [%lld, %lld] is too large (size overflow)", what,
                       (long long)rows, (long long)cols);
    }
    out->total_bytes = end; /* no padding after the last part */
    return 0;
}

/* ---- dequantization ---- */

int xfq_packed_view_check(const xf_packed_view *p, int64_t cols, bool log2, const char *name,
                          xf_error *err)
{
    if (!name)
        name = "?";
    if (p->group_size < 1 || p->group_size > cols ||
        p->n_groups != (cols + p->group_size - 1) / p->group_size)
        return xf_fail(err, "tensor %s: invalid group size %lld / %lld groups for %lld columns",
                       name, (long long)p->group_size, (long long)p->n_groups, (long long)cols);
    size_t want = (size_t)((cols + XFQ_BLOCK_CODES - 1) / XFQ_BLOCK_CODES) * xfq_block_bytes(p->bits);
    if (p->row_bytes != want)
        return xf_fail(err, "tensor %s: row_bytes %zu, expected %zu", name, p->row_bytes, want);
    if (!p->codes || !p->scales || (p->asym && !p->zeros))
        return xf_fail(err, "tensor %s: packed view is missing codes, scales or zeros", name);
    if (log2 && (p->asym || p->perm))
        return xf_fail(err, "tensor %s: L%d weights cannot have zero points or a perm", name,
                       p->bits);
    if (p->outliers.row_ptr && (!p->outliers.col || !p->outliers.val) && p->outliers.nnz > 0)
        return xf_fail(err, "tensor %s: outlier table is missing its columns or values", name);
    return 0;
}

enum { CHUNK_CODES = 1024 }; /* codes unpacked at once (multiple of 32) */

static int32_t i32_at(const uint8_t *p, int64_t i)
{
    int32_t v;
    memcpy(&v, p + 4 * (size_t)i, sizeof v);
    return v;
}

/* Row r's outlier entries replace the dense values of `row`. */
static void apply_outliers(const xf_packed_outliers *o, int64_t r, float *row)
{
    const int32_t a = i32_at(o->row_ptr, r), b = i32_at(o->row_ptr, r + 1);
    for (int32_t k = a; k < b; k++) {
        uint16_t h;
        memcpy(&h, o->val + 2 * (size_t)k, sizeof h);
        row[i32_at(o->col, k)] = xf_f16_to_f32(h);
    }
}

/* Row r of a checked view; writes dst[perm[j]] (or dst[j]). */
static void dequant_row(const xf_packed_view *p, int64_t cols, bool log2, int64_t r, float *dst)
{
    const int64_t g = p->group_size;
    const int bits = p->bits;
    const size_t bb = xfq_block_bytes(bits);
    const uint8_t *codes = p->codes + (size_t)r * p->row_bytes;
    const uint16_t *scales = p->scales + r * p->n_groups;
    const uint8_t *zeros = p->asym ? p->zeros + r * p->n_groups : NULL;
    const int zsym = 1 << (bits - 1);
    const int32_t *perm = p->perm;
    uint8_t buf[CHUNK_CODES];
    float lut[256]; /* log2 grid: the value of every code of the current group */
    int64_t lut_group = -1;

    for (int64_t c0 = 0; c0 < cols; c0 += CHUNK_CODES) {
        int64_t n = cols - c0 < CHUNK_CODES ? cols - c0 : CHUNK_CODES;
        xfq_unpack_row(codes + (size_t)(c0 / XFQ_BLOCK_CODES) * bb, n, bits, buf);
        int64_t j = c0, end = c0 + n;
        while (j < end) {
            int64_t gi = j / g;
            int64_t seg_end = (gi + 1) * g < end ? (gi + 1) * g : end;
            float s = xf_f16_to_f32(scales[gi]);
            int z = zeros ? zeros[gi] : zsym;
            const uint8_t *q = buf + (j - c0);
            int64_t len = seg_end - j;
            if (log2) {
                if (gi != lut_group) {
                    for (unsigned c = 0; c < (1u << bits); c++)
                        lut[c] = xfq_log2_code_value(c, bits, s);
                    lut_group = gi;
                }
                for (int64_t k = 0; k < len; k++)
                    dst[j + k] = lut[q[k]]; /* no perm: the writer and reader refuse one */
            } else if (perm) {
                for (int64_t k = 0; k < len; k++)
                    dst[perm[j + k]] = s * (float)((int)q[k] - z);
            } else {
                float *d = dst + j;
                for (int64_t k = 0; k < len; k++)
                    d[k] = s * (float)((int)q[k] - z);
            }
            j = seg_end;
        }
    }
    if (p->outliers.row_ptr)
        apply_outliers(&p->outliers, r, dst);
}

void xfq_packed_rows_to_f32(const xf_packed_view *p, int64_t cols, bool log2, int64_t r0,
                            int64_t nrows, float *dst)
{
    /* one row (an embedding lookup) stays on the calling thread */
#pragma omp parallel for schedule(static) if (nrows > 1)
    for (int64_t r = 0; r < nrows; r++)
        dequant_row(p, cols, log2, r0 + r, dst + r * cols);
}
