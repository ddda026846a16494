/* One window through the whole fake-quantized network and back: the part
 * of an end-to-end learner that SpinQuant (e2e_learn.c) and OstQuant
 * (ost_learn.c) share. It owns the forward workspace, the tape, the weight
 * gradients, the quantizer hooks (the recipe's scheme, and the online
 * transforms alone for the full-precision references), one window's
 * buffers and the references a kl / kl-top loss compares with. The model
 * (xf_e2e_model) stays the caller's: each learner builds its effective
 * weights from its own parameters. */
#ifndef XF_QUANT_TRANSFORM_E2E_PASS_H
#define XF_QUANT_TRANSFORM_E2E_PASS_H

#include <stdbool.h>
#include <stdint.h>

#include "core/error.h"
#include "model/backward.h"
#include "sim/act_hooks.h"
#include "sim/online.h"
#include "quant/transform/e2e_rotation.h"
#include "quant/transform/rotate.h"

typedef struct xf_e2e_pass {
    const xf_r1_request *q;
    xf_workspace ws;
    xf_tape tp;
    xf_grads g;               /* the effective weights' gradients */
    xf_act_hooks ah, ah_fp;   /* the recipe's scheme (+ online); online only */
    xf_backward_hooks bh;     /* ah's straight-through estimator */
    int64_t T, V, H, nwin, k; /* window tokens, vocabulary, hidden, windows, kl-top k */
    float *h0, *dh0, *logits, *dlogits; /* one window: [T, H], [T, H], [T, V], [T, V] */
    float *ref;               /* kl: the full-precision logits [nwin, T, V] */
    int32_t *top;             /* kl-top: the full-precision top-k tokens [nwin, T, k] */
    float *top_lp;            /* kl-top: their log-probabilities [nwin, T, k] */
} xf_e2e_pass;

/* For the model m (initialised by the caller; the gradients take the shape
 * of its effective weights) and the request q (kept, not copied): windows
 * min(nsamples, e2e_windows), loss q->e2e_loss. `what` names the learner in
 * errors. On failure the pass is freed. */
int xf_e2e_pass_init(xf_e2e_pass *p, xf_e2e_model *m, const xf_r1_request *q,
                     const xf_online_transforms *online, const char *what, xf_error *err);
void xf_e2e_pass_free(xf_e2e_pass *p);

/* The weight of one window's summed loss when `windows` windows are
 * averaged per position (ce predicts T - 1 positions, kl and kl-top T). */
double xf_e2e_pass_scale(const xf_e2e_pass *p, int64_t windows);

/* Window w's loss through m's effective weights, times `scale`, added to
 * *loss; with grad, the gradients added into p->g and the embedding's
 * contribution to the R1 gradient into G1 [H, H]. */
int xf_e2e_pass_window(xf_e2e_pass *p, xf_e2e_model *m, int64_t w, double scale, bool grad,
                       double *loss, double *G1, xf_error *err);

/* The references of a kl or kl-top loss (nothing for ce), from m as the
 * caller built it: the full-precision model (identity transform, no
 * quantizer; the online transforms on). */
int xf_e2e_pass_reference(xf_e2e_pass *p, xf_e2e_model *m, xf_error *err);

#endif
