/* Residual rotation, head-wise v/o Hadamard and the fused half of the
 * online down_proj Hadamard (steps 2-4 of quant/rotate.h). */
#include "quant/rotate.h"

#include <stdlib.h>
#include <string.h>

#include "quant/hadamard.h"
#include "quant/rotate_mat.h"

static const char *const kind_names[] = {"none", "hadamard", "learned", "klt"};

const char *xf_rotate_kind_name(xf_rotate_kind k)
{
    return (unsigned)k < sizeof kind_names / sizeof *kind_names ? kind_names[k] : NULL;
}

int xf_rotate_kind_from_name(const char *name, xf_rotate_kind *out)
{
    for (size_t i = 0; i < sizeof kind_names / sizeof *kind_names; i++)
        if (!strcmp(name, kind_names[i])) {
            *out = (xf_rotate_kind)i;
            return 0;
        }
    return -1;
}

int xf_rotate_supported(const xf_model_config *cfg, bool online_down, const char *what,
                        xf_error *err)
{
    if (cfg->family != XF_FAMILY_LLAMA)
        return xf_fail(err, "%s: rotations are implemented for the llama family (RMSNorm) only, "
                            "not %s",
                       what, cfg->model_type);
    int64_t p, m;
    if (xf_hadamard_factor(cfg->hidden, &p, &m, err) != 0)
        return xf_fail_prefix(err, "%s: no Hadamard for hidden size %lld", what,
                              (long long)cfg->hidden);
    if (xf_hadamard_factor(cfg->head_dim, &p, &m, err) != 0)
        return xf_fail_prefix(err, "%s: no Hadamard for head_dim %lld", what,
                              (long long)cfg->head_dim);
    if (online_down && xf_hadamard_factor(cfg->intermediate, &p, &m, err) != 0)
        return xf_fail_prefix(err, "%s: no Hadamard for intermediate size %lld", what,
                              (long long)cfg->intermediate);
    return 0;
}

static int reader(xf_model_edit *e, const xf_linear *lin, const double *R, xf_error *err)
{
    xf_rmat w;
    if (!lin->w)
        return 0;
    if (xf_rmat_weight(&w, e, lin, err) != 0 || xf_rmat_right(&w, R, err) != 0) {
        xf_rmat_free(&w);
        return -1;
    }
    xf_rmat_put(&w);
    return 0;
}

static int writer(xf_model_edit *e, const xf_linear *lin, const double *R, xf_error *err)
{
    xf_rmat w;
    if (xf_rmat_weight(&w, e, lin, err) != 0 || xf_rmat_left_t(&w, R, err) != 0) {
        xf_rmat_free(&w);
        return -1;
    }
    xf_rmat_put(&w);
    if (lin->b) {
        if (xf_rmat_tensor(&w, e, lin->b, 1, lin->out, err) != 0 ||
            xf_rmat_right(&w, R, err) != 0) {
            xf_rmat_free(&w);
            return -1;
        }
        xf_rmat_put(&w);
    }
    return 0;
}

static int residual(xf_model_edit *e, const double *R, xf_error *err)
{
    const xf_model_weights *mw = &e->m->weights;
    xf_rmat emb;
    if (xf_rmat_tensor(&emb, e, mw->tok_embed, mw->cfg.vocab, mw->cfg.hidden, err) != 0 ||
        xf_rmat_right(&emb, R, err) != 0) {
        xf_rmat_free(&emb);
        return -1;
    }
    xf_rmat_put(&emb);
    for (int64_t l = 0; l < mw->cfg.n_layers; l++) {
        const xf_layer_weights *L = &mw->layers[l];
        static const xf_linear_role readers[] = {XF_LIN_Q, XF_LIN_K, XF_LIN_V, XF_LIN_GATE,
                                                 XF_LIN_UP};
        for (size_t k = 0; k < sizeof readers / sizeof *readers; k++)
            if (reader(e, &L->lin[readers[k]], R, err) != 0)
                return -1;
        if (writer(e, &L->lin[XF_LIN_O], R, err) != 0 ||
            writer(e, &L->lin[XF_LIN_DOWN], R, err) != 0)
            return -1;
    }
    return reader(e, &mw->lm_head, R, err);
}

/* rows of a [rows, n*d] fp64 matrix seen as [rows*n, d]: x -> x H_d */
static int per_head_right(const xf_hadamard *h, xf_rmat *w, xf_error *err)
{
    return xf_hadamard_rows_f64(h, w->a, w->rows * (w->cols / h->n), false, err);
}

static int headwise_vo(xf_model_edit *e, xf_error *err)
{
    const xf_model_weights *mw = &e->m->weights;
    const int64_t hd = mw->cfg.head_dim;
    xf_hadamard h;
    if (xf_hadamard_init(&h, hd, err) != 0)
        return -1;
    int rc = 0;
    for (int64_t l = 0; l < mw->cfg.n_layers && rc == 0; l++) {
        const xf_linear *v = &mw->layers[l].lin[XF_LIN_V], *o = &mw->layers[l].lin[XF_LIN_O];
        xf_rmat w = {0};
        /* v: each head's output slice y_h -> y_h H, i.e. W_v^T's rows (per
         * head slice) from the right: transpose, transform, transpose back */
        if (xf_rmat_weight(&w, e, v, err) != 0) {
            rc = -1;
            break;
        }
        xf_rmat t;
        memset(&t, 0, sizeof t);
        t.rows = w.cols;
        t.cols = w.rows;
        t.a = malloc((size_t)(w.rows * w.cols) * sizeof *t.a);
        if (!t.a) {
            xf_rmat_free(&w);
            rc = xf_fail(err, "out of memory");
            break;
        }
        for (int64_t r = 0; r < w.rows; r++)
            for (int64_t c = 0; c < w.cols; c++)
                t.a[c * w.rows + r] = w.a[r * w.cols + c];
        rc = per_head_right(&h, &t, err);
        for (int64_t r = 0; r < w.rows && rc == 0; r++)
            for (int64_t c = 0; c < w.cols; c++)
                w.a[r * w.cols + c] = t.a[c * w.rows + r];
        free(t.a);
        if (rc != 0) {
            xf_rmat_free(&w);
            break;
        }
        xf_rmat_put(&w);
        if (v->b) {
            if (xf_rmat_tensor(&w, e, v->b, 1, v->out, err) != 0 ||
                per_head_right(&h, &w, err) != 0) {
                xf_rmat_free(&w);
                rc = -1;
                break;
            }
            xf_rmat_put(&w);
        }
        /* o: the matching input columns of every head, W_o -> W_o H per slice */
        if (xf_rmat_weight(&w, e, o, err) != 0 || per_head_right(&h, &w, err) != 0) {
            xf_rmat_free(&w);
            rc = -1;
            break;
        }
        xf_rmat_put(&w);
    }
    xf_hadamard_free(&h);
    return rc;
}

static int online_down(xf_model_edit *e, xf_online_transforms *online, xf_error *err)
{
    const xf_model_weights *mw = &e->m->weights;
    if (xf_online_enable_down(online, &mw->cfg, err) != 0)
        return -1;
    for (int64_t l = 0; l < mw->cfg.n_layers; l++) {
        xf_rmat w;
        if (xf_rmat_weight(&w, e, &mw->layers[l].lin[XF_LIN_DOWN], err) != 0 ||
            xf_hadamard_rows_f64(&online->down_had, w.a, w.rows, false, err) != 0) {
            xf_rmat_free(&w);
            return -1;
        }
        xf_rmat_put(&w);
    }
    return 0;
}

int xf_rotate_apply(xf_model_edit *e, const double *R1, bool headwise, xf_online_transforms *online,
                    xf_error *err)
{
    if (xf_rotate_supported(&e->m->cfg, online != NULL, e->m->path, err) != 0)
        return -1;
    if (R1 && residual(e, R1, err) != 0)
        return -1;
    if (headwise && headwise_vo(e, err) != 0)
        return -1;
    if (online && online_down(e, online, err) != 0)
        return -1;
    return xf_model_edit_commit(e, err);
}
