/* Packed .xfq rows -> GGML blocks (export/gguf_blocks.h). */
#include "export/gguf_blocks.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/half.h"
#include "formats/ggml_types.h"
#include "formats/xfq_pack.h"

/* Storage column of logical column c. */
static inline int64_t storage_col(const int32_t *inv, int64_t c) { return inv ? inv[c] : c; }

int xf_gguf_packed_type(const xf_tensor *t, xf_gguf_asym asym, uint32_t *type, bool *act_order,
                        xf_error *err)
{
    const xf_packed_view *p = &t->packed;
    const int64_t rows = t->shape[0], cols = t->shape[1], g = p->group_size;
    *act_order = false;
    if (xf_dtype_is_log2(t->dtype))
        return xf_fail(err, "tensor %s: log2-grid weights (%s) have no GGML block type", t->name,
                       xf_dtype_name(t->dtype));
    if (cols % XF_GGML_QK != 0)
        return xf_fail(err,
                       "tensor %s: row length %lld is not a multiple of the GGML block (32)",
                       t->name, (long long)cols);
    if (p->perm) {
        /* the group of each logical column must be constant on aligned
         * 32-column blocks: that is all a GGML row can express */
        int32_t *inv = malloc((size_t)cols * sizeof *inv);
        if (!inv)
            return xf_fail(err, "tensor %s: out of memory", t->name);
        for (int64_t j = 0; j < cols; j++)
            inv[p->perm[j]] = (int32_t)j;
        bool ok = true;
        for (int64_t c = 0; c < cols && ok; c++)
            ok = inv[c] / g == inv[c - c % XF_GGML_QK] / g;
        free(inv);
        if (!ok) {
            *act_order = true;
            return xf_fail(err,
                           "tensor %s: act-order permutation without static groups: the group "
                           "changes inside a 32-column block and GGUF has no g_idx",
                           t->name);
        }
    } else if (g % XF_GGML_QK != 0 && g < cols) {
        return xf_fail(err, "tensor %s: group size %lld splits GGML's 32-column blocks", t->name,
                       (long long)g);
    }
    switch (p->bits) {
    case 2:
    case 3:
        *type = XF_GGML_Q4_0;
        return 0;
    case 4:
        *type = !p->asym ? XF_GGML_Q4_0 : asym == XF_GGUF_ASYM_Q4_1 ? XF_GGML_Q4_1 : XF_GGML_Q5_0;
        return 0;
    case 8:
        if (p->asym) {
            /* exact only if every q - z fits int8 */
            uint8_t buf[XFQ_BLOCK_CODES];
            const size_t bb = xfq_block_bytes(8);
            for (int64_t r = 0; r < rows; r++)
                for (int64_t c0 = 0; c0 < cols; c0 += XFQ_BLOCK_CODES) {
                    xfq_unpack_row(p->codes + (size_t)r * p->row_bytes +
                                       (size_t)(c0 / XFQ_BLOCK_CODES) * bb,
                                   XFQ_BLOCK_CODES, 8, buf);
                    for (int k = 0; k < XFQ_BLOCK_CODES; k++) {
                        int v = (int)buf[k] - (int)p->zeros[r * p->n_groups + (c0 + k) / g];
                        if (v < -128 || v > 127)
                            return xf_fail(err,
                                           "tensor %s: 8-bit asymmetric codes (q - z = %d at "
                                           "row %lld) do not fit Q8_0's int8",
                                           t->name, v, (long long)r);
                    }
                }
        }
        *type = XF_GGML_Q8_0;
        return 0;
    default:
        return xf_fail(err, "tensor %s: %d-bit weights have no GGML block type", t->name,
                       p->bits);
    }
}

void xf_gguf_encode_packed_row(const xf_tensor *t, int64_t r, uint32_t type, const int32_t *inv,
                               uint8_t *codes, uint8_t *dst, double *max_abs_err,
                               double *max_abs_dm)
{
    const xf_packed_view *p = &t->packed;
    const int64_t cols = t->shape[1], g = p->group_size;
    xfq_unpack_row(p->codes + (size_t)r * p->row_bytes, cols, p->bits, codes);
    const uint16_t *scales = p->scales + r * p->n_groups;
    const uint8_t *zeros = p->asym ? p->zeros + r * p->n_groups : NULL;
    const int zsym = 1 << (p->bits - 1);
    const xf_ggml_type_traits *tt = xf_ggml_traits(type);

    for (int64_t b = 0; b < cols / XF_GGML_QK; b++) {
        const int64_t c0 = b * XF_GGML_QK;
        /* one group per block (checked by xf_gguf_packed_type) */
        const int64_t gi = storage_col(inv, c0) / g;
        const uint16_t d = scales[gi];
        const int z = zeros ? zeros[gi] : zsym;
        int v[XF_GGML_QK]; /* q - z of each element of the block */
        for (int e = 0; e < XF_GGML_QK; e++)
            v[e] = (int)codes[storage_col(inv, c0 + e)] - z;
        uint8_t *blk = dst + (size_t)b * tt->type_size;
        switch (type) {
        case XF_GGML_Q4_0: {
            xf_block_q4_0 q = {.d = d};
            for (int j = 0; j < XF_GGML_QK / 2; j++)
                q.qs[j] = (uint8_t)((v[j] + 8) | ((v[j + 16] + 8) << 4));
            memcpy(blk, &q, sizeof q);
            break;
        }
        case XF_GGML_Q5_0: {
            xf_block_q5_0 q = {.d = d};
            uint32_t qh = 0;
            for (int j = 0; j < XF_GGML_QK / 2; j++) {
                int lo = v[j] + 16, hi = v[j + 16] + 16;
                q.qs[j] = (uint8_t)((lo & 15) | ((hi & 15) << 4));
                qh |= (uint32_t)((lo >> 4) & 1) << j;
                qh |= (uint32_t)((hi >> 4) & 1) << (j + 16);
            }
            for (int k = 0; k < 4; k++)
                q.qh[k] = (uint8_t)(qh >> (8 * k));
            memcpy(blk, &q, sizeof q);
            break;
        }
        case XF_GGML_Q8_0: {
            xf_block_q8_0 q = {.d = d};
            for (int j = 0; j < XF_GGML_QK; j++)
                q.qs[j] = (int8_t)v[j];
            memcpy(blk, &q, sizeof q);
            break;
        }
        case XF_GGML_Q4_1: {
            /* q * d + m with m = -s z rounded to fp16 (the one approximate
             * mapping); the codes are the xfq codes themselves */
            const float s = xf_f16_to_f32(d);
            const double m_exact = -(double)s * z;
            xf_block_q4_1 q = {.d = d, .m = xf_f32_to_f16((float)m_exact)};
            const float mf = xf_f16_to_f32(q.m);
            double dm = fabs((double)mf - m_exact);
            if (dm > *max_abs_dm)
                *max_abs_dm = dm;
            for (int j = 0; j < XF_GGML_QK / 2; j++)
                q.qs[j] = (uint8_t)((v[j] + z) | ((v[j + 16] + z) << 4));
            for (int e = 0; e < XF_GGML_QK; e++) {
                float ggml = (float)(v[e] + z) * s + mf; /* ggml's dequantize_row_q4_1 */
                float xfq = s * (float)v[e];             /* xfquant's dequantization */
                double diff = fabs((double)ggml - (double)xfq);
                if (diff > *max_abs_err)
                    *max_abs_err = diff;
            }
            memcpy(blk, &q, sizeof q);
            break;
        }
        default:
            break;
        }
    }
}

void xf_gguf_encode_float_row(const float *src, int64_t n, uint32_t type, void *dst)
{
    if (type == XF_GGML_F32)
        memcpy(dst, src, (size_t)n * sizeof(float));
    else if (type == XF_GGML_F16)
        xf_f32_to_f16_array(src, dst, (size_t)n);
    else if (type == XF_GGML_BF16)
        xf_f32_to_bf16_array(src, dst, (size_t)n);
}
