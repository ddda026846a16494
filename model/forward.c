/* Layer-level forward: workspace, embeddings, one decoder layer, final
 * norm + head. Follows HF transformers' LlamaDecoderLayer,
 * OPTDecoderLayer (both do_layer_norm_before settings) and GPT2Block. */
#include "model/forward.h"

#include <stdlib.h>
#include <string.h>

#include "model/ops.h"

static float *alloc_f32(int64_t rows, int64_t cols, bool *ok)
{
    float *p = malloc((size_t)rows * (size_t)cols * sizeof *p);
    if (!p)
        *ok = false;
    return p;
}

int xf_workspace_init(xf_workspace *ws, const xf_model_config *cfg, int64_t max_T,
                      const char *what, xf_error *err)
{
    return xf_workspace_init_scores(ws, cfg, max_T, XF_WORKSPACE_SCORE_BYTES, what, err);
}

int xf_workspace_init_scores(xf_workspace *ws, const xf_model_config *cfg, int64_t max_T,
                             size_t score_bytes, const char *what, xf_error *err)
{
    memset(ws, 0, sizeof *ws);
    const xf_model_config *c = cfg;
    if (c->hidden <= 0 || c->intermediate <= 0 || c->n_heads <= 0 || c->n_kv_heads <= 0 ||
        c->head_dim <= 0 || c->vocab <= 0)
        return xf_fail(err, "%s: non-positive dimension (hidden %lld, intermediate %lld, heads "
                            "%lld/%lld, head_dim %lld, vocab %lld)",
                       what, (long long)c->hidden, (long long)c->intermediate,
                       (long long)c->n_heads, (long long)c->n_kv_heads, (long long)c->head_dim,
                       (long long)c->vocab);
    if (c->n_heads % c->n_kv_heads != 0)
        return xf_fail(err, "%s: %lld attention heads are not a multiple of %lld kv heads", what,
                       (long long)c->n_heads, (long long)c->n_kv_heads);
    if (c->fused_qkv && c->n_kv_heads != c->n_heads)
        return xf_fail(err, "%s: fused q/k/v needs as many kv heads as heads", what);
    const bool rope = c->family == XF_FAMILY_LLAMA;
    if (rope && (c->head_dim % 2 != 0 || !(c->rope_theta > 0.0)))
        return xf_fail(err, "%s: RoPE needs an even head_dim and rope_theta > 0 (%lld, %g)", what,
                       (long long)c->head_dim, c->rope_theta);
    if (max_T < 1)
        return xf_fail(err, "%s: max sequence length %lld < 1", what, (long long)max_T);

    ws->cfg = *cfg;
    ws->max_T = max_T;
    ws->q_dim = c->n_heads * c->head_dim;
    ws->kv_dim = c->n_kv_heads * c->head_dim;
    ws->score_heads = xf_op_attention_score_heads(c->n_heads, max_T, score_bytes);
    bool ok = true;
    ws->x = alloc_f32(max_T, c->hidden, &ok);
    ws->q = alloc_f32(max_T, ws->q_dim, &ok);
    ws->k = alloc_f32(max_T, ws->kv_dim, &ok);
    ws->v = alloc_f32(max_T, ws->kv_dim, &ok);
    if (c->fused_qkv)
        ws->qkv = alloc_f32(max_T, ws->q_dim + 2 * ws->kv_dim, &ok);
    ws->attn = alloc_f32(max_T, ws->q_dim, &ok);
    ws->mlp_a = alloc_f32(max_T, c->intermediate, &ok);
    if (c->family == XF_FAMILY_LLAMA)
        ws->mlp_b = alloc_f32(max_T, c->intermediate, &ok);
    ws->y = alloc_f32(max_T, c->hidden, &ok);
    ws->row = alloc_f32(1, c->hidden, &ok);
    if (rope) {
        ws->rope_cos = alloc_f32(max_T, c->head_dim / 2, &ok);
        ws->rope_sin = alloc_f32(max_T, c->head_dim / 2, &ok);
    }
    ws->scores = alloc_f32(ws->score_heads * max_T, max_T, &ok);
    if (!ok) {
        xf_workspace_free(ws);
        return xf_fail(err, "%s: out of memory for a %lld-token workspace", what,
                       (long long)max_T);
    }
    if (rope)
        xf_op_rope_tables(c->rope_theta, c->head_dim, max_T, ws->rope_cos, ws->rope_sin);
    return 0;
}

void xf_workspace_free(xf_workspace *ws)
{
    free(ws->x);
    free(ws->q);
    free(ws->k);
    free(ws->v);
    free(ws->qkv);
    free(ws->attn);
    free(ws->mlp_a);
    free(ws->mlp_b);
    free(ws->y);
    free(ws->row);
    free(ws->rope_cos);
    free(ws->rope_sin);
    free(ws->scores);
    free(ws->k_full);
    free(ws->v_full);
    free(ws->keep_idx);
    memset(ws, 0, sizeof *ws);
}

static int check_T(const xf_workspace *ws, int64_t T, xf_error *err)
{
    if (T < 1 || T > ws->max_T)
        return xf_fail(err, "forward: %lld tokens, the workspace holds 1..%lld", (long long)T,
                       (long long)ws->max_T);
    return 0;
}

int xf_forward_embed(xf_workspace *ws, const xf_model_weights *mw, const int32_t *tokens,
                     int64_t T, float *h, xf_error *err)
{
    if (check_T(ws, T, err) != 0)
        return -1;
    const int64_t H = ws->cfg.hidden;
    const xf_tensor *te = mw->tok_embed, *pe = mw->pos_embed;
    if (!te || te->ndim != 2 || te->shape[1] != H)
        return xf_fail(err, "token embedding %s: expected [vocab, %lld]",
                       te && te->name ? te->name : "(missing)", (long long)H);
    for (int64_t t = 0; t < T; t++) {
        if (tokens[t] < 0 || tokens[t] >= te->shape[0])
            return xf_fail(err, "%s: token id %d at position %lld outside [0, %lld)", te->name,
                           tokens[t], (long long)t, (long long)te->shape[0]);
        if (xf_tensor_row_to_f32(te, tokens[t], h + t * H, err) != 0)
            return -1;
    }
    if (!pe)
        return 0;
    if (pe->ndim != 2 || pe->shape[1] != H)
        return xf_fail(err, "position embedding %s: expected [positions, %lld]",
                       pe->name ? pe->name : "(unnamed)", (long long)H);
    if (T + ws->cfg.pos_offset > pe->shape[0])
        return xf_fail(err, "%s: %lld positions (offset %lld) exceed its %lld rows", pe->name,
                       (long long)T, (long long)ws->cfg.pos_offset, (long long)pe->shape[0]);
    for (int64_t t = 0; t < T; t++) {
        if (xf_tensor_row_to_f32(pe, t + ws->cfg.pos_offset, ws->row, err) != 0)
            return -1;
        xf_op_add(h + t * H, ws->row, H);
    }
    return 0;
}

/* Checks that dl holds exactly the linears this architecture needs, with
 * the expected shapes (a caller may have swapped arrays). */
static int check_layer(const xf_workspace *ws, const xf_dense_layer *dl, xf_error *err)
{
    for (int r = 0; r < XF_LIN_COUNT; r++) {
        int64_t out, in;
        bool present = xf_forward_role_shape(&ws->cfg, (xf_linear_role)r, &out, &in);
        if (present != (dl->w[r] != NULL) || (present && (dl->out[r] != out || dl->in[r] != in)))
            return xf_fail(err, "layer %d: linear %s is %s [%lld, %lld], expected %s [%lld, %lld]",
                           dl->layer, xf_op_role_name(r), dl->w[r] ? "present" : "absent", (long long)dl->out[r],
                           (long long)dl->in[r], present ? "present" : "absent",
                           (long long)out, (long long)in);
    }
    if (!dl->attn_norm_w || !dl->mlp_norm_w)
        return xf_fail(err, "layer %d: norm weights missing", dl->layer);
    return 0;
}

static void norm_rows(const xf_workspace *ws, const float *x, float *out, int64_t T,
                      const float *w, const float *b)
{
    if (ws->cfg.layer_norm)
        xf_op_layernorm(x, out, T, ws->cfg.hidden, w, b, ws->cfg.norm_eps);
    else
        xf_op_rmsnorm(x, out, T, ws->cfg.hidden, w, ws->cfg.norm_eps);
}

static int hook_input(const xf_forward_hooks *hooks, int layer, xf_linear_role role, float *x,
                      int64_t rows, int64_t cols, xf_error *err)
{
    if (!hooks || !hooks->on_linear_input)
        return 0;
    int rc = hooks->on_linear_input(hooks->user, layer, role, x, rows, cols, err);
    return rc == 0 ? 0 : rc == XF_HOOK_STOP ? XF_HOOK_STOP : -1;
}

static void linear(const xf_dense_layer *dl, xf_linear_role r, const float *x, int64_t T,
                   float *y)
{
    xf_op_linear(x, T, dl->in[r], dl->w[r], dl->b[r], dl->out[r], y);
}

/* The layer's five parts, each from one point (forward.h xf_layer_point)
 * to the next. The input pending at a point lives in the workspace
 * (xf_forward_pending_input); h holds the residual stream throughout. */

/* START -> AT_QKV: x = attn_norm(h) (pre-norm) or h (post-norm). */
static int part_qkv_input(xf_workspace *ws, const xf_dense_layer *dl, float *h, int64_t T,
                          const xf_forward_hooks *hooks, xf_error *err)
{
    const xf_model_config *c = &ws->cfg;
    if (c->norm_before)
        norm_rows(ws, h, ws->x, T, dl->attn_norm_w, dl->attn_norm_b);
    else
        memcpy(ws->x, h, (size_t)(T * c->hidden) * sizeof *h);
    return hook_input(hooks, dl->layer, XF_LIN_Q, ws->x, T, c->hidden, err);
}

/* AT_QKV -> AT_O: attn = attention(q(x), k(x), v(x)). */
static int part_attention(xf_workspace *ws, const xf_dense_layer *dl, int64_t T,
                          const xf_forward_hooks *hooks, xf_error *err)
{
    const xf_model_config *c = &ws->cfg;
    const int64_t qd = ws->q_dim, kvd = ws->kv_dim;
    if (c->fused_qkv) {
        /* GPT-2 c_attn: one [T, q|k|v] product, split in that order */
        const int64_t w3 = qd + 2 * kvd;
        linear(dl, XF_LIN_Q, ws->x, T, ws->qkv);
        for (int64_t t = 0; t < T; t++) {
            const float *row = ws->qkv + t * w3;
            memcpy(ws->q + t * qd, row, (size_t)qd * sizeof *row);
            memcpy(ws->k + t * kvd, row + qd, (size_t)kvd * sizeof *row);
            memcpy(ws->v + t * kvd, row + qd + kvd, (size_t)kvd * sizeof *row);
        }
    } else {
        linear(dl, XF_LIN_Q, ws->x, T, ws->q);
        linear(dl, XF_LIN_K, ws->x, T, ws->k);
        linear(dl, XF_LIN_V, ws->x, T, ws->v);
    }
    if (ws->rope_cos) {
        xf_op_rope_apply(ws->q, T, c->n_heads, c->head_dim, ws->rope_cos, ws->rope_sin);
        xf_op_rope_apply(ws->k, T, c->n_kv_heads, c->head_dim, ws->rope_cos, ws->rope_sin);
    }
    if (hooks && hooks->on_q &&
        hooks->on_q(hooks->user, dl->layer, ws->q, T, c->n_heads, c->head_dim, err) != 0)
        return -1;
    xf_op_kv_keep keep = {0};
    if (hooks && hooks->kv_keep) {
        /* the full-precision K/V the kept tokens are read at (on_kv may
         * quantize ws->k / ws->v in place) */
        if (!ws->k_full) {
            ws->k_full = malloc((size_t)(ws->max_T * kvd) * sizeof *ws->k_full);
            ws->v_full = malloc((size_t)(ws->max_T * kvd) * sizeof *ws->v_full);
            ws->keep_idx = malloc((size_t)ws->max_T * sizeof *ws->keep_idx);
            if (!ws->k_full || !ws->v_full || !ws->keep_idx)
                return xf_fail(err, "layer %d: out of memory for the full-precision KV",
                               dl->layer);
        }
        memcpy(ws->k_full, ws->k, (size_t)(T * kvd) * sizeof *ws->k);
        memcpy(ws->v_full, ws->v, (size_t)(T * kvd) * sizeof *ws->v);
        keep = (xf_op_kv_keep){ws->k_full, ws->v_full, hooks->kv_keep, hooks->user, ws->keep_idx};
    }
    if (hooks && hooks->on_kv &&
        hooks->on_kv(hooks->user, dl->layer, ws->k, ws->v, T, c->n_kv_heads, c->head_dim, err) !=
            0)
        return -1;
    int hr = xf_op_attention_keep(ws->q, ws->k, ws->v, ws->attn, T, c->n_heads, c->n_kv_heads,
                                  c->head_dim, ws->scores, ws->score_heads,
                                  hooks ? hooks->on_attn_probs : NULL,
                                  hooks ? hooks->user : NULL, dl->layer,
                                  keep.keep ? &keep : NULL, err);
    if (hr != 0)
        return hr < 0 ? -1 : hr;
    return hook_input(hooks, dl->layer, XF_LIN_O, ws->attn, T, qd, err);
}

/* AT_O -> AT_MLP: h += o(attn) (then attn_norm for post-norm), x =
 * mlp_norm(h) (pre-norm) or h. */
static int part_mlp_input(xf_workspace *ws, const xf_dense_layer *dl, float *h, int64_t T,
                          const xf_forward_hooks *hooks, xf_error *err)
{
    const xf_model_config *c = &ws->cfg;
    const int64_t H = c->hidden;
    linear(dl, XF_LIN_O, ws->attn, T, ws->y);
    xf_op_add(h, ws->y, T * H);
    if (!c->norm_before)
        norm_rows(ws, h, h, T, dl->attn_norm_w, dl->attn_norm_b);
    if (c->norm_before)
        norm_rows(ws, h, ws->x, T, dl->mlp_norm_w, dl->mlp_norm_b);
    else
        memcpy(ws->x, h, (size_t)(T * H) * sizeof *h);
    /* reported as GATE when a gate reads it (llama), else as UP */
    xf_linear_role role = dl->w[XF_LIN_GATE] ? XF_LIN_GATE : XF_LIN_UP;
    return hook_input(hooks, dl->layer, role, ws->x, T, H, err);
}

/* AT_MLP -> AT_DOWN: a = act(gate(x)) * up(x) (llama) or act(fc1(x)). */
static int part_mlp_act(xf_workspace *ws, const xf_dense_layer *dl, int64_t T,
                        const xf_forward_hooks *hooks, xf_error *err)
{
    const xf_model_config *c = &ws->cfg;
    const int64_t I = c->intermediate;
    if (dl->w[XF_LIN_GATE]) {
        linear(dl, XF_LIN_GATE, ws->x, T, ws->mlp_a);
        linear(dl, XF_LIN_UP, ws->x, T, ws->mlp_b);
        xf_op_act_gated(c->act, ws->mlp_a, ws->mlp_b, T * I);
    } else {
        linear(dl, XF_LIN_UP, ws->x, T, ws->mlp_a);
        xf_op_act(c->act, ws->mlp_a, T * I);
    }
    return hook_input(hooks, dl->layer, XF_LIN_DOWN, ws->mlp_a, T, I, err);
}

/* AT_DOWN -> END: h += down(a) (then mlp_norm for post-norm). */
static int part_down(xf_workspace *ws, const xf_dense_layer *dl, float *h, int64_t T)
{
    const xf_model_config *c = &ws->cfg;
    linear(dl, XF_LIN_DOWN, ws->mlp_a, T, ws->y);
    xf_op_add(h, ws->y, T * c->hidden);
    if (!c->norm_before)
        norm_rows(ws, h, h, T, dl->mlp_norm_w, dl->mlp_norm_b);
    return 0;
}

static int run_part(xf_workspace *ws, const xf_dense_layer *dl, float *h, int64_t T,
                    xf_layer_point from, const xf_forward_hooks *hooks, xf_error *err)
{
    switch (from) {
    case XF_AT_START: return part_qkv_input(ws, dl, h, T, hooks, err);
    case XF_AT_QKV: return part_attention(ws, dl, T, hooks, err);
    case XF_AT_O: return part_mlp_input(ws, dl, h, T, hooks, err);
    case XF_AT_MLP: return part_mlp_act(ws, dl, T, hooks, err);
    case XF_AT_DOWN: return part_down(ws, dl, h, T);
    case XF_AT_END: break;
    }
    return 0;
}

float *xf_forward_pending_input(xf_workspace *ws, xf_layer_point at, int64_t *cols)
{
    switch (at) {
    case XF_AT_QKV:
    case XF_AT_MLP: *cols = ws->cfg.hidden; return ws->x;
    case XF_AT_O: *cols = ws->q_dim; return ws->attn;
    case XF_AT_DOWN: *cols = ws->cfg.intermediate; return ws->mlp_a;
    default: *cols = 0; return NULL;
    }
}

int xf_forward_layer_span(xf_workspace *ws, const xf_dense_layer *dl, float *h, int64_t T,
                          xf_layer_point from, xf_layer_point to, const xf_forward_hooks *hooks,
                          xf_error *err)
{
    if (check_T(ws, T, err) != 0 || check_layer(ws, dl, err) != 0)
        return -1;
    if (from < XF_AT_START || to > XF_AT_END || from >= to)
        return xf_fail(err, "layer %d: no forward span from point %d to %d", dl->layer,
                       (int)from, (int)to);
    for (xf_layer_point p = from; p < to; p++) {
        int rc = run_part(ws, dl, h, T, p, hooks, err);
        if (rc < 0)
            return xf_fail_prefix(err, "layer %d", dl->layer);
        if (rc != 0)
            return rc; /* XF_HOOK_STOP */
    }
    return 0;
}

int xf_forward_layer(xf_workspace *ws, const xf_dense_layer *dl, float *h, int64_t T,
                     const xf_forward_hooks *hooks, xf_error *err)
{
    return xf_forward_layer_span(ws, dl, h, T, XF_AT_START, XF_AT_END, hooks, err);
}

int xf_forward_final_rows(xf_workspace *ws, const xf_dense_head *hd, const float *h, int64_t T,
                          int64_t first_row, float *logits, xf_error *err)
{
    if (check_T(ws, T, err) != 0)
        return -1;
    if (first_row < 0 || first_row >= T)
        return xf_fail(err, "lm head: first row %lld outside [0, %lld)", (long long)first_row,
                       (long long)T);
    const int64_t H = ws->cfg.hidden, n = T - first_row;
    if (!hd->w || hd->hidden != H || hd->vocab < 1)
        return xf_fail(err, "lm head: [%lld, %lld] does not fit hidden %lld",
                       (long long)hd->vocab, (long long)hd->hidden, (long long)H);
    const float *hr = h + first_row * H;
    if (hd->norm_w)
        norm_rows(ws, hr, ws->x, n, hd->norm_w, hd->norm_b);
    else
        memcpy(ws->x, hr, (size_t)(n * H) * sizeof *h);
    xf_op_linear(ws->x, n, H, hd->w, hd->b, hd->vocab, logits);
    return 0;
}

int xf_forward_final(xf_workspace *ws, const xf_dense_head *hd, const float *h, int64_t T,
                     float *logits, xf_error *err)
{
    return xf_forward_final_rows(ws, hd, h, T, 0, logits, err);
}
