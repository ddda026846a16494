/* Solved weights between ranks (dist_qweight.h). */
#include "pipeline/dist_qweight.h"

#include <string.h>

/* What the receiver needs to allocate the same container. */
typedef struct qweight_head {
    int64_t rows, cols, group_size, n_groups;
    int64_t bits, asym, log2, perm, ggml;
    int64_t row_bytes;
} qweight_head;

/* The arrays of q, in a fixed order: (pointer, bytes). */
static int arrays_of(const xf_qweight *q, void *ptr[4], size_t len[4])
{
    if (q->ggml) {
        ptr[0] = q->blocks;
        len[0] = (size_t)q->rows * q->row_bytes;
        return 1;
    }
    const size_t ngrid = (size_t)(q->rows * q->n_groups);
    ptr[0] = q->codes;
    len[0] = (size_t)(q->rows * q->cols);
    ptr[1] = q->scales;
    len[1] = ngrid * sizeof *q->scales;
    ptr[2] = q->zeros;
    len[2] = ngrid;
    ptr[3] = q->perm;
    len[3] = q->perm ? (size_t)q->cols * sizeof *q->perm : 0;
    return 4;
}

int xf_dist_send_qweight(xf_dist *d, int peer, const xf_qweight *q, const xf_gptq_stats *st,
                         xf_error *err)
{
    const qweight_head h = {q->rows, q->cols,  q->group_size, q->n_groups,   q->bits,
                            q->asym, q->log2, q->perm != NULL, q->ggml != NULL,
                            (int64_t)q->row_bytes};
    if (xf_dist_send(d, peer, &h, sizeof h, err) != 0 ||
        xf_dist_send(d, peer, st, sizeof *st, err) != 0)
        return -1;
    void *ptr[4];
    size_t len[4];
    const int n = arrays_of(q, ptr, len);
    for (int i = 0; i < n; i++)
        if (len[i] && xf_dist_send(d, peer, ptr[i], len[i], err) != 0)
            return -1;
    return 0;
}

int xf_dist_recv_qweight(xf_dist *d, int peer, xf_qweight *q, xf_gptq_stats *st,
                         const xf_ggml_grid_traits *ggml, const char *what, xf_error *err)
{
    memset(q, 0, sizeof *q);
    qweight_head h;
    if (xf_dist_recv(d, peer, &h, sizeof h, err) != 0 ||
        xf_dist_recv(d, peer, st, sizeof *st, err) != 0)
        return -1;
    if ((h.ggml != 0) != (ggml != NULL))
        return xf_fail(err, "%s: rank %d solved it on another grid", what, peer);
    int rc = ggml ? xf_qweight_init_ggml(q, h.rows, h.cols, ggml, what, err)
                  : xf_qweight_init(q, h.rows, h.cols, (int)h.bits, h.group_size, h.asym != 0,
                                    h.perm != 0, what, err);
    if (rc != 0)
        return -1;
    q->log2 = h.log2 != 0;
    void *ptr[4];
    size_t len[4];
    const int n = arrays_of(q, ptr, len);
    if (ggml && (int64_t)q->row_bytes != h.row_bytes)
        rc = xf_fail(err, "%s: rank %d's rows are %lld bytes, not %zu", what, peer,
                     (long long)h.row_bytes, q->row_bytes);
    for (int i = 0; i < n && rc == 0; i++)
        if (len[i])
            rc = xf_dist_recv(d, peer, ptr[i], len[i], err);
    if (rc != 0)
        xf_qweight_free(q);
    return rc;
}
