#include "pipeline/quantize_model.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "calib/calib_windows.h"
#include "calib/sampling.h"
#include "core/log.h"
#include "core/progress.h"
#include "pipeline/gptq_progress.h"
#include "model/block_stream.h"
#include "model/forward.h"
#include "model/ops.h"
#include "quant/search/act_calib.h"
#include "sim/act_hooks.h"
#include "quant/weights/gptq.h"
#include "pipeline/gguf_plan.h"
#include "pipeline/dist_qweight.h"
#include "pipeline/dist_sums.h"
#include "pipeline/gptq_checkpoint.h"
#include "pipeline/gptq_memory.h"
#include "pipeline/recipe_options.h"
#include "pipeline/token_weights.h"
#include "quant/weights/gptq_v2.h"
#include "quant/weights/hessian.h"
#include "quant/weights/token_weight.h"
#include "quant/transform/rotate.h"
#include "quant/transform/ost.h"
#include "quant/weights/rtn.h"
#include "quant/transform/repquant.h"
#include "quant/transform/smooth.h"
#include "quant/search/smooth_search.h"
#include "pipeline/xfq_out.h"

/* Bits of one tensor under the --tensor-bits rules (validated up front by
 * xf_quantize_model, so a compile failure here cannot happen; it falls
 * back to the default bits). Compiled per call: a few regexes per tensor
 * cost nothing next to quantizing it, and no state is kept. */
static int bits_for(const xf_quant_options *o, const char *name)
{
    if (o->n_tensor_bits == 0)
        return o->grid.bits;
    xf_tensor_bits tb;
    xf_error e = {0};
    if (xf_tensor_bits_init(&tb, o->tensor_bits, o->n_tensor_bits, &e) != 0)
        return o->grid.bits;
    int b = xf_tensor_bits_for(&tb, name, o->grid.bits);
    xf_tensor_bits_free(&tb);
    return b;
}

static json_t *recipe_json(const xf_quant_options *o)
{
    json_t *r = json_pack("{s:s, s:i, s:I, s:b, s:s, s:b, s:o, s:[]}", "method",
                          o->method == XF_METHOD_GPTQ ? "gptq" : "rtn", "bits", o->grid.bits,
                          "group_size", (json_int_t)o->group, "sym", o->grid.sym, "clip",
                          xf_clip_name(o->grid.clip), "quantize_head", o->quantize_head,
                          "rotation", json_null(), "online_transforms");
    if (o->gguf) /* absent otherwise: those files stay byte-identical */
        json_object_set_new(r, "gguf_type", json_string(xf_gguf_ftype_name(o->gguf_ftype)));
    if (o->weight_grid_log2) /* absent for uniform: those files stay byte-identical */
        json_object_set_new(r, "weight_grid", json_string("log2"));
    if (o->weight_grid_razor) {
        json_object_set_new(r, "weight_grid", json_string("razor"));
        json_object_set_new(r, "razor_group", json_integer(o->act.razor_group));
        json_object_set_new(r, "razor_base_bits", json_integer(8));
    }
    if (o->outliers > 0) /* absent at 0: such files stay byte-identical to older ones */
        json_object_set_new(r, "outliers", json_real(o->outliers));
    if (!xf_act_scheme_is_off(&o->act))
        json_object_set_new(r, "activations", xf_act_scheme_to_json(&o->act));
    if (o->n_tensor_bits > 0) {
        xf_tensor_bits tb;
        xf_error e = {0};
        if (xf_tensor_bits_init(&tb, o->tensor_bits, o->n_tensor_bits, &e) == 0) {
            json_object_set_new(r, "tensor_bits", xf_tensor_bits_to_json(&tb));
            xf_tensor_bits_free(&tb);
        }
    }
    /* the options as given (recipe_options.h): `--recipe` reads them back */
    json_object_set_new(r, "options", xf_quant_options_to_json(o));
    if (o->method == XF_METHOD_GPTQ) {
        json_object_set_new(r, "act_order", json_boolean(o->act_order));
        json_object_set_new(r, "static_groups", json_boolean(o->static_groups));
        json_object_set_new(r, "damp", json_real(o->damp));
        json_object_set_new(r, "block", json_integer(o->block));
        json_object_set_new(r, "true_sequential", json_true());
        json_object_set_new(r, "gptq_v2", json_boolean(o->gptq_v2));
    }
    return r;
}

/* ---- RTN ---------------------------------------------------------------- */

/* The "qerr" stat of a tensor: its rows' squared errors
 * (xf_rtn_row_sq_error) summed in row order, so the value (and the .xfq
 * bytes) do not depend on the thread count. */
static double sum_rows(const double *row_err, int64_t rows)
{
    double s = 0.0;
    for (int64_t r = 0; r < rows; r++)
        s += row_err[r];
    return s;
}

/* Plain RTN straight from the stored rows of t (xf_rtn_quantize_rows: no
 * fp32 copy of the tensor). */
static int rtn_rows(const xf_rtn_params *p, const xf_tensor *t, const char *name,
                    xf_quant_collector *col, xf_error *err)
{
    const int64_t rows = t->shape[0];
    double *row_err = malloc((size_t)rows * sizeof *row_err);
    if (!row_err)
        return xf_fail(err, "%s: out of memory", name);
    xf_qweight q;
    int rc = xf_rtn_quantize_rows(t, p, &q, row_err, name, err);
    if (rc == 0) {
        const double qerr = sum_rows(row_err, rows);
        rc = xf_quant_collector_add(col, &q, name, json_pack("{s:f}", "qerr", qerr), err);
        xf_qweight_free(&q);
    }
    free(row_err);
    return rc;
}

/* Round to nearest on GGML grid gg (what llama-quantize does without an
 * imatrix), W [rows, cols] fp32. */
static int rtn_ggml(const xf_ggml_grid_traits *gg, const float *W, int64_t rows, int64_t cols,
                    const char *name, xf_quant_collector *col, xf_error *err)
{
    xf_qweight q;
    if (xf_qweight_init_ggml(&q, rows, cols, gg, name, err) != 0)
        return -1;
    double *row_err = malloc((size_t)rows * sizeof *row_err);
    if (!row_err) {
        xf_qweight_free(&q);
        return xf_fail(err, "%s: out of memory", name);
    }
#pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < rows; r++) {
        float dq[XF_GGML_QK_K];
        double e = 0.0;
        for (int64_t c0 = 0; c0 < cols; c0 += gg->block) {
            const float *x = W + r * cols + c0;
            xf_ggml_grid_quantize_row(gg, x, NULL, gg->block,
                                      xf_qweight_block(&q, r, c0 / gg->block), dq);
            e += xf_rtn_row_sq_error(x, dq, gg->block);
        }
        row_err[r] = e;
    }
    const double qerr = sum_rows(row_err, rows);
    free(row_err);
    int rc = xf_quant_collector_add(col, &q, name, json_pack("{s:f}", "qerr", qerr), err);
    xf_qweight_free(&q);
    return rc;
}

/* gg: quantize onto this GGML grid (--gguf-type) instead of o's grid. A
 * packed t (a re-quantized .xfq) converts with the outliers its view carries. */
static int rtn_tensor(const xf_quant_options *o, const xf_tensor *t, bool transposed,
                      const char *name, const xf_ggml_grid_traits *gg, xf_quant_collector *col,
                      xf_error *err)
{
    int64_t rows = transposed ? t->shape[1] : t->shape[0];
    int64_t cols = transposed ? t->shape[0] : t->shape[1];
    xf_rtn_params p = {o->grid, o->group, false, o->outliers, o->weight_grid_log2,
                       o->weight_grid_razor, o->act.razor_group};
    p.grid.bits = bits_for(o, name);
    if (!gg && !transposed && t->ndim == 2 && xf_rtn_streamable(&p, rows, cols))
        return rtn_rows(&p, t, name, col, err);
    float *W = malloc((size_t)(rows * cols) * sizeof *W);
    if (!W)
        return xf_fail(err, "%s: out of memory", name);
    if (xf_tensor_to_f32(t, W, err) != 0) {
        free(W);
        return -1;
    }
    if (transposed) {
        float *tr = malloc((size_t)(rows * cols) * sizeof *tr);
        if (!tr) {
            free(W);
            return xf_fail(err, "%s: out of memory", name);
        }
        for (int64_t i = 0; i < cols; i++)
            for (int64_t j = 0; j < rows; j++)
                tr[j * cols + i] = W[i * rows + j];
        free(W);
        W = tr;
    }
    if (gg) {
        int rc = rtn_ggml(gg, W, rows, cols, name, col, err);
        free(W);
        return rc;
    }
    xf_qweight q;
    int rc = xf_rtn_quantize(W, rows, cols, &p, &q, name, err);
    if (rc == 0) {
        double *row_err = malloc((size_t)rows * sizeof *row_err);
        double qerr = 0.0;
        if (row_err) {
            int oom = 0;
#pragma omp parallel reduction(| : oom)
            {
                float *dq = malloc((size_t)cols * sizeof *dq);
                oom |= !dq;
#pragma omp for schedule(static)
                for (int64_t r = 0; r < rows; r++) {
                    row_err[r] = 0.0;
                    if (dq) {
                        xf_qweight_dequantize_row(&q, r, dq);
                        row_err[r] = xf_rtn_row_sq_error(W + r * cols, dq, cols);
                    }
                }
                free(dq);
            }
            qerr = oom ? 0.0 : sum_rows(row_err, rows);
            free(row_err);
        }
        rc = xf_quant_collector_add(col, &q, name, json_pack("{s:f}", "qerr", qerr), err);
        xf_qweight_free(&q);
    }
    free(W);
    return rc;
}

/* The grid of tensor t: its GGML type under --gguf-type (NULL: keep it
 * unquantized; *skip set), else the uniform grid of o (NULL, *skip false). */
static const xf_ggml_grid_traits *plan_grid(const xf_gguf_type_plan *plan, const xf_tensor *t,
                                            bool *skip)
{
    *skip = false;
    if (!plan)
        return NULL;
    const xf_ggml_grid_traits *gg = xf_gguf_type_plan_grid(plan, t, NULL);
    *skip = gg == NULL;
    return gg;
}

/* --gguf-type: the tensors GPTQ has no Hessian for but llama-quantize
 * quantizes (token_embd; a tied output is the same tensor), round to
 * nearest on their planned grid. */
static int rtn_embeddings(const xf_model_weights *mw, const xf_gguf_type_plan *plan,
                          xf_quant_collector *col, xf_error *err)
{
    bool skip;
    const xf_ggml_grid_traits *gg = plan_grid(plan, mw->tok_embed, &skip);
    if (skip)
        return 0;
    xf_quant_options none;
    xf_quant_options_defaults(&none, XF_METHOD_RTN);
    return rtn_tensor(&none, mw->tok_embed, false, mw->tok_embed->name, gg, col, err);
}

static int quantize_rtn(xf_loaded_model *m, const xf_quant_options *o,
                        const xf_gguf_type_plan *plan, xf_quant_collector *col, xf_error *err)
{
    const xf_model_weights *mw = &m->weights;
    xf_progress prog;
    xf_progress_init(&prog, "rtn: layer");
    for (int64_t l = 0; l < mw->cfg.n_layers; l++) {
        for (int r = 0; r < XF_LIN_COUNT; r++) {
            const xf_linear *lin = &mw->layers[l].lin[r];
            if (!lin->w)
                continue;
            bool skip;
            const xf_ggml_grid_traits *gg = plan_grid(plan, lin->w, &skip);
            if (!skip &&
                rtn_tensor(o, lin->w, lin->transposed, lin->w->name, gg, col, err) != 0)
                return -1;
        }
        xf_progress_update(&prog, l + 1, mw->cfg.n_layers, 0, NULL);
    }
    xf_progress_finish(&prog);
    if (plan) {
        if (rtn_embeddings(mw, plan, col, err) != 0)
            return -1;
        if (mw->lm_head.w == mw->tok_embed || m->cfg.tie_embeddings)
            return 0;
        bool skip;
        const xf_ggml_grid_traits *gg = plan_grid(plan, mw->lm_head.w, &skip);
        return skip ? 0
                    : rtn_tensor(o, mw->lm_head.w, mw->lm_head.transposed, mw->lm_head.w->name,
                                 gg, col, err);
    }
    if (o->quantize_head)
        return rtn_tensor(o, mw->lm_head.w, mw->lm_head.transposed, mw->lm_head.w->name, NULL,
                          col, err);
    return 0;
}

/* ---- GPTQ --------------------------------------------------------------- */

static json_t *gptq_stats_json(const xf_gptq_stats *s)
{
    return json_pack("{s:f, s:f, s:f, s:I, s:i}", "damp", s->damp_used, "loss", s->loss, "qerr",
                     s->qerr, "dead_columns", (json_int_t)s->dead_columns, "retries", s->retries);
}

static void gptq_params_from(const xf_quant_options *o, xf_gptq_params *p)
{
    xf_gptq_params_default(p);
    p->grid = o->grid;
    p->group = o->group;
    p->act_order = o->act_order;
    p->static_groups = o->static_groups;
    p->damp = o->damp;
    p->block = o->block;
    p->outliers = o->outliers;
    /* razor group 0 (one run per row): a run as wide as any row */
    p->razor_group = !o->weight_grid_razor      ? 0
                     : o->act.razor_group > 0 ? o->act.razor_group
                                              : INT64_MAX;
}

/* gptq_linears in an MPI job: the j-th linear to quantize is solved by
 * rank j mod size (q/k/v, gate/up: independent solves of one Hessian);
 * its dequantized weights are broadcast, so every rank continues with the
 * quantized layer, and rank 0 gets the quantized container itself and adds
 * it to col in the linears' order (pipeline/dist_qweight.h): the bytes of
 * one process. Collective; every failure agreed on. */
static int gptq_linears_dist(const xf_quant_options *o, const xf_gguf_type_plan *plan,
                             float *const *W, const int64_t *rows, const xf_tensor *const *src,
                             const char *const *names, int n, int64_t cols, const double *H,
                             xf_dist *d, xf_quant_collector *col, xf_error *err)
{
    xf_gptq_params p;
    gptq_params_from(o, &p);
    int owner[XF_IN_MAX_READERS];
    const xf_ggml_grid_traits *gg[XF_IN_MAX_READERS];
    bool mine = false;
    for (int k = 0, j = 0; k < n; k++) {
        bool skip;
        gg[k] = plan_grid(plan, src[k], &skip);
        owner[k] = skip ? -1 : j++ % d->size;
        mine = mine || owner[k] == d->rank;
    }
    xf_qweight q[XF_IN_MAX_READERS];
    xf_gptq_stats st[XF_IN_MAX_READERS];
    bool have[XF_IN_MAX_READERS] = {false};
    int rc = 0;
    if (mine) {
        xf_gptq_factor f;
        const int frc = xf_gptq_factor_init(&f, H, cols, &p, names[0], err);
        rc = frc;
        for (int k = 0; k < n && rc == 0; k++) {
            if (owner[k] != d->rank)
                continue;
            p.ggml = gg[k];
            p.grid.bits = bits_for(o, names[k]);
            rc = xf_gptq_solve_factored(W[k], rows[k], &f, &p, &q[k], &st[k], names[k], err);
            have[k] = rc == 0;
        }
        if (frc == 0)
            xf_gptq_factor_free(&f);
    }
    rc = xf_dist_agree(d, rc, err);
    for (int k = 0; k < n && rc == 0; k++) {
        if (owner[k] < 0)
            continue;
        rc = xf_dist_agree(
            d, xf_dist_bcast(d, owner[k], W[k], (size_t)(rows[k] * cols) * sizeof *W[k], err),
            err);
        int r = 0;
        if (rc == 0 && owner[k] != 0 && d->rank == owner[k])
            r = xf_dist_send_qweight(d, 0, &q[k], &st[k], err);
        if (rc == 0 && owner[k] != 0 && d->rank == 0) {
            r = xf_dist_recv_qweight(d, owner[k], &q[k], &st[k], gg[k], names[k], err);
            have[k] = r == 0;
        }
        if (rc == 0)
            rc = xf_dist_agree(d, r, err);
        if (rc == 0)
            rc = xf_dist_agree(d,
                               d->rank == 0 ? xf_quant_collector_add(col, &q[k], names[k],
                                                                     gptq_stats_json(&st[k]), err)
                                            : 0,
                               err);
    }
    for (int k = 0; k < n; k++)
        if (have[k])
            xf_qweight_free(&q[k]);
    return rc;
}

/* GPTQ on the fp32 weights W [out, in] of the linears sharing one input
 * (one factorization of its Hessian H); each W is replaced by its
 * dequantized quantization, so later passes see the quantized layer. In an
 * MPI job (d with several ranks) the solves are dealt to the ranks
 * (gptq_linears_dist), except with outlier tables, which every rank solves
 * alike. */
static int gptq_linears(const xf_quant_options *o, const xf_gguf_type_plan *plan,
                        float *const *W, const int64_t *rows, const xf_tensor *const *src,
                        const char *const *names, int n, int64_t cols, const double *H,
                        xf_dist *d, xf_quant_collector *col, xf_error *err)
{
    if (d->size > 1 && o->outliers <= 0)
        return gptq_linears_dist(o, plan, W, rows, src, names, n, cols, H, d, col, err);
    xf_gptq_params p;
    gptq_params_from(o, &p);
    bool any = false;
    for (int k = 0; k < n; k++) {
        bool skip;
        plan_grid(plan, src[k], &skip);
        any = any || !skip;
    }
    if (!any) /* --gguf-type keeps all of them unquantized */
        return 0;
    xf_gptq_factor f;
    if (xf_gptq_factor_init(&f, H, cols, &p, names[0], err) != 0)
        return -1;
    int rc = 0;
    for (int k = 0; k < n && rc == 0; k++) {
        xf_qweight q;
        xf_gptq_stats st;
        bool skip;
        p.ggml = plan_grid(plan, src[k], &skip);
        if (skip)
            continue;
        p.grid.bits = bits_for(o, names[k]);
        rc = xf_gptq_solve_factored(W[k], rows[k], &f, &p, &q, &st, names[k], err);
        if (rc == 0) {
            rc = xf_quant_collector_add(col, &q, names[k], gptq_stats_json(&st), err);
            xf_qweight_free(&q);
        }
    }
    xf_gptq_factor_free(&f);
    return rc;
}

/* The calibration windows (calib/calib_windows.h: the same steps and
 * provenance record as `xfquant stats`), recorded under "calibration". */
static int prepare_calibration(xf_loaded_model *m, const xf_quant_options *o, int64_t seqlen,
                               xf_calib_set *cs, json_t *prov, xf_error *err)
{
    if (!o->calib_path)
        return xf_fail(err, "%s needs calibration text (--calib FILE)",
                       o->method == XF_METHOD_GPTQ ? "gptq" : "this recipe");
    const xf_calib_source src = {o->calib_path, o->calib_field, o->calib_format,
                                 o->nsamples, seqlen, o->seed, o->calib_max_tokens};
    json_t *rec = NULL;
    if (xf_calib_windows_load(cs, m, &src, &rec, err) != 0)
        return -1;
    json_object_set_new(prov, "calibration", rec);
    return 0;
}

/* GPTQ of the LM head on the final norm of the stream's last hidden
 * states. */
static int gptq_head(xf_loaded_model *m, const xf_quant_options *o, const xf_gguf_type_plan *plan,
                     const xf_block_stream *bs, xf_dist *d, xf_gptq_progress *gp,
                     xf_quant_collector *col, xf_error *err)
{
    const int64_t nsamples = bs->ns, T = bs->T;
    const xf_model_weights *mw = &m->weights;
    int64_t hidden = mw->cfg.hidden, vocab = mw->cfg.vocab;
    xf_dense_head hd;
    /* collective from here: every failure agreed on (core/dist.h) */
    const int hrc = xf_dense_head_init(&hd, mw, err);
    if (xf_dist_agree(d, hrc, err) != 0) {
        if (hrc == 0)
            xf_dense_head_free(&hd);
        return -1;
    }
    xf_hessian hs = {0};
    float *x = malloc((size_t)(T * hidden) * sizeof *x);
    double *H = malloc((size_t)(hidden * hidden) * sizeof *H);
    int rc = 0;
    if (!x || !H)
        rc = xf_fail(err, "out of memory for the head Hessian");
    else
        rc = xf_hessian_init(&hs, hidden, err);
    if (xf_dist_agree(d, rc, err) != 0) {
        rc = -1;
        goto out;
    }
    if (d->size > 1)
        xf_hessian_defer(&hs); /* summed along the ranks (pipeline/dist_sums.h) */
    double t0 = xf_now_seconds();
    for (int64_t s = 0; s < nsamples && rc == 0; s++) {
        const float *h = xf_block_stream_hidden(bs, s);
        if (!hd.norm_w)
            memcpy(x, h, (size_t)(T * hidden) * sizeof *x);
        else if (mw->cfg.layer_norm)
            xf_op_layernorm(h, x, T, hidden, hd.norm_w, hd.norm_b, mw->cfg.norm_eps);
        else
            xf_op_rmsnorm(h, x, T, hidden, hd.norm_w, mw->cfg.norm_eps);
        rc = xf_hessian_add(&hs, x, T, err);
    }
    rc = xf_dist_agree(d, rc, err);
    if (rc == 0)
        rc = xf_dist_agree(d, xf_dist_hessian_sum(d, &hs, err), err);
    if (rc == 0)
        rc = xf_dist_agree(d, xf_hessian_finalize(&hs, H, err), err);
    xf_gptq_progress_hessian(gp, t0);
    if (rc == 0) {
        const char *name = mw->lm_head.w->name;
        const xf_tensor *src = mw->lm_head.w;
        t0 = xf_now_seconds();
        rc = xf_dist_agree(
            d, gptq_linears(o, plan, &hd.w, &vocab, &src, &name, 1, hidden, H, d, col, err),
            err);
        xf_gptq_progress_solve(gp, t0);
    }
out:
    xf_hessian_free(&hs);
    free(x);
    free(H);
    xf_dense_head_free(&hd);
    return rc;
}

/* The calibration streams (model/block_stream.h): the model being
 * quantized, with the scheme's hooks (activation quantizers and online
 * transforms: the Hessians see what the quantized linears will read, as in
 * QuaRot), and for GPTQv2 the full-precision model beside it (online
 * transforms only). */
/* Where the quantized stream keeps its states (the memory plan's choice). */
typedef struct stream_place {
    xf_stream_keep keep;
    char *spill_dir; /* NULL: in memory */
} stream_place;

typedef struct gptq_streams {
    xf_block_stream q, fp; /* this rank's windows [first, first + q.ns) */
    bool v2;
    xf_dist *d;
    int64_t first, nsamples; /* nsamples: every rank's windows */
    xf_act_hooks ah_q, ah_fp;
    const xf_forward_hooks *hq, *hf; /* NULL: no hooks */
} gptq_streams;

static void gptq_streams_free(gptq_streams *st)
{
    xf_block_stream_free(&st->q);
    if (st->v2)
        xf_block_stream_free(&st->fp);
    xf_act_hooks_free(&st->ah_q);
    xf_act_hooks_free(&st->ah_fp);
}

static int gptq_streams_init(gptq_streams *st, const xf_loaded_model *m,
                             const xf_quant_options *o, const xf_calib_set *calib, int64_t T,
                             xf_stream_keep keep, const char *spill_dir, xf_dist *d,
                             xf_error *err)
{
    memset(st, 0, sizeof *st);
    st->v2 = o->gptq_v2;
    st->d = d;
    st->nsamples = calib->nsamples;
    int64_t count = calib->nsamples;
    if (xf_dist_windows(d, calib->nsamples, T, &st->first, &count, err) != 0)
        return -1;
    xf_act_scheme fp_scheme; /* the full-precision stream keeps the online transforms */
    xf_act_scheme_default(&fp_scheme);
    fp_scheme.online = o->act.online;
    if (xf_act_hooks_init(&st->ah_q, &o->act, NULL, err) != 0 ||
        xf_act_hooks_init(&st->ah_fp, &fp_scheme, NULL, err) != 0)
        return -1;
    st->hq = xf_act_scheme_needs_hooks(&o->act) ? &st->ah_q.hooks : NULL;
    st->hf = xf_act_scheme_needs_hooks(&fp_scheme) ? &st->ah_fp.hooks : NULL;
    if (xf_block_stream_init(&st->q, &m->weights, calib->tokens + st->first * T, count, T, keep,
                             spill_dir, m->path, err) != 0)
        return -1;
    if (st->v2 && xf_block_stream_copy(&st->fp, &st->q, err) != 0) {
        xf_block_stream_free(&st->q);
        return -1;
    }
    return 0;
}

/* Both streams through block dl (dl_fp: the same block in full precision)
 * to point `to`. */
static int gptq_streams_run(gptq_streams *st, const xf_dense_layer *dl,
                            const xf_dense_layer *dl_fp, xf_layer_point to, xf_error *err)
{
    if (xf_block_stream_run(&st->q, dl, to, st->hq, err) != 0)
        return -1;
    return st->v2 ? xf_block_stream_run(&st->fp, dl_fp, to, st->hf, err) : 0;
}

/* GPTQv2 with token weights: the Hessian and cross-covariance of one window
 * from its rows scaled by sqrt(r_t), both streams alike. */
static int weighted_pair(xf_hessian *hs, xf_cross_cov *cc, const float *xfp, const float *xq,
                         const float *r, int64_t T, int64_t d, xf_error *err)
{
    float *sq = malloc((size_t)(T * d) * sizeof *sq), *sf = malloc((size_t)(T * d) * sizeof *sf);
    int rc = sq && sf ? 0 : xf_fail(err, "out of memory for weighted rows");
    if (rc == 0)
        rc = xf_token_weight_scale_rows(xq, r, T, d, sq, err);
    if (rc == 0)
        rc = xf_token_weight_scale_rows(xfp, r, T, d, sf, err);
    if (rc == 0)
        rc = xf_hessian_add(hs, sq, T, err);
    if (rc == 0)
        rc = xf_cross_cov_add(cc, sf, sq, T, err);
    free(sq);
    free(sf);
    return rc;
}

/* Hessian H of the d-wide input pending in the quantized stream (block
 * dl) and, for GPTQv2, the cross-covariance C with the full-precision
 * stream's (block dl_fp); windows in order. r (NULL: uniform): RSQ's token
 * weights [ns * T], every row of both scaled by sqrt(r_t). */
static int input_statistics(gptq_streams *st, const xf_dense_layer *dl,
                            const xf_dense_layer *dl_fp, int64_t d, const float *r, double *H,
                            double *C, xf_error *err)
{
    xf_hessian hs = {0};
    xf_cross_cov cc = {0};
    int rc = xf_hessian_init(&hs, d, err);
    if (rc == 0 && C)
        rc = xf_cross_cov_init(&cc, d, err);
    if (xf_dist_agree(st->d, rc, err) != 0) { /* collective: agreed (core/dist.h) */
        xf_cross_cov_free(&cc);
        xf_hessian_free(&hs);
        return -1;
    }
    if (st->d->size > 1) { /* summed along the ranks (pipeline/dist_sums.h) */
        xf_hessian_defer(&hs);
        if (C)
            xf_cross_cov_defer(&cc);
    }
    for (int64_t s = 0; s < st->q.ns && rc == 0; s++) {
        int64_t cols, cols_fp = d;
        const float *xq, *xfp = NULL;
        rc = xf_block_stream_input(&st->q, dl, st->hq, s, &xq, &cols, err);
        if (rc == 0 && C)
            rc = xf_block_stream_input(&st->fp, dl_fp, st->hf, s, &xfp, &cols_fp, err);
        if (rc == 0 && (cols != d || cols_fp != d))
            rc = xf_fail(err, "layer %d: pending input has %lld columns, the Hessian %lld",
                         st->q.layer, (long long)cols, (long long)d);
        const float *rw = r ? r + s * st->q.T : NULL;
        if (rc == 0 && (!rw || !C))
            rc = xf_hessian_add_weighted(&hs, xq, rw, st->q.T, err);
        else if (rc == 0) /* GPTQv2 weighted: both inputs scaled, one Hessian and C of them */
            rc = weighted_pair(&hs, &cc, xfp, xq, rw, st->q.T, d, err);
        if (rc == 0 && C && !rw)
            rc = xf_cross_cov_add(&cc, xfp, xq, st->q.T, err);
    }
    rc = xf_dist_agree(st->d, rc, err);
    if (rc == 0)
        rc = xf_dist_agree(st->d, xf_dist_hessian_sum(st->d, &hs, err), err);
    if (rc == 0 && C)
        rc = xf_dist_agree(st->d, xf_dist_cross_cov_sum(st->d, &cc, err), err);
    if (rc == 0)
        rc = xf_dist_agree(st->d, xf_hessian_finalize(&hs, H, err), err);
    if (rc == 0 && C)
        rc = xf_dist_agree(st->d, xf_cross_cov_finalize(&cc, C, err), err);
    if (C)
        xf_cross_cov_free(&cc);
    xf_hessian_free(&hs);
    return rc;
}

/* GPTQ on the linears of dl reading input `in` (GPTQv2: each corrected
 * first), replacing their fp32 weights by the dequantized results. */
static int quantize_readers(const xf_quant_options *o, const xf_gguf_type_plan *plan,
                            const xf_model_weights *mw, xf_dense_layer *dl, xf_lin_input in,
                            const double *H, const double *C, xf_dist *dist,
                            xf_quant_collector *col, xf_error *err)
{
    xf_linear_role roles[XF_IN_MAX_READERS];
    const int n = xf_lin_input_readers(&mw->cfg, in, roles);
    float *W[XF_IN_MAX_READERS];
    int64_t rows[XF_IN_MAX_READERS];
    const char *names[XF_IN_MAX_READERS];
    const xf_tensor *src[XF_IN_MAX_READERS];
    const int64_t d = dl->in[roles[0]];
    int rc = 0;
    for (int k = 0; k < n; k++) {
        W[k] = dl->w[roles[k]];
        rows[k] = dl->out[roles[k]];
        src[k] = mw->layers[dl->layer].lin[roles[k]].w;
        names[k] = src[k]->name;
        double used;
        if (rc == 0 && C)
            rc = xf_gptq_v2_correct(W[k], rows[k], d, H, C, o->damp, &used, names[k], err);
    }
    if (xf_dist_agree(dist, rc, err) != 0)
        return -1;
    return gptq_linears(o, plan, W, rows, src, names, n, d, H, dist, col, err);
}

/* Runs the streams to input `in` of block dl, then quantizes its readers. */
static int gptq_input(const xf_quant_options *o, const xf_gguf_type_plan *plan,
                      const xf_model_weights *mw, gptq_streams *st, xf_dense_layer *dl,
                      const xf_dense_layer *dl_fp, xf_lin_input in, const float *r,
                      xf_gptq_progress *gp, xf_quant_collector *col, xf_error *err)
{
    double t0 = xf_now_seconds();
    int fw = gptq_streams_run(st, dl, dl_fp, xf_layer_point_at(in), err);
    xf_gptq_progress_forward(gp, t0);
    if (xf_dist_agree(st->d, fw, err) != 0)
        return -1;
    const int64_t d = xf_lin_input_width(&mw->cfg, in);
    double *H = malloc((size_t)(d * d) * sizeof *H);
    double *C = st->v2 ? malloc((size_t)(d * d) * sizeof *C) : NULL;
    int rc = 0;
    if (!H || (st->v2 && !C))
        rc = xf_fail(err, "out of memory for a %lld-wide Hessian", (long long)d);
    if (xf_dist_agree(st->d, rc, err) != 0) {
        free(H);
        free(C);
        return -1;
    }
    t0 = xf_now_seconds();
    if (rc == 0)
        rc = input_statistics(st, dl, dl_fp, d, r, H, C, err);
    xf_gptq_progress_hessian(gp, t0);
    t0 = xf_now_seconds();
    /* every rank solves (the same H, the same bytes): each continues with
     * the quantized weights */
    if (rc == 0)
        rc = xf_dist_agree(st->d, quantize_readers(o, plan, mw, dl, in, H, C, st->d, col, err), err);
    xf_gptq_progress_solve(gp, t0);
    free(H);
    free(C);
    return rc;
}

/* True-sequential GPTQ of block l: each part of the block runs once on
 * the quantized stream (q/k/v input -> q/k/v quantized -> attention -> o
 * input -> o quantized -> MLP input -> ... -> down quantized -> block
 * output), so every input is computed from the already quantized linears
 * before it; the streams then stand at the next block. */
static int gptq_block(const xf_quant_options *o, const xf_gguf_type_plan *plan,
                      const xf_model_weights *mw, gptq_streams *st, int l, xf_gptq_progress *gp,
                      xf_quant_collector *col, xf_error *err)
{
    xf_dense_layer dl, dl_fp;
    if (xf_dist_agree(st->d, xf_dense_layer_init(&dl, mw, l, err), err) != 0)
        return -1;
    if (st->v2 && xf_dist_agree(st->d, xf_dense_layer_init(&dl_fp, mw, l, err), err) != 0) {
        xf_dense_layer_free(&dl);
        return -1;
    }
    int rc = 0;
    /* --token-weight attn-concentration: the block's token weights, from its
     * attention before any of its linears is quantized */
    float *r = NULL;
    if (o->token_weight != XF_TOKEN_WEIGHT_UNIFORM) {
        double t0 = xf_now_seconds();
        r = malloc((size_t)(st->q.ns * st->q.T) * sizeof *r);
        rc = r ? xf_stream_token_weights(&st->q, &dl, st->hq,
                                         o->token_weight == XF_TOKEN_WEIGHT_ATTN_CON_MEAN, r, err)
               : xf_fail(err, "out of memory for token weights");
        xf_gptq_progress_forward(gp, t0);
    }
    for (int in = 0; in < XF_IN_COUNT && rc == 0; in++) {
        rc = gptq_input(o, plan, mw, st, &dl, &dl_fp, (xf_lin_input)in, r, gp, col, err);
        if (rc == 0)
            xf_gptq_progress_input(gp, l, xf_lin_input_name((xf_lin_input)in),
                                   xf_linear_role_name(
                                       xf_lin_input_hook_role(&mw->cfg, (xf_lin_input)in)));
    }
    double t0 = xf_now_seconds();
    if (rc == 0)
        rc = xf_dist_agree(st->d, gptq_streams_run(st, &dl, &dl_fp, XF_AT_END, err), err);
    xf_gptq_progress_forward(gp, t0);
    free(r);
    xf_dense_layer_free(&dl);
    if (st->v2)
        xf_dense_layer_free(&dl_fp);
    return rc;
}

/* Where a GPTQ run stands with its checkpoint: resumed from it (blocks
 * before *start done, their tensors in col, the streams restored), or
 * starting at block 0 (refusing to overwrite an interrupted run's
 * checkpoint unless resuming). One process. */
static int gptq_resume_point(const xf_gptq_checkpoint *ck, const xf_quant_run *run,
                             gptq_streams *st, xf_quant_collector *col, int *start,
                             xf_error *err)
{
    *start = 0;
    if (!ck->dir)
        return 0;
    if (!xf_gptq_checkpoint_present(ck->dir)) {
        if (run->resume)
            xf_log_warn("--resume: %s holds no checkpoint; starting at block 0", ck->dir);
        return 0;
    }
    if (!run->resume)
        return xf_fail(err, "%s: holds the checkpoint of an interrupted run: add --resume to "
                            "continue it, or remove the directory",
                       ck->dir);
    if (xf_gptq_checkpoint_load(ck, col, &st->q, st->v2 ? &st->fp : NULL, start, err) != 0)
        return -1;
    xf_log_info("resuming at block %d from %s", *start, ck->dir);
    return 0;
}

/* Every rank's hidden states of both streams, gathered ([nsamples, T,
 * hidden] each, rank 0 only: *hq, *hfp malloc'd there, NULL elsewhere). */
static int alloc_all_states(const gptq_streams *st, float **hq, float **hfp, xf_error *err)
{
    *hq = *hfp = NULL;
    if (st->d->rank != 0)
        return 0;
    const size_t n = (size_t)(st->nsamples * st->q.T * st->q.hidden);
    *hq = malloc(n * sizeof **hq);
    if (st->v2)
        *hfp = malloc(n * sizeof **hfp);
    if (!*hq || (st->v2 && !*hfp))
        return xf_fail(err, "out of memory for the %lld calibration windows of a checkpoint",
                       (long long)st->nsamples);
    return 0;
}

/* The checkpoint after block l of an MPI job: rank 0 gathers every
 * rank's hidden states and writes (pipeline/gptq_checkpoint.h). */
static int save_checkpoint_dist(const xf_gptq_checkpoint *ck, int l,
                                const xf_quant_collector *col, size_t first, gptq_streams *st,
                                xf_error *err)
{
    xf_dist *d = st->d;
    float *hq, *hfp;
    const size_t win = (size_t)(st->q.T * st->q.hidden);
    int rc = xf_dist_agree(d, alloc_all_states(st, &hq, &hfp, err), err);
    if (rc == 0)
        rc = xf_dist_agree(d,
                           xf_dist_gather_windows(d, xf_block_stream_hidden(&st->q, 0), hq,
                                                  st->nsamples, st->q.T, win, err),
                           err);
    if (rc == 0 && st->v2)
        rc = xf_dist_agree(d,
                           xf_dist_gather_windows(d, xf_block_stream_hidden(&st->fp, 0), hfp,
                                                  st->nsamples, st->q.T, win, err),
                           err);
    if (rc == 0)
        rc = xf_dist_agree(d,
                           d->rank == 0 ? xf_gptq_checkpoint_save_states(
                                              ck, l, col, first, hq, hfp, st->nsamples,
                                              st->q.T, st->q.hidden, err)
                                        : 0,
                           err);
    free(hq);
    free(hfp);
    return rc;
}

/* gptq_resume_point for an MPI job: rank 0 reads the checkpoint and deals
 * every rank its windows' hidden states. */
static int resume_point_dist(const xf_gptq_checkpoint *ck, const xf_quant_run *run,
                             gptq_streams *st, xf_quant_collector *col, int *start,
                             xf_error *err)
{
    xf_dist *d = st->d;
    *start = 0;
    int64_t present = d->rank == 0 && xf_gptq_checkpoint_present(run->checkpoint_dir);
    int rc = xf_dist_agree(d, xf_dist_bcast(d, 0, &present, sizeof present, err), err);
    if (rc != 0)
        return -1;
    if (!present) {
        if (run->resume && d->rank == 0)
            xf_log_warn("--resume: %s holds no checkpoint; starting at block 0",
                        run->checkpoint_dir);
        return 0;
    }
    if (!run->resume)
        return xf_fail(err, "%s: holds the checkpoint of an interrupted run: add --resume to "
                            "continue it, or remove the directory",
                       run->checkpoint_dir);
    float *hq, *hfp;
    int64_t next = 0;
    rc = alloc_all_states(st, &hq, &hfp, err);
    if (rc == 0 && d->rank == 0) {
        int nx = 0;
        rc = xf_gptq_checkpoint_load_states(ck, col, hq, hfp, st->nsamples, st->q.T,
                                            st->q.hidden, st->q.ws.cfg.n_layers, &nx, err);
        next = nx;
    }
    rc = xf_dist_agree(d, rc, err);
    if (rc == 0)
        rc = xf_dist_agree(d, xf_dist_bcast(d, 0, &next, sizeof next, err), err);
    const size_t win = (size_t)(st->q.T * st->q.hidden);
    float *mine = rc == 0 ? malloc((size_t)st->q.ns * win * sizeof *mine) : NULL;
    if (rc == 0)
        rc = xf_dist_agree(d, mine ? 0 : xf_fail(err, "out of memory"), err);
    if (rc == 0)
        rc = xf_dist_agree(
            d, xf_dist_scatter_windows(d, hq, mine, st->nsamples, st->q.T, win, err), err);
    if (rc == 0)
        rc = xf_dist_agree(d, xf_block_stream_restore(&st->q, (int)next, mine, err), err);
    if (rc == 0 && st->v2)
        rc = xf_dist_agree(
            d, xf_dist_scatter_windows(d, hfp, mine, st->nsamples, st->q.T, win, err), err);
    if (rc == 0 && st->v2)
        rc = xf_dist_agree(d, xf_block_stream_restore(&st->fp, (int)next, mine, err), err);
    free(mine);
    free(hq);
    free(hfp);
    if (rc == 0) {
        *start = (int)next;
        if (d->rank == 0)
            xf_log_info("resuming at block %d from %s (%d ranks)", *start, run->checkpoint_dir,
                        d->size);
    }
    return rc;
}

/* The summary's "distributed": every rank's windows, seconds by kind of
 * work and bytes moved, gathered on rank 0 (collective). */
#define RANK_FIELDS 11
static int dist_summary(xf_dist *d, const gptq_streams *st, const xf_gptq_timing *t,
                        int64_t blocks, json_t *summary_extra, xf_error *err)
{
    const double mine[RANK_FIELDS] = {(double)st->first,  (double)st->q.ns,  t->forward_s,
                                      t->hessian_s,      t->solve_s,        d->comm_s,
                                      d->wait_s,         (double)d->bytes_sent,
                                      (double)d->bytes_recv, xf_dist_cpu_seconds(),
                                      d->mpi_cpu_s};
    double *all = d->rank == 0 ? malloc((size_t)d->size * sizeof mine) : NULL;
    int rc = xf_dist_agree(d, d->rank == 0 && !all ? xf_fail(err, "out of memory") : 0, err);
    if (rc != 0) {
        free(all);
        return -1;
    }
    if (d->rank != 0) {
        rc = xf_dist_send(d, 0, mine, sizeof mine, err);
    } else {
        memcpy(all, mine, sizeof mine);
        for (int r = 1; r < d->size && rc == 0; r++)
            rc = xf_dist_recv(d, r, all + r * RANK_FIELDS, sizeof mine, err);
    }
    rc = xf_dist_agree(d, rc, err);
    if (rc == 0 && d->rank == 0) {
        json_t *ranks = json_array();
        for (int r = 0; r < d->size; r++) {
            const double *v = all + r * RANK_FIELDS;
            json_array_append_new(
                ranks, json_pack("{s:I, s:I, s:f, s:f, s:f, s:f, s:f, s:I, s:I, s:f, s:f}",
                                 "first_window", (json_int_t)v[0], "windows", (json_int_t)v[1],
                                 "forward_s", v[2], "hessian_s", v[3], "solve_s", v[4],
                                 "comm_s", v[5], "wait_s", v[6], "bytes_sent",
                                 (json_int_t)v[7], "bytes_recv", (json_int_t)v[8], "cpu_s",
                                 v[9], "mpi_cpu_s", v[10]));
        }
        json_object_set_new(summary_extra, "distributed",
                            json_pack("{s:i, s:I, s:I, s:o}", "ranks", d->size, "unit_windows",
                                      (json_int_t)xf_dist_unit_windows(st->q.T), "blocks",
                                      (json_int_t)blocks, "per_rank", ranks));
    }
    free(all);
    return rc;
}

/* summary_extra gets "timing": the stage's seconds by kind of work
 * (pipeline/gptq_progress.h), for the run summary (never for the .xfq:
 * same inputs, same bytes). Under MPI (run->dist with several ranks) every
 * rank runs this with its share of the windows; every failure is agreed
 * on, so the ranks leave together. */
static int quantize_gptq(xf_loaded_model *m, const xf_quant_options *o,
                         const xf_gguf_type_plan *plan, int64_t T, const xf_calib_set *calib,
                         const xf_quant_run *run, const stream_place *place, xf_dist *d,
                         xf_quant_collector *col, json_t *summary_extra, xf_error *err)
{
    const xf_model_weights *mw = &m->weights;
    const xf_model_config *cfg = &mw->cfg;
    /* --gguf-type: the head as the plan says (GPTQ with its Hessian), the
     * embeddings by round to nearest */
    const bool head = plan ? !cfg->tie_embeddings && mw->lm_head.w != mw->tok_embed
                           : o->quantize_head;
    const int64_t n_blocks =
        o->max_blocks > 0 && o->max_blocks < cfg->n_layers ? o->max_blocks : cfg->n_layers;
    xf_gptq_progress gp;
    xf_gptq_progress_begin(&gp, cfg, n_blocks, calib->nsamples, T, o->gptq_v2 ? 2 : 1, head);
    gptq_streams st;
    const int src = gptq_streams_init(&st, m, o, calib, T, place->keep, place->spill_dir, d, err);
    if (xf_dist_agree(d, src, err) != 0) {
        if (src == 0) {
            gptq_streams_free(&st);
        } else {
            xf_act_hooks_free(&st.ah_q);
            xf_act_hooks_free(&st.ah_fp);
        }
        xf_gptq_progress_end(&gp);
        return -1;
    }
    if (d->size > 1 && d->rank == 0)
        xf_log_info("%d ranks: windows in units of %lld, this rank %lld..%lld", d->size,
                    (long long)xf_dist_unit_windows(T), (long long)st.first,
                    (long long)(st.first + st.q.ns - 1));
    xf_gptq_checkpoint ck = {0};
    int rc = 0, start = 0;
    /* an MPI job's checkpoint is rank 0's to write */
    if (run->checkpoint_dir && d->rank == 0)
        rc = xf_gptq_checkpoint_init(&ck, run->checkpoint_dir, m, o, calib, err);
    rc = xf_dist_agree(d, rc, err);
    if (rc == 0)
        rc = d->size > 1 ? (run->checkpoint_dir ? resume_point_dist(&ck, run, &st, col, &start,
                                                                    err)
                                                : 0)
                         : gptq_resume_point(&ck, run, &st, col, &start, err);
    rc = xf_dist_agree(d, rc, err);
    if (rc == 0 && start > 0) {
        json_object_set_new(summary_extra, "resumed_at_block", json_integer(start));
        xf_gptq_progress_resumed(&gp, start);
    }
    double t_ckpt = 0;
    for (int64_t l = start; l < n_blocks && rc == 0; l++) {
        const size_t first = col->n;
        rc = gptq_block(o, plan, mw, &st, (int)l, &gp, col, err);
        if (rc == 0 && run->checkpoint_dir) {
            double t0 = xf_now_seconds();
            rc = d->size > 1 ? save_checkpoint_dist(&ck, (int)l, col, first, &st, err)
                             : xf_gptq_checkpoint_save(&ck, (int)l, col, first, &st.q,
                                                       st.v2 ? &st.fp : NULL, err);
            t_ckpt += xf_now_seconds() - t0;
        }
        if (rc == 0)
            xf_gptq_progress_block(&gp, l);
    }
    if (rc == 0 && head) {
        rc = gptq_head(m, o, plan, &st.q, d, &gp, col, err);
        if (rc == 0)
            xf_gptq_progress_head(&gp);
    }
    if (rc == 0 && plan)
        rc = xf_dist_agree(d, rtn_embeddings(mw, plan, col, err), err);
    /* a run that fails before its first checkpoint leaves no empty
     * directory; one that made a checkpoint keeps it for --resume */
    if (rc != 0 && ck.dir && !xf_gptq_checkpoint_present(ck.dir)) {
        xf_error ignored = {{0}};
        xf_gptq_checkpoint_remove(ck.dir, &ignored);
    }
    xf_gptq_checkpoint_free(&ck);
    xf_gptq_progress_end(&gp);
    if (rc == 0 && d->size > 1)
        rc = dist_summary(d, &st, &gp.t, n_blocks - start, summary_extra, err);
    gptq_streams_free(&st);
    /* the head's Hessian and solve included */
    json_t *tm = xf_gptq_timing_json(&gp.t);
    json_object_set_new(tm, "checkpoint_s", json_real(t_ckpt));
    json_object_set_new(tm, "blocks", json_integer(n_blocks - start));
    json_object_set_new(summary_extra, "timing", tm);
    return rc;
}

static int check_options(const xf_quant_options *o, xf_error *err)
{
    if (xf_act_scheme_check(&o->act, "activation scheme", err) != 0)
        return -1;
    if (o->act_clip_search && o->act.act_bits == 0)
        return xf_fail(err, "--act-clip search needs --act-bits");
    if (o->attn_prob_base_search &&
        (o->act.attn_prob_bits == 0 || o->act.attn_prob_quant != XF_PROB_LOG2))
        return xf_fail(err, "--attn-prob-base search needs --attn-prob-bits N "
                            "--attn-prob-quant log2");
    if (o->weight_grid_log2 && o->method != XF_METHOD_RTN)
        return xf_fail(err, "--weight-grid log2 applies to rtn only");
    if (o->weight_grid_log2 && o->outliers > 0)
        return xf_fail(err, "--weight-grid log2 cannot be combined with --outliers");
    /* the learned rotation's objective simulates the uniform weight grid */
    if (o->weight_grid_log2 && o->rotate == XF_ROTATE_LEARNED)
        return xf_fail(err, "--weight-grid log2 cannot be combined with --rotate learned");
    if (o->weight_grid_razor && (o->outliers > 0 || o->rotate == XF_ROTATE_LEARNED || o->gguf ||
                                 o->static_groups || o->gptq_v2))
        return xf_fail(err, "--weight-grid razor cannot be combined with --outliers, --rotate "
                            "learned, --gguf-type, --static-groups or --gptq-v2");
    if (o->weight_grid_razor && o->group != -1)
        return xf_fail(err, "--weight-grid razor quantizes whole rows to 8-bit abs-max "
                            "integers: it needs --group -1 (--razor-group sets the razor "
                            "groups)");
    /* the clip search and the learned rotation's objective simulate the
     * integer grids; RepQuant replaces the qkv/mlp quantizers they fit */
    const bool razor_act = o->act.act_kind == XF_ACT_KIND_RAZOR ||
                           o->act.kv_kind == XF_ACT_KIND_RAZOR;
    if ((razor_act || o->repquant) && (o->act_clip_search || o->rotate == XF_ROTATE_LEARNED))
        return xf_fail(err, "--act-clip search and --rotate learned fit the integer grids: they "
                            "cannot be combined with --act-quant/--kv-quant razor or --repquant");
    if (o->repquant && (o->act.act_bits < 2 || o->act.act_bits > 8 ||
                        !(o->act.act_inputs & ((1u << XF_IN_QKV) | (1u << XF_IN_MLP))) ||
                        o->act.act_kind != XF_ACT_KIND_INT))
        return xf_fail(err, "--repquant re-parameterises the qkv/mlp input quantizers: it "
                            "needs --act-bits 2..8 on qkv or mlp (--act-quant int)");
    if (o->gguf && o->weight_grid_log2)
        return xf_fail(err, "--gguf-type cannot be combined with --weight-grid log2");
    if (o->gguf && o->outliers > 0)
        return xf_fail(err, "--gguf-type cannot be combined with --outliers (GGUF blocks hold "
                            "no outlier table)");
    if (o->gguf && o->n_tensor_bits > 0)
        return xf_fail(err, "--gguf-type chooses every tensor's type; it cannot be combined "
                            "with --tensor-bits");
    if (o->gguf && o->act_order && !o->static_groups)
        return xf_fail(err, "--gguf-type with --act-order needs --static-groups (GGUF stores "
                            "no column permutation)");
    if (o->rotate_qk && o->rotate == XF_ROTATE_NONE)
        return xf_fail(err, "--rotate-qk needs --rotate");
    if ((o->rotate_scales || o->rotate_loss == XF_ROTATE_LOSS_KL_TOP) &&
        (o->rotate != XF_ROTATE_LEARNED || o->rotate_objective != XF_ROTATE_OBJ_E2E))
        return xf_fail(err, "--rotate-scales and --rotate-loss kl-top need --rotate learned "
                            "--rotate-objective e2e");
    /* kept KV tokens are read at K as it was before the KV hook, which is
     * where R3 rotates K: the kept scores would pair a rotated Q with an
     * unrotated K; and the learned rotation's recording forward runs no
     * kept-token attention, so its objective would not be what is evaluated */
    if (o->act.kv_keep != XF_KV_KEEP_NONE && (o->rotate_qk || o->rotate == XF_ROTATE_LEARNED))
        return xf_fail(err, "--kv-keep cannot be combined with --rotate-qk or --rotate learned");
    if (o->gguf && o->rotate_qk)
        return xf_fail(err, "--gguf-type cannot be combined with --rotate-qk (llama.cpp runs no "
                            "online Hadamard transforms)");
    if (o->gguf && o->rotate != XF_ROTATE_NONE && !o->rotate_no_online)
        return xf_fail(err, "--gguf-type with --rotate needs --rotate-no-online (llama.cpp "
                            "runs no online Hadamard transforms)");
    xf_tensor_bits tb;
    if (xf_tensor_bits_init(&tb, o->tensor_bits, o->n_tensor_bits, err) != 0)
        return -1;
    xf_tensor_bits_free(&tb);
    return 0;
}

/* The scheme's group sizes against this model's widths, checked before
 * any work (the evaluator would refuse the file otherwise). */
static int check_scheme_fits(const xf_act_scheme *s, const xf_model_config *cfg,
                             const char *path, xf_error *err)
{
    if (s->act_bits > 0 && s->act_group > 0) {
        for (int i = 0; i < XF_IN_COUNT; i++) {
            const int64_t width = xf_lin_input_width(cfg, (xf_lin_input)i);
            if ((s->act_inputs & (1u << i)) && width % s->act_group != 0)
                return xf_fail(err, "%s: --act-group %lld does not divide the %lld channels of "
                                    "the %s input",
                               path, (long long)s->act_group, (long long)width,
                               xf_lin_input_name((xf_lin_input)i));
        }
    }
    int64_t g;
    if (s->kv_bits > 0 && xf_act_scheme_kv_group(s, cfg->head_dim, &g, err) != 0)
        return xf_fail_prefix(err, "%s", path);
    return 0;
}

/* What the end-to-end learners (SpinQuant, OstQuant) are asked: the online
 * transforms they simulate (the down Hadamard when the model gets one, R3
 * with --rotate-qk) into `down`, and the request with the weights inside
 * the objective: full precision for GPTQ by default, as SpinQuant learns
 * its rotations (GPTQ then removes most of the weight error RTN would
 * show), RTN on the recipe's grid otherwise or with --rotate-weights rtn;
 * the choice recorded in rot. */
static int learner_request(const xf_quant_options *o, const xf_r1_request *q,
                           const xf_model_config *cfg, bool online_down,
                           xf_online_transforms *down, xf_r1_request *qe, json_t *rot,
                           xf_error *err)
{
    if (online_down && xf_online_enable_down(down, cfg, err) != 0)
        return -1;
    if (o->rotate_qk && xf_online_enable_qk(down, cfg, err) != 0)
        return -1;
    *qe = *q;
    const bool fp_weights = o->rotate_weights == 2 || (o->rotate_weights == 0 &&
                                                         o->method == XF_METHOD_GPTQ);
    if (fp_weights)
        qe->weight_bits = 0;
    json_object_set_new(rot, "learned_weights", json_string(fp_weights ? "fp" : "rtn"));
    return 0;
}

/* --rotate learned --rotate-objective e2e: R1 and the per-layer R2 learned
 * together on the folded model (quant/transform/e2e_learn.c), then applied
 * as the other kinds are. The online down Hadamard the objective sees is
 * the one xf_rotate_apply enables (same size, plain). */
static int learned_e2e(xf_model_edit *edit, const xf_quant_options *o, const xf_r1_request *q,
                       xf_online_transforms *on, json_t *rot, xf_error *err)
{
    const xf_model_config *cfg = &edit->m->weights.cfg;
    const int64_t H = cfg->hidden, d = cfg->head_dim, L = cfg->n_layers;
    const bool r2 = !o->rotate_no_headwise;
    double *R1 = malloc((size_t)(H * H) * sizeof *R1);
    double *R2 = r2 ? malloc((size_t)(L * d * d) * sizeof *R2) : NULL;
    const double **R2l = r2 ? malloc((size_t)L * sizeof *R2l) : NULL;
    xf_online_transforms down;
    xf_online_init(&down);
    int rc = 0;
    if (!R1 || (r2 && (!R2 || !R2l)))
        rc = xf_fail(err, "learned rotation: out of memory");
    xf_r1_request qe;
    if (rc == 0)
        rc = learner_request(o, q, cfg, on != NULL, &down, &qe, rot, err);
    if (rc == 0)
        rc = xf_learned_e2e(&edit->m->weights, &qe, xf_online_any(&down) ? &down : NULL, R1, R2,
                            rot, err);
    if (rc == 0)
        rc = xf_rotate_apply(edit, R1, false, on, err);
    for (int64_t l = 0; rc == 0 && r2 && l < L; l++)
        R2l[l] = R2 + l * d * d;
    if (rc == 0 && r2)
        rc = xf_rotate_headwise(edit, R2l, err);
    xf_online_free(&down);
    free((void *)R2l);
    free(R2);
    free(R1);
    return rc;
}

/* --rotate learned with --rotate-scales or --rotate-loss kl-top
 * (OstQuant, quant/transform/ost.h): R1, R2 and the scales learned
 * together on the folded model (quant/transform/ost_learn.c), then fused:
 * the up/down scales first (before the down Hadamard is fused), then the
 * rotations as learned_e2e, then the norm and v/o scales. */
static int learned_ost(xf_model_edit *edit, const xf_quant_options *o, const xf_r1_request *q,
                       xf_online_transforms *on, json_t *rot, xf_error *err)
{
    const xf_model_config *cfg = &edit->m->weights.cfg;
    const int64_t d = cfg->head_dim, L = cfg->n_layers;
    const bool r2 = !o->rotate_no_headwise;
    xf_ost_params p;
    if (xf_ost_params_init(&p, cfg, r2, err) != 0)
        return -1;
    const double **R2l = r2 ? malloc((size_t)L * sizeof *R2l) : NULL;
    xf_online_transforms down;
    xf_online_init(&down);
    int rc = 0;
    if (r2 && !R2l)
        rc = xf_fail(err, "OstQuant: out of memory");
    xf_r1_request qe;
    if (rc == 0)
        rc = learner_request(o, q, cfg, on != NULL, &down, &qe, rot, err);
    if (rc == 0)
        rc = xf_learned_ost(&edit->m->weights, &qe, xf_online_any(&down) ? &down : NULL, &p, rot,
                            err);
    if (rc == 0 && o->rotate_scales)
        rc = xf_ost_fuse_mlp_scales(edit, p.lu, err);
    if (rc == 0)
        rc = xf_rotate_apply(edit, p.R1, false, on, err);
    for (int64_t l = 0; rc == 0 && r2 && l < L; l++)
        R2l[l] = p.R2 + l * d * d;
    if (rc == 0 && r2)
        rc = xf_rotate_headwise(edit, R2l, err);
    if (rc == 0 && o->rotate_scales)
        rc = xf_ost_fuse_stream_scales(edit, p.la, p.lm, p.lv, err);
    xf_online_free(&down);
    free((void *)R2l);
    xf_ost_params_free(&p);
    return rc;
}

/* Smoothing and rotation: exact rewrites of the full-precision model
 * through `edit` before anything is quantized. *record gets what was done
 * (the recipe's "smooth" and "rotation" entries); online transforms of the
 * rotation are enabled in *online. */
static int transform_model(xf_loaded_model *m, const xf_quant_options *o, const xf_calib_set *cs,
                           int64_t T, xf_model_edit *edit, xf_online_transforms *online,
                           json_t *recipe_extra, xf_error *err)
{
    json_t *rec = NULL;
    if (o->smooth_search) { /* QQQ: alphas searched on the quantized layers' output error */
        if (xf_smooth_search_model(m, edit, cs->tokens, cs->nsamples, T, &o->act, &o->grid,
                                   o->group, o->smooth_inputs ? o->smooth_inputs
                                                              : XF_SMOOTH_INPUTS_DEFAULT,
                                   &rec, err) != 0)
            return -1;
        json_object_set_new(recipe_extra, "smooth", rec);
    } else if (o->smooth > 0) {
        if (xf_smooth_model(m, edit, cs->tokens, cs->nsamples, T, o->smooth,
                            o->smooth_inputs ? o->smooth_inputs : XF_SMOOTH_INPUTS_DEFAULT, &rec,
                            err) != 0)
            return -1;
        json_object_set_new(recipe_extra, "smooth", rec);
    }
    if (o->rotate == XF_ROTATE_NONE)
        return 0;
    json_t *fold = NULL;
    if (xf_rotate_fold_norms(edit, &fold, err) != 0)
        return -1;
    json_t *rot = json_pack("{s:s, s:I, s:b, s:b, s:o}", "kind", xf_rotate_kind_name(o->rotate),
                            "seed", (json_int_t)o->seed, "headwise_vo", !o->rotate_no_headwise,
                            "online_down", !o->rotate_no_online, "fold", fold);
    json_object_set_new(recipe_extra, "rotation", rot);
    /* R3 (sim/online.h): independent of the weights, recorded with the others */
    if (o->rotate_qk && xf_online_enable_qk(online, &m->weights.cfg, err) != 0)
        return -1;
    xf_r1_request q = {.kind = o->rotate, .seed = o->seed, .klt_hadamard = o->klt_hadamard,
                       .steps = o->rotate_steps, .lr = o->rotate_lr, .tokens = cs->tokens,
                       .nsamples = cs->nsamples, .T = T, .act = &o->act,
                       .weight_bits = o->grid.bits, .weight_sym = o->grid.sym,
                       .weight_group = o->group, .e2e_loss = o->rotate_loss,
                       .e2e_windows = o->rotate_windows, .e2e_batch = o->rotate_batch,
                       .e2e_ste_scale = o->rotate_ste == 1,
                       .ost_scales = o->rotate_scales, .kl_top_k = o->kl_top_k};
    xf_online_transforms *on = o->rotate_no_online ? NULL : online;
    if (o->rotate == XF_ROTATE_LEARNED && o->rotate_objective == XF_ROTATE_OBJ_E2E &&
        (o->rotate_scales || o->rotate_loss == XF_ROTATE_LOSS_KL_TOP))
        return learned_ost(edit, o, &q, on, rot, err);
    if (o->rotate == XF_ROTATE_LEARNED && o->rotate_objective == XF_ROTATE_OBJ_E2E)
        return learned_e2e(edit, o, &q, on, rot, err);
    double *R1 = NULL;
    if (xf_rotation_r1(&m->weights, &q, &R1, rot, err) != 0)
        return -1;
    /* learned: R1 first without the head-wise Hadamard, whose place the
     * learned per-layer R2 takes (its capture needs the R1-rotated model) */
    const bool learned_r2 = o->rotate == XF_ROTATE_LEARNED && !o->rotate_no_headwise;
    int rc = xf_rotate_apply(edit, R1, !o->rotate_no_headwise && !learned_r2, on, err);
    free(R1);
    if (rc == 0 && learned_r2)
        rc = xf_learned_r2(edit, &q, on, rot, err);
    return rc;
}

/* Searches the scheme's data-dependent parameters (act_calib.h) on the
 * calibration windows, recording what was searched in the provenance. */
static int calibrate_scheme(xf_loaded_model *m, xf_quant_options *oc, const xf_calib_set *cs,
                            int64_t T, json_t *prov, xf_error *err)
{
    json_t *rec = NULL;
    if (oc->act_clip_search) {
        xf_log_info("activation clip search on %d windows",
                    (int)(cs->nsamples < XF_ACT_CALIB_CLIP_WINDOWS ? cs->nsamples
                                                                    : XF_ACT_CALIB_CLIP_WINDOWS));
        if (xf_act_clip_calibrate(&m->weights, cs->tokens, cs->nsamples, T,
                                  XF_ACT_CALIB_CLIP_WINDOWS, &oc->act, &rec, err) != 0)
            return -1;
        json_object_set_new(prov, "act_clip_search", rec);
    }
    if (oc->attn_prob_base_search) {
        if (xf_attn_prob_base_calibrate(&m->weights, cs->tokens, cs->nsamples, T,
                                        XF_ACT_CALIB_BASE_WINDOWS, &oc->act, &rec, err) != 0)
            return -1;
        json_object_set_new(prov, "attn_prob_base_search", rec);
    }
    return 0;
}

/* The directory of path (malloc'd; "." for a bare name). */
static char *dir_of(const char *path)
{
    const char *slash = strrchr(path, '/');
    if (!slash)
        return strdup(".");
    size_t n = slash == path ? 1 : (size_t)(slash - path);
    char *d = malloc(n + 1);
    if (d) {
        memcpy(d, path, n);
        d[n] = '\0';
    }
    return d;
}

/* GPTQ's memory plan (pipeline/gptq_memory.h) against the run's bound,
 * before any work: what the calibration stream keeps and where
 * (place->spill_dir: NULL in memory, else a malloc'd directory), recorded
 * in the summary. */
static int plan_memory(const xf_loaded_model *m, const xf_quant_options *o, int64_t T,
                       const xf_quant_run *run, const char *out_path, stream_place *place,
                       json_t *summary_extra, xf_error *err)
{
    place->spill_dir = NULL;
    place->keep = XF_STREAM_KEEP_NARROW;
    const xf_model_config *cfg = &m->cfg;
    if (o->max_blocks > cfg->n_layers)
        return xf_fail(err, "--max-blocks %lld: %s has %lld blocks", (long long)o->max_blocks,
                       m->path, (long long)cfg->n_layers);
    if (o->max_blocks > 0 && (o->gguf || o->quantize_head))
        return xf_fail(err, "--max-blocks quantizes a slice of the model: it does not combine "
                            "with %s",
                       o->gguf ? "--gguf-type" : "--quantize-head");
    const int64_t n_blocks = o->max_blocks > 0 ? o->max_blocks : cfg->n_layers;
    xf_gptq_memory mem;
    /* an MPI rank holds its share of the windows (pipeline/dist_sums.h) */
    int64_t first = 0, share = o->nsamples;
    if (run->dist && xf_dist_windows(run->dist, o->nsamples, T, &first, &share, err) != 0)
        return -1;
    if (xf_gptq_memory_plan(cfg, o, n_blocks, share, T, run->max_memory, &mem, m->path,
                            err) != 0)
        return -1;
    json_object_set_new(summary_extra, "memory", xf_gptq_memory_to_json(&mem));
    xf_log_info("memory plan: %.2f GiB planned (calibration states %.2f GiB %s) of a %.2f GiB "
                "bound",
                (double)mem.planned / (1u << 30),
                (double)(mem.keep_down ? mem.states_all : mem.states) / (1u << 30),
                mem.spill       ? "spilled to disk"
                : mem.keep_down ? "in memory, every input kept"
                                : "in memory, the down input recomputed",
                (double)mem.budget / (1u << 30));
    if (mem.keep_down)
        place->keep = XF_STREAM_KEEP_ALL;
    if (!mem.spill)
        return 0;
    place->spill_dir = run->spill_dir ? strdup(run->spill_dir) : dir_of(out_path);
    return place->spill_dir ? 0 : xf_fail(err, "out of memory");
}

int xf_quantize_model(xf_loaded_model *m, const xf_quant_options *o, const xf_quant_run *run,
                      const char *out_path, const json_t *command_line, json_t **summary,
                      xf_error *err)
{
    if (summary)
        *summary = NULL;
    const xf_quant_run run_defaults = {0};
    if (!run)
        run = &run_defaults;
    xf_dist one = {.rank = 0, .size = 1};
    xf_dist *d = run->dist ? run->dist : &one;
    const xf_model_config *cfg = &m->cfg;
    if (o->quantize_head && cfg->tie_embeddings)
        return xf_fail(err, "%s: the LM head is tied to the embeddings; --quantize-head would "
                            "quantize the embedding table too (not supported)", m->path);
    if (o->gptq_v2 && o->method != XF_METHOD_GPTQ)
        return xf_fail(err, "--gptq-v2 applies to gptq only");
    if (m->has_online_transforms)
        return xf_fail(err, "%s: is a rotated .xfq (online transforms in its recipe); quantize "
                            "the original model instead", m->path);
    if (m->source == XF_SOURCE_GGUF && m->gguf.quantized_tensor) {
        const xf_gguf_tensor *qt = xf_gguf_find_tensor(&m->gguf.file, m->gguf.quantized_tensor);
        return xf_fail(err, "%s: is a quantized GGUF (tensor %s is %s); quantize an F16/F32/BF16 "
                            "GGUF or the HF model instead",
                       m->path, qt->name, qt->traits->name);
    }
    int64_t T = o->seqlen > 0 ? o->seqlen : (cfg->max_pos > 0 && cfg->max_pos < 2048 ? cfg->max_pos : 2048);
    json_t *prov = json_pack("{s:s, s:s, s:s}", "tool", "xfquant", "tool_version", XF_VERSION,
                             "source", m->path);
    json_object_set_new(prov, "command_line",
                        command_line ? json_deep_copy(command_line) : json_array());
    /* the calibrated copy: searched scheme parameters land in oc.act */
    xf_quant_options oc = *o;
    json_t *recipe = NULL;
    xf_quant_collector col;
    xf_quant_collector_init(&col);
    xf_calib_set cs = {0};
    xf_model_edit edit = {0};
    xf_online_transforms online;
    xf_online_init(&online);
    json_t *extra = json_object(); /* the recipe's "smooth" and "rotation" */
    json_t *run_info = json_object(); /* the summary's "memory", "resumed_at_block" ... */
    stream_place place = {XF_STREAM_KEEP_NARROW, NULL};
    double t0 = xf_now_seconds();
    int rc = check_options(o, err);
    if (rc == 0 && o->method == XF_METHOD_GPTQ)
        rc = plan_memory(m, o, T, run, out_path, &place, run_info, err);
    if (rc == 0)
        rc = check_scheme_fits(&o->act, cfg, m->path, err);
    if (rc == 0 && o->rotate != XF_ROTATE_NONE)
        rc = xf_rotate_supported(cfg, !o->rotate_no_online, m->path, err);
    if (rc == 0 && xf_quant_recipe_needs_calib(o))
        rc = prepare_calibration(m, o, T, &cs, prov, err);
    if (rc == 0 &&
        (o->smooth > 0 || o->smooth_search || o->rotate != XF_ROTATE_NONE || o->repquant)) {
        rc = xf_model_edit_init(&edit, m, err);
        if (rc == 0)
            rc = transform_model(m, o, &cs, T, &edit, &online, extra, err);
        /* every later pass (searches, GPTQ, evaluation) applies them */
        oc.act.online = &online;
    }
    /* RepQuant last: its per-channel fits see the smoothed / rotated model */
    xf_static_act static_act = {0};
    if (rc == 0 && o->repquant) {
        json_t *rq = NULL;
        rc = xf_repquant_model(m, &edit, cs.tokens, cs.nsamples, T, o->act.act_bits,
                               &static_act, &rq, err);
        if (rc == 0) {
            json_object_set_new(extra, "repquant", rq);
            json_object_set_new(extra, "static_act", xf_static_act_to_json(&static_act));
            oc.act.static_act = &static_act;
        }
    }
    if (rc == 0)
        rc = calibrate_scheme(m, &oc, &cs, T, prov, err);
    /* --gguf-type: every tensor's GGML type, planned on the model as it
     * will be exported (after any rotation); GPTQ's Hessians stand for
     * llama-quantize's imatrix */
    xf_gguf_type_plan plan = {0};
    const bool planned = rc == 0 && o->gguf;
    if (planned) {
        rc = xf_gguf_type_plan_init(&plan, &m->weights, o->gguf_ftype,
                                    o->method == XF_METHOD_GPTQ, m->path, err);
        if (rc == 0) {
            char types[256];
            xf_gguf_type_plan_summary(&plan, types, sizeof types);
            xf_log_info("--gguf-type %s: %s", xf_gguf_ftype_name(o->gguf_ftype), types);
        }
    }
    const xf_gguf_type_plan *pl = planned && rc == 0 ? &plan : NULL;
    /* the stages above run on every rank alike; from here GPTQ's are
     * collective, so a rank that failed alone stops all of them */
    rc = xf_dist_agree(d, rc, err);
    if (rc == 0)
        rc = o->method == XF_METHOD_RTN ? quantize_rtn(m, &oc, pl, &col, err)
                                        : quantize_gptq(m, &oc, pl, T, &cs, run, &place, d,
                                                        &col, run_info, err);
    if (planned)
        xf_gguf_type_plan_free(&plan);
    double t_quant = xf_now_seconds() - t0;
    if (rc == 0) {
        recipe = recipe_json(&oc);
        json_object_update(recipe, extra);
        json_object_set_new(recipe, "online_transforms", xf_online_to_json(&online));
    }
    /* an MPI job's ranks hold the same tensors: rank 0 writes */
    if (rc == 0)
        rc = xf_dist_agree(d, d->rank == 0 ? xf_quant_write_xfq(m, &col, recipe, prov, out_path,
                                                                err)
                                           : 0,
                           err);
    if (rc == 0 && summary) {
        int64_t qparams = 0, qbytes = 0;
        for (size_t i = 0; i < col.n; i++) {
            qparams += xf_tensor_numel(&col.items[i].tensor);
            qbytes += (int64_t)xf_qweight_packed_bytes(&col.items[i]); /* + outlier table */
        }
        *summary = json_pack("{s:s, s:s, s:o, s:I, s:I, s:f, s:f}", "output", out_path, "model",
                             m->path, "recipe", json_deep_copy(recipe), "quantized_tensors",
                             (json_int_t)col.n, "quantized_params", (json_int_t)qparams,
                             "bits_per_weight",
                             qparams ? 8.0 * (double)qbytes / (double)qparams : 0.0,
                             "seconds", t_quant);
        if (json_object_get(prov, "calibration"))
            json_object_set(*summary, "calibration", json_object_get(prov, "calibration"));
        json_object_set(*summary, "tensor_stats", col.stats);
        json_object_update(*summary, run_info);
    }
    xf_model_edit_free(&edit); /* restores m's own tensors */
    xf_online_free(&online);
    xf_static_act_free(&static_act);
    json_decref(extra);
    json_decref(run_info);
    free(place.spill_dir);
    xf_calib_set_free(&cs);
    xf_quant_collector_free(&col);
    json_decref(recipe);
    json_decref(prov);
    return rc;
}
