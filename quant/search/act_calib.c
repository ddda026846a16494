#include "quant/search/act_calib.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "model/forward.h"
#include "quant/search/clip_search.h"
#include "sim/online.h"
#include "quant/search/prob_calib.h"

typedef struct clip_ctx {
    xf_runner *runner;
    const xf_act_scheme *scheme;
    int last_layer;
    xf_act_clip_search search[XF_IN_COUNT];
} clip_ctx;

/* Adds the input x of one layer to its kind's search, through every linear
 * that reads it (q, k, v / gate, up / one). */
static int clip_hook(void *user, int layer, xf_linear_role role, float *x, int64_t rows,
                     int64_t cols, xf_error *err)
{
    clip_ctx *c = user;
    xf_lin_input in = xf_lin_input_of_role(role);
    /* the last layer's down input is the last hooked input: stop there, the
     * logits are not needed (and no buffer is given for them) */
    int done = layer == c->last_layer && in == XF_IN_DOWN ? XF_HOOK_STOP : 0;
    /* a rotated model's online transform comes first: the quantizer (and
     * so the search) sees the rotated input */
    if (c->scheme->online && xf_online_apply(c->scheme->online, layer, (int)role, x, rows, cols,
                                             err) != 0)
        return -1;
    if (!(c->scheme->act_inputs & (1u << in)))
        return done;
    const xf_dense_layer *dl = xf_runner_cached_layer(c->runner, layer);
    if (!dl)
        return xf_fail(err, "clip search: layer %d is not cached", layer);
    xf_linear_role readers[XF_IN_MAX_READERS];
    const int n = xf_lin_input_readers(&c->runner->mw->cfg, in, readers);
    char what[64];
    snprintf(what, sizeof what, "layer %d %s input", layer, xf_lin_input_name(in));
    for (int k = 0; k < n; k++) {
        xf_linear_role r = readers[k];
        if (dl->in[r] != cols)
            return xf_fail(err, "%s: %lld channels, the %s linear reads %lld", what,
                           (long long)cols, xf_linear_role_name(r), (long long)dl->in[r]);
        if (xf_act_clip_search_add(&c->search[in], x, rows, cols, dl->w[r], dl->out[r], what,
                                   err) != 0)
            return -1;
    }
    return done;
}

int xf_act_clip_calibrate(const xf_model_weights *mw, const int32_t *tokens, int64_t nsamples,
                          int64_t T, int64_t max_windows, xf_act_scheme *s, json_t **record,
                          xf_error *err)
{
    if (record)
        *record = NULL;
    if (s->act_bits <= 0)
        return xf_fail(err, "--act-clip search needs --act-bits");
    clip_ctx c = {.scheme = s, .last_layer = (int)mw->cfg.n_layers - 1};
    for (int i = 0; i < XF_IN_COUNT; i++)
        if (xf_act_clip_search_init(&c.search[i], s->act_bits, s->act_sym, s->act_group, NULL, 0,
                                    err) != 0)
            return -1;
    xf_runner runner;
    /* every layer cached: the hook multiplies by the layer's fp32 weights */
    if (xf_runner_init(&runner, mw, T, SIZE_MAX, err) != 0)
        return -1;
    c.runner = &runner;
    xf_forward_hooks hooks = {.user = &c, .on_linear_input = clip_hook};
    int64_t nw = nsamples < max_windows ? nsamples : max_windows;
    int rc = 0;
    for (int64_t w = 0; w < nw && rc == 0; w++) {
        int r = xf_runner_forward_hooked(&runner, tokens + w * T, T, &hooks, NULL, err);
        if (r == 0) /* cannot happen: the hook stops every pass */
            r = xf_fail(err, "clip search: the forward pass did not stop");
        rc = r < 0 ? -1 : 0;
    }
    json_t *inputs = json_object();
    for (int i = 0; i < XF_IN_COUNT && rc == 0; i++) {
        if (!(s->act_inputs & (1u << i)) || c.search[i].tokens == 0)
            continue;
        double best = xf_act_clip_search_best(&c.search[i]);
        s->act_clip_input[i] = best;
        double e = 0;
        for (int k = 0; k < c.search[i].n; k++)
            if (c.search[i].ratio[k] == best)
                e = c.search[i].err[k];
        json_object_set_new(inputs, xf_lin_input_name((xf_lin_input)i),
                            json_pack("{s:f, s:f}", "ratio", best, "output_sse", e));
    }
    if (rc == 0 && record)
        *record = json_pack("{s:I, s:o}", "windows", (json_int_t)nw, "inputs", inputs);
    else
        json_decref(inputs);
    xf_runner_free(&runner);
    for (int i = 0; i < XF_IN_COUNT; i++)
        xf_act_clip_search_free(&c.search[i]);
    return rc;
}

int xf_attn_prob_base_calibrate(const xf_model_weights *mw, const int32_t *tokens,
                                int64_t nsamples, int64_t T, int64_t max_windows,
                                xf_act_scheme *s, json_t **record, xf_error *err)
{
    if (record)
        *record = NULL;
    if (s->attn_prob_bits <= 0 || s->attn_prob_quant != XF_PROB_LOG2)
        return xf_fail(err, "--attn-prob-base search needs --attn-prob-bits and "
                            "--attn-prob-quant log2");
    xf_runner runner;
    if (xf_runner_init(&runner, mw, T, 0, err) != 0)
        return -1;
    double base = 1.0, kl = 0.0;
    int rc = xf_log2_base_calibrate(&runner, tokens, nsamples * T, T, max_windows, s,
                                    s->attn_prob_bits, XF_LOG2_FIT_LOGIT_KL, 0, &base, &kl, err);
    xf_runner_free(&runner);
    if (rc != 0)
        return -1;
    s->attn_prob_log2_base = base;
    if (record)
        *record = json_pack("{s:I, s:f, s:f}", "windows",
                            (json_int_t)(nsamples < max_windows ? nsamples : max_windows),
                            "log2_base", base, "mean_logit_kl", kl);
    return 0;
}
