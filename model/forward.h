/* The transformer forward pass shared by calibration and evaluation, in
 * fp32 activations, matching Hugging Face transformers for the llama family
 * (llama/mistral/qwen2), OPT (pre-LN and post-LN) and GPT-2.
 *
 * Three levels:
 *   - xf_dense_layer / xf_dense_head: one layer's (or the final norm and
 *     LM head's) weights dequantized to fp32, [out, in] row-major for every
 *     linear (GPT-2 Conv1D weights are transposed on load);
 *   - layer-level calls on a hidden-state buffer h [T, hidden]:
 *     xf_forward_embed -> xf_forward_layer (once per layer, in place) ->
 *     xf_forward_final, all using one xf_workspace sized for a max T;
 *   - xf_runner: the whole model, tokens -> logits.
 *
 * Positions are always 0..T-1 (one window per call, no KV cache). RoPE
 * angles are HF's: inv_freq and p * inv_freq rounded to fp32 as HF computes
 * them, then cos/sin of that angle in double, cast to fp32.
 *
 * Threading: within one window, every product is cut into tiles fixed by
 * its shape, one single-threaded cblas_sgemm each, spread over OpenMP
 * threads (the linears: core/gemm_tiled.h; attention's Q K^T and P V per
 * head and block of query rows), and attention's softmax is an OpenMP loop
 * over (head, row) when it is large enough; the elementwise ops stay on the
 * calling thread. Results depend only on the inputs, never on the thread
 * count (OpenBLAS's own threading would change the sums).
 * xf_runner_forward_windows (evaluation) runs whole windows side by side,
 * one per OpenMP thread, each window's tiles in turn on its thread: the
 * same bytes. */
#ifndef XF_MODEL_FORWARD_H
#define XF_MODEL_FORWARD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/error.h"
#include "model/config.h"
#include "model/linear_inputs.h"
#include "model/weights.h"

/* ---- fp32 weights ------------------------------------------------------ */

/* One layer's weights in fp32. Every array is malloc'd and owned.
 *
 * The linears are meant to be replaced by the caller (the GPTQ pipeline
 * swaps in dequantized quantized weights): write into w[role] in place, or
 * free() it and store another malloc'd array of the same shape
 * [out[role], in[role]]; xf_dense_layer_free frees whatever w/b hold. The
 * shapes themselves must not change. */
typedef struct xf_dense_layer {
    int layer;                   /* index in the model (passed to hooks) */
    float *w[XF_LIN_COUNT];      /* [out, in] row-major; NULL: role absent */
    float *b[XF_LIN_COUNT];      /* [out]; NULL: no bias */
    int64_t out[XF_LIN_COUNT];   /* 0 when absent */
    int64_t in[XF_LIN_COUNT];
    float *attn_norm_w, *attn_norm_b; /* [hidden]; _b NULL for RMSNorm */
    float *mlp_norm_w, *mlp_norm_b;
} xf_dense_layer;

/* The logical [out, in] of a role's linear in this architecture (GPT-2's
 * fused c_attn is XF_LIN_Q with out = q_dim + 2 * kv_dim); false if the
 * family has no such linear (K/V when fused, GATE outside the llama family). */
bool xf_forward_role_shape(const xf_model_config *cfg, xf_linear_role role, int64_t *out,
                           int64_t *in);

/* Loads layer `layer` of mw; checks every tensor's shape against mw->cfg
 * (missing or unexpected roles fail, naming the tensor). */
int xf_dense_layer_init(xf_dense_layer *dl, const xf_model_weights *mw, int layer,
                        xf_error *err);
void xf_dense_layer_free(xf_dense_layer *dl);
/* Bytes xf_dense_layer_init would allocate for that layer. */
size_t xf_dense_layer_bytes(const xf_model_weights *mw, int layer);

/* The final norm (absent for post-LN OPT: norm_w NULL) and the LM head. */
typedef struct xf_dense_head {
    float *norm_w, *norm_b; /* [hidden] or NULL */
    float *w;               /* [vocab, hidden]; a tied head is a copy of the embedding */
    float *b;               /* [vocab] or NULL */
    int64_t vocab, hidden;
} xf_dense_head;

int xf_dense_head_init(xf_dense_head *hd, const xf_model_weights *mw, xf_error *err);
void xf_dense_head_free(xf_dense_head *hd);

/* ---- hooks --------------------------------------------------------------- */

/* A hook returns 0 to continue, -1 (err filled) to abort, or XF_HOOK_STOP
 * to end the current layer's forward pass early without error (capture
 * passes that need nothing further): xf_forward_layer then returns
 * XF_HOOK_STOP and h holds unspecified partial results. */
#define XF_HOOK_STOP 1

/* Callbacks seen by xf_forward_layer; a NULL struct or NULL member means
 * nothing is called. Each returns 0, or -1 after filling err to abort the
 * forward pass.
 *
 * on_linear_input: called once per DISTINCT linear input, right before the
 * matmuls that read it, with x [rows = T, cols = in] row-major. x is
 * mutable: the matmuls read it after the hook returns. Order and roles:
 *   XF_LIN_Q    the q/k/v input (GPT-2: the fused c_attn input)
 *   XF_LIN_O    the attention output entering o_proj / out_proj
 *   XF_LIN_GATE the MLP input (llama family: read by gate and up), or
 *   XF_LIN_UP   the MLP input (OPT fc1, GPT-2 c_fc)
 *   XF_LIN_DOWN the down_proj / fc2 / mlp.c_proj input
 * on_kv: K and V after RoPE (before attention), each [T, n_kv_heads *
 * head_dim] row-major (token-major, heads side by side); mutable.
 * on_attn_probs: the post-softmax probabilities of query head `head`
 * (0..n_heads-1), p [T_q, T_k] row-major (here T_q = T_k = T), causal: row
 * i holds keys 0..i, entries j > i are 0. Mutable: P V reads p after the
 * hook (whatever the hook writes above the diagonal is zeroed again, so no
 * future token can leak in). Called once per head per layer, in head
 * order, from the calling thread (outside any OpenMP region). When NULL
 * the attention runs exactly as without hooks (no extra pass).
 * (Appended last so that positional initializers of the first three
 * members stay valid C; prefer designated initializers.) */
typedef struct xf_forward_hooks {
    void *user;
    int (*on_linear_input)(void *user, int layer, xf_linear_role role, float *x, int64_t rows,
                           int64_t cols, xf_error *err);
    int (*on_kv)(void *user, int layer, float *k, float *v, int64_t T, int64_t n_kv_heads,
                 int64_t head_dim, xf_error *err);
    int (*on_attn_probs)(void *user, int layer, int64_t head, float *p, int64_t T_q,
                         int64_t T_k, xf_error *err);
    /* kv_keep (query-dependent full-precision KV, e.g. LogQuant): when set,
     * the layer keeps K and V as they were BEFORE on_kv (after RoPE) and
     * query i reads the tokens kv_keep(user, layer, i, idx) lists (returns
     * their count; idx ascending in 0..i, capacity i + 1) at those values
     * in both Q K^T and P V, every other token as on_kv left it. NULL: the
     * attention reads K and V as on_kv left them (no extra work). */
    int64_t (*kv_keep)(void *user, int layer, int64_t i, int64_t *idx);
    /* on_q: Q after RoPE, [T, n_heads * head_dim] row-major, mutable,
     * called right before on_kv (SpinQuant's R3: a head_dim Hadamard on Q
     * and K, sim/online.h). */
    int (*on_q)(void *user, int layer, float *q, int64_t T, int64_t n_heads, int64_t head_dim,
                xf_error *err);
} xf_forward_hooks;

/* ---- layer-level forward ---------------------------------------------- */

/* Attention scores held at once by a workspace: heads are processed in
 * chunks whose [T, T] score matrices fit this (at least one head). */
#define XF_WORKSPACE_SCORE_BYTES ((size_t)256 << 20)

/* Scratch buffers for T <= max_T tokens of one architecture, plus the
 * RoPE tables (llama family). Owned; not shared between threads. */
typedef struct xf_workspace {
    xf_model_config cfg;
    int64_t max_T;
    int64_t q_dim, kv_dim;  /* n_heads * head_dim, n_kv_heads * head_dim */
    float *x;               /* [max_T, hidden] input of a block (normed, or a copy of h) */
    float *q, *k, *v;       /* [max_T, q_dim], [max_T, kv_dim] x2 */
    float *qkv;             /* [max_T, 3 * hidden], fused c_attn only */
    float *attn;            /* [max_T, q_dim] attention output */
    float *mlp_a, *mlp_b;   /* [max_T, intermediate] (mlp_b: gated MLPs) */
    float *y;               /* [max_T, hidden] block output before the residual */
    float *row;             /* [hidden] embedding row */
    float *rope_cos, *rope_sin; /* [max_T, head_dim / 2], NULL without RoPE */
    float *scores;          /* [score_heads, max_T, max_T] attention scores */
    int64_t score_heads;    /* heads whose scores are held at once */
    /* kv_keep hooks only, allocated on first use: K/V before on_kv
     * [max_T, kv_dim] x2, kept-token scratch [max_T] */
    float *k_full, *v_full;
    int64_t *keep_idx;
} xf_workspace;

/* Checks the head/dimension arithmetic of cfg (fails naming `what`). */
int xf_workspace_init(xf_workspace *ws, const xf_model_config *cfg, int64_t max_T,
                      const char *what, xf_error *err);
/* The same with the attention scores held within score_bytes instead of
 * XF_WORKSPACE_SCORE_BYTES (several workspaces side by side share it);
 * the result does not depend on it (heads are independent). */
int xf_workspace_init_scores(xf_workspace *ws, const xf_model_config *cfg, int64_t max_T,
                             size_t score_bytes, const char *what, xf_error *err);
void xf_workspace_free(xf_workspace *ws);

/* h [T, hidden] = token embeddings (+ learned position embeddings at
 * positions 0..T-1, OPT offset included), looked up row by row from the
 * tensors (never densified). Fails on an out-of-range token id. */
int xf_forward_embed(xf_workspace *ws, const xf_model_weights *mw, const int32_t *tokens,
                     int64_t T, float *h, xf_error *err);

/* Runs one decoder layer in place on h [T, hidden]. hooks may be NULL. */
int xf_forward_layer(xf_workspace *ws, const xf_dense_layer *dl, float *h, int64_t T,
                     const xf_forward_hooks *hooks, xf_error *err);

/* Where one decoder layer's forward pass stands: before the layer, at one
 * of its four linear inputs (model/linear_inputs.h; that input's hook has
 * been called, the linears reading it have not run), or after the layer.
 * A pass can stop at a point and resume from it later, with the linears
 * that read the pending input replaced in between (true-sequential GPTQ
 * quantizes them there): the state at a point is h plus the pending input,
 * which lives in the workspace (xf_forward_pending_input). */
typedef enum xf_layer_point {
    XF_AT_START = 0, /* h holds the layer's input */
    XF_AT_QKV,       /* = XF_AT_START + 1 + XF_IN_QKV, and so on */
    XF_AT_O,
    XF_AT_MLP,
    XF_AT_DOWN,
    XF_AT_END        /* h holds the layer's output */
} xf_layer_point;

static inline xf_layer_point xf_layer_point_at(xf_lin_input in)
{
    return (xf_layer_point)(XF_AT_QKV + (int)in);
}

/* Runs layer dl on h [T, hidden] from point `from` to point `to` (from <
 * to), calling the hooks met on the way. A span starting at an input reads
 * it from the workspace buffer xf_forward_pending_input names (the caller
 * puts it back there when it resumes another window in between); one
 * ending at an input leaves it there. xf_forward_layer is the span START
 * -> END. Returns 0, -1, or XF_HOOK_STOP when a hook stopped it (h and
 * the workspace then hold partial results). */
int xf_forward_layer_span(xf_workspace *ws, const xf_dense_layer *dl, float *h, int64_t T,
                          xf_layer_point from, xf_layer_point to, const xf_forward_hooks *hooks,
                          xf_error *err);
/* The workspace buffer holding the input pending at point `at`, [T, *cols]
 * row-major (ws->x, ws->attn, ws->x, ws->mlp_a); NULL (cols 0) at START and
 * END. */
float *xf_forward_pending_input(xf_workspace *ws, xf_layer_point at, int64_t *cols);

/* logits [T, vocab] = head(final_norm(h)); h is left unchanged. */
int xf_forward_final(xf_workspace *ws, const xf_dense_head *hd, const float *h, int64_t T,
                     float *logits, xf_error *err);
/* The same for rows first_row..T-1 only: logits [T - first_row, vocab]
 * (row i of logits is position first_row + i), each row the same bytes as
 * xf_forward_final's. An evaluation that scores only the later positions
 * (llama.cpp's protocol scores the second half) skips the head's product
 * for the others. 0 <= first_row < T. */
int xf_forward_final_rows(xf_workspace *ws, const xf_dense_head *hd, const float *h, int64_t T,
                          int64_t first_row, float *logits, xf_error *err);

/* ---- model-level runner ------------------------------------------------ */

#define XF_RUNNER_DEFAULT_CACHE_BYTES ((size_t)4 << 30)

/* The scratch of one window evaluated beside others (xf_runner_forward_windows). */
typedef struct xf_runner_slot {
    xf_workspace ws;
    float *h;                   /* [max_T, hidden] */
} xf_runner_slot;

typedef struct xf_runner {
    const xf_model_weights *mw; /* borrowed; must outlive the runner */
    xf_workspace ws;
    xf_dense_head head;
    xf_dense_layer *layers;     /* all layers when cached, else NULL */
    float *h;                   /* [max_T, hidden] */
    xf_runner_slot *slots;      /* scratch of forward_windows' threads 1.., made on first use */
    int n_slots;
} xf_runner;

/* Caches every layer in fp32 when their total size is <= cache_bytes
 * (0: XF_RUNNER_DEFAULT_CACHE_BYTES); otherwise each forward call loads
 * and frees one layer at a time. */
int xf_runner_init(xf_runner *r, const xf_model_weights *mw, int64_t max_T, size_t cache_bytes,
                   xf_error *err);
void xf_runner_free(xf_runner *r);
/* logits [T, vocab] (caller's buffer) for tokens at positions 0..T-1,
 * 1 <= T <= max_T. */
int xf_runner_forward(xf_runner *r, const int32_t *tokens, int64_t T, float *logits,
                      xf_error *err);
/* Same, with hooks on every layer (hooks may be NULL). Returns
 * XF_HOOK_STOP (logits not written) when a hook stopped the pass. */
int xf_runner_forward_hooked(xf_runner *r, const int32_t *tokens, int64_t T,
                             const xf_forward_hooks *hooks, float *logits, xf_error *err);
/* Windows w = 0..n-1 of T tokens each (tokens [n, T]), logits of rows
 * first_row..T-1 of each: logits [n, T - first_row, vocab]. With layers
 * cached, the windows run side by side, one per OpenMP thread, each on its
 * own scratch with OpenBLAS single-threaded (small per-window products gain
 * little from splitting over threads; whole windows in parallel keep every
 * core busy, the elementwise ops and the softmax included). A window's
 * logits are then the same bytes for any thread count and any n (threaded
 * OpenBLAS products differ in the last bits from single-threaded ones, so
 * this holds only here). With layers streamed: one window after another,
 * products threaded. 0 <= first_row < T <= max_T; not from inside an
 * OpenMP parallel region. */
int xf_runner_forward_windows(xf_runner *r, const int32_t *tokens, int64_t n, int64_t T,
                              int64_t first_row, float *logits, xf_error *err);
/* The cached fp32 layer l (its linears may be replaced, see
 * xf_dense_layer), or NULL when layers are not cached. */
xf_dense_layer *xf_runner_cached_layer(xf_runner *r, int l);

#endif
