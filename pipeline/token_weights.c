/* Attention-concentration token weights of one block (token_weights.h). */
#include "pipeline/token_weights.h"

#include <stdlib.h>
#include <string.h>

#include "quant/weights/token_weight.h"

typedef struct capture {
    const xf_forward_hooks *inner; /* the stream's hooks, or NULL */
    double *acc;                   /* [T] concentration of the window */
} capture;

static int on_input(void *user, int layer, xf_linear_role role, float *x, int64_t rows,
                    int64_t cols, xf_error *err)
{
    const capture *c = user;
    return c->inner->on_linear_input(c->inner->user, layer, role, x, rows, cols, err);
}

static int on_kv(void *user, int layer, float *k, float *v, int64_t T, int64_t n_kv_heads,
                 int64_t head_dim, xf_error *err)
{
    const capture *c = user;
    return c->inner->on_kv(c->inner->user, layer, k, v, T, n_kv_heads, head_dim, err);
}

/* after the stream's own hook: the probabilities the block will use */
static int on_probs(void *user, int layer, int64_t head, float *p, int64_t T_q, int64_t T_k,
                    xf_error *err)
{
    capture *c = user;
    if (c->inner && c->inner->on_attn_probs &&
        c->inner->on_attn_probs(c->inner->user, layer, head, p, T_q, T_k, err) != 0)
        return -1;
    xf_attn_concentration_add(c->acc, p, T_q, T_k);
    return 0;
}

int xf_stream_token_weights(xf_block_stream *bs, const xf_dense_layer *dl,
                            const xf_forward_hooks *hooks, bool per_query, float *r,
                            xf_error *err)
{
    const int64_t T = bs->T;
    capture c = {.inner = hooks, .acc = malloc((size_t)T * sizeof(double))};
    float *scratch = malloc((size_t)(T * bs->hidden) * sizeof *scratch);
    int rc = 0;
    if (!c.acc || !scratch)
        rc = xf_fail(err, "block %d: out of memory for token weights", dl->layer);
    xf_forward_hooks h = {.user = &c, .on_attn_probs = on_probs};
    if (hooks && hooks->on_linear_input)
        h.on_linear_input = on_input;
    if (hooks && hooks->on_kv)
        h.on_kv = on_kv;
    for (int64_t s = 0; s < bs->ns && rc == 0; s++) {
        memset(c.acc, 0, (size_t)T * sizeof *c.acc);
        rc = xf_block_stream_peek(bs, dl, s, XF_AT_O, &h, scratch, err);
        for (int64_t t = 0; t < T && per_query; t++)
            c.acc[t] /= (double)(T - t);
        if (rc == 0)
            rc = xf_token_weights_from_concentration(c.acc, T, XF_TOKEN_WEIGHT_R_MIN,
                                                     XF_TOKEN_WEIGHT_R_MAX, r + s * T, err);
    }
    free(c.acc);
    free(scratch);
    return rc == 0 ? 0 : xf_fail_prefix(err, "block %d: token weights", dl->layer);
}
