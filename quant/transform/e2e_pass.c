/* One window forward and back through the fake-quantized network, shared by
 * the SpinQuant and OstQuant learners (quant/transform/e2e_pass.h). */
#include "quant/transform/e2e_pass.h"

#include <stdlib.h>
#include <string.h>

#include "sim/act_hooks_grad.h"

int xf_e2e_pass_init(xf_e2e_pass *p, xf_e2e_model *m, const xf_r1_request *q,
                     const xf_online_transforms *online, const char *what, xf_error *err)
{
    memset(p, 0, sizeof *p);
    const xf_model_config *c = &m->cfg;
    p->q = q;
    p->T = q->T;
    p->V = c->vocab;
    p->H = c->hidden;
    p->k = q->kl_top_k;
    p->nwin = q->nsamples < q->e2e_windows ? q->nsamples : q->e2e_windows;
    if (q->e2e_loss == XF_ROTATE_LOSS_KL_TOP && (p->k < 1 || p->k > p->V))
        return xf_fail(err, "--kl-top-k %lld: must be in 1..%lld (the vocabulary)",
                       (long long)p->k, (long long)p->V);
    xf_act_scheme off;
    xf_act_scheme_default(&off);
    if (xf_workspace_init(&p->ws, c, p->T, what, err) != 0 ||
        xf_tape_init(&p->tp, c, p->T, q->act && q->act->attn_prob_bits > 0, err) != 0 ||
        xf_grads_init(&p->g, m->eff, (int)c->n_layers, &m->eff_head, err) != 0 ||
        xf_act_hooks_init_online(&p->ah, q->act ? q->act : &off, online, NULL, err) != 0 ||
        xf_act_hooks_init_online(&p->ah_fp, &off, online, NULL, err) != 0) {
        xf_e2e_pass_free(p);
        return -1;
    }
    xf_act_hooks_backward(&p->ah, q->e2e_ste_scale, &p->bh);
    const size_t TH = (size_t)(p->T * p->H), TV = (size_t)(p->T * p->V);
    p->h0 = malloc(TH * sizeof *p->h0);
    p->dh0 = malloc(TH * sizeof *p->dh0);
    p->logits = malloc(TV * sizeof *p->logits);
    p->dlogits = malloc(TV * sizeof *p->dlogits);
    bool ok = p->h0 && p->dh0 && p->logits && p->dlogits;
    if (q->e2e_loss == XF_ROTATE_LOSS_KL)
        ok = ok && (p->ref = malloc((size_t)p->nwin * TV * sizeof *p->ref));
    if (q->e2e_loss == XF_ROTATE_LOSS_KL_TOP) {
        const size_t n = (size_t)(p->nwin * p->T * p->k);
        ok = ok && (p->top = malloc(n * sizeof *p->top)) &&
             (p->top_lp = malloc(n * sizeof *p->top_lp));
    }
    if (!ok) {
        xf_e2e_pass_free(p);
        return xf_fail(err, "%s: out of memory for %lld windows", what, (long long)p->nwin);
    }
    return 0;
}

void xf_e2e_pass_free(xf_e2e_pass *p)
{
    xf_workspace_free(&p->ws);
    xf_tape_free(&p->tp);
    xf_grads_free(&p->g);
    xf_act_hooks_free(&p->ah);
    xf_act_hooks_free(&p->ah_fp);
    free(p->h0);
    free(p->dh0);
    free(p->logits);
    free(p->dlogits);
    free(p->ref);
    free(p->top);
    free(p->top_lp);
    memset(p, 0, sizeof *p);
}

double xf_e2e_pass_scale(const xf_e2e_pass *p, int64_t windows)
{
    const int64_t pos = p->q->e2e_loss == XF_ROTATE_LOSS_CE ? p->T - 1 : p->T;
    return 1.0 / ((double)windows * (double)(pos > 0 ? pos : 1));
}

int xf_e2e_pass_window(xf_e2e_pass *p, xf_e2e_model *m, int64_t w, double scale, bool grad,
                       double *loss, double *G1, xf_error *err)
{
    const int32_t *tok = p->q->tokens + w * p->T;
    if (xf_e2e_embed(m, tok, p->T, p->h0, err) != 0 ||
        xf_tape_forward(&p->tp, &p->ws, m->eff, &m->eff_head, p->h0, p->T, &p->ah.hooks,
                        p->logits, err) != 0)
        return -1;
    const size_t off = (size_t)(w * p->T);
    switch (p->q->e2e_loss) {
    case XF_ROTATE_LOSS_KL:
        xf_loss_kl(p->logits, p->ref + off * (size_t)p->V, p->T, p->V, scale, loss, p->dlogits);
        break;
    case XF_ROTATE_LOSS_KL_TOP:
        xf_loss_kl_top(p->logits, p->top + off * (size_t)p->k, p->top_lp + off * (size_t)p->k,
                       p->T, p->V, p->k, scale, loss, p->dlogits);
        break;
    default:
        xf_loss_next_token_ce(p->logits, tok, p->T, p->V, scale, loss, p->dlogits);
    }
    if (!grad)
        return 0;
    if (xf_tape_backward(&p->tp, m->eff, &m->eff_head, p->dlogits, &p->bh, &p->g, p->dh0,
                         err) != 0)
        return -1;
    xf_e2e_grad_embed(m, tok, p->T, p->dh0, G1);
    return 0;
}

int xf_e2e_pass_reference(xf_e2e_pass *p, xf_e2e_model *m, xf_error *err)
{
    if (!p->ref && !p->top)
        return 0;
    for (int64_t w = 0; w < p->nwin; w++) {
        const int32_t *tok = p->q->tokens + w * p->T;
        float *out = p->ref ? p->ref + (size_t)(w * p->T * p->V) : p->logits;
        if (xf_e2e_embed(m, tok, p->T, p->h0, err) != 0 ||
            xf_tape_forward(&p->tp, &p->ws, m->eff, &m->eff_head, p->h0, p->T, &p->ah_fp.hooks,
                            out, err) != 0)
            return -1;
        if (p->top)
            xf_kl_top_reference(out, p->T, p->V, p->k, p->top + (size_t)(w * p->T * p->k),
                                p->top_lp + (size_t)(w * p->T * p->k));
    }
    return 0;
}
