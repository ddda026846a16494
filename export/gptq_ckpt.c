/* GPTQ checkpoint writer. Layout (docs/export.md): qweight I32 [K*b/32, N]
 * packed along K, qzeros I32 [G, N*b/32] packed along N, scales F16
 * [G, N], g_idx I32 [K]; the .xfq's [N, K] codes are transposed on the way. */
#include "export/gptq_ckpt.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/progress.h"
#include "export/hf_dir_out.h"
#include "formats/safetensors.h"

void xf_gptq_put_bits(uint32_t *words, size_t stride, int64_t i, int bits, uint32_t v)
{
    const uint64_t bit = (uint64_t)i * (uint64_t)bits;
    const uint64_t w = bit / 32;
    const unsigned sh = (unsigned)(bit % 32);
    words[w * stride] |= v << sh;
    if (sh + (unsigned)bits > 32) /* 3-bit values straddling two words */
        words[(w + 1) * stride] |= v >> (32 - sh);
}

/* n values of `bits` bits as one little-endian bit stream of words (the
 * same layout as xf_gptq_put_bits with stride 1, on zeroed words), with a
 * 64-bit accumulator: the hot loop of the export. */
static void pack_stream(const uint8_t *v, int64_t n, int bits, uint32_t *out)
{
    uint64_t acc = 0;
    int nb = 0;
    int64_t w = 0;
    for (int64_t i = 0; i < n; i++) {
        acc |= (uint64_t)v[i] << nb;
        nb += bits;
        if (nb >= 32) {
            out[w++] = (uint32_t)acc;
            acc >>= 32;
            nb -= 32;
        }
    }
    if (nb > 0)
        out[w] = (uint32_t)acc;
}

/* The settings every linear must share (one quantization_config). */
typedef struct gptq_plan {
    int bits;
    int64_t group;        /* config group_size, -1 = per-channel */
    bool sym, desc_act, lm_head;
    bool v2;              /* checkpoint_format gptq_v2 */
    const char *kernel;   /* vLLM kernel the file qualifies for */
    char kernel_why[256];
} gptq_plan;

/* One group size for the config: each linear's groups must be exactly
 * the ones the config implies (loaders size scales from it and, without
 * desc_act, recompute g_idx = i // group_size). */
static int plan_group(const xf_export_src *s, gptq_plan *p, xf_error *err)
{
    p->group = -1;
    for (size_t i = 0; i < s->n_lin; i++)
        if (s->lin[i].g > 0 && (p->group < 0 || s->lin[i].g < p->group))
            p->group = s->lin[i].g;
    for (size_t i = 0; i < s->n_lin; i++) {
        const xf_export_linear *l = &s->lin[i];
        bool ok = l->g > 0 ? l->g == p->group : (p->group < 0 || p->group >= l->K);
        if (!ok)
            return xf_fail(err, "%s: tensor %s has group size %lld but others %lld; a GPTQ "
                                "config holds one group_size",
                           s->path, l->t->name, (long long)(l->g > 0 ? l->g : l->K),
                           (long long)p->group);
    }
    return 0;
}

static int plan(const xf_export_src *s, const xf_export_opts *o, gptq_plan *p, xf_error *err)
{
    memset(p, 0, sizeof *p);
    p->bits = s->lin[0].bits;
    p->sym = true;
    bool zero_is_0 = false;
    for (size_t i = 0; i < s->n_lin; i++) {
        const xf_export_linear *l = &s->lin[i];
        if (l->bits != p->bits)
            return xf_fail(err, "%s: tensor %s has %d bits but %s has %d; a GPTQ config holds "
                                "one bit width",
                           s->path, l->t->name, l->bits, s->lin[0].t->name, p->bits);
        /* K·b and N·b must fill whole 32-bit words (3 bits: multiples of 32) */
        if ((l->K * l->bits) % 32 != 0 || (l->N * l->bits) % 32 != 0)
            return xf_fail(err, "%s: tensor %s is [%lld, %lld]; %d-bit GPTQ packing needs "
                                "in and out features that are multiples of %d",
                           s->path, l->t->name, (long long)l->N, (long long)l->K, l->bits,
                           l->bits == 3 ? 32 : 32 / l->bits);
        p->sym = p->sym && !l->asym;
        p->desc_act = p->desc_act || l->act_order;
        p->lm_head = p->lm_head || !strcmp(l->module, "lm_head");
        for (int64_t r = 0; l->asym && !zero_is_0 && r < l->N; r++)
            for (int64_t g = 0; g < l->G; g++)
                if (xf_export_zero(l, r, g) == 0) {
                    zero_is_0 = true;
                    break;
                }
    }
    if (plan_group(s, p, err) != 0)
        return -1;
    if (o->gptq_zeros == XF_GPTQ_ZEROS_V1 && zero_is_0)
        return xf_fail(err, "%s: some zero point is 0, which checkpoint_format \"gptq\" (v1, "
                            "stored z - 1) cannot hold; use gptq_v2",
                       s->path);
    p->v2 = o->gptq_zeros == XF_GPTQ_ZEROS_V2 || (o->gptq_zeros == XF_GPTQ_ZEROS_AUTO && zero_is_0);

    /* vLLM's kernel choice (docs/export.md) */
    const int64_t g = p->group;
    bool marlin = p->sym && (p->bits == 4 || p->bits == 8) &&
                  (g == -1 || g == 32 || g == 64 || g == 128);
    const int nmul = p->bits == 4 ? 8 : p->bits == 2 ? 16 : p->bits == 8 ? 4 : 32;
    bool plain = true;
    const char *why_m = marlin ? NULL : "needs sym 4/8-bit and group -1/32/64/128";
    const char *why_p = NULL;
    for (size_t i = 0; i < s->n_lin; i++) {
        const xf_export_linear *l = &s->lin[i];
        if (marlin && (l->N % 64 != 0 || l->K % 128 != 0)) {
            marlin = false;
            why_m = "needs out % 64 = 0 and in % 128 = 0 on every layer";
        }
        if (plain && ((g > 0 && l->K % g != 0) || l->N % nmul != 0)) {
            plain = false;
            why_p = "needs in % group_size = 0 and out a multiple of the packing width";
        }
    }
    if (marlin) {
        p->kernel = "gptq_marlin";
        snprintf(p->kernel_why, sizeof p->kernel_why, "sym %d-bit, group %lld, shapes fit",
                 p->bits, (long long)g);
    } else if (plain) {
        p->kernel = "gptq";
        snprintf(p->kernel_why, sizeof p->kernel_why, "gptq_marlin %s; plain gptq runs fp16 "
                 "activations only", why_m);
    } else {
        p->kernel = "none";
        snprintf(p->kernel_why, sizeof p->kernel_why, "gptq_marlin %s; gptq %s "
                 "(transformers/GPTQModel torch kernels still load it)", why_m, why_p);
    }
    return 0;
}

/* The four tensors of one linear, in the order `part` numbers them. */
enum { PART_QWEIGHT, PART_QZEROS, PART_SCALES, PART_GIDX, N_PARTS };
static const char *const part_suffix[N_PARTS] = {"qweight", "qzeros", "scales", "g_idx"};

static char *name_with(const char *module, const char *suffix)
{
    size_t n = strlen(module) + strlen(suffix) + 2;
    char *s = malloc(n);
    if (s)
        snprintf(s, n, "%s.%s", module, suffix);
    return s;
}

/* The headers (name, dtype, shape, nbytes; data NULL: filled while the
 * file is written, see fill_part) of one linear's tensors. */
static int describe_linear(const xf_export_src *s, const xf_export_linear *l, xf_tensor *out,
                           xf_error *err)
{
    const int b = l->bits;
    const int64_t shapes[N_PARTS][2] = {
        {l->K * b / 32, l->N}, {l->G, l->N * b / 32}, {l->G, l->N}, {l->K, 0}};
    const xf_dtype dt[N_PARTS] = {XF_DTYPE_I32, XF_DTYPE_I32, XF_DTYPE_F16, XF_DTYPE_I32};
    for (int k = 0; k < N_PARTS; k++) {
        xf_tensor *t = &out[k];
        memset(t, 0, sizeof *t);
        t->name = name_with(l->module, part_suffix[k]);
        if (!t->name) {
            for (int j = 0; j < k; j++)
                free((void *)out[j].name);
            return xf_fail(err, "%s: tensor %s: out of memory", s->path, l->t->name);
        }
        t->dtype = dt[k];
        t->ndim = k == PART_GIDX ? 1 : 2;
        t->shape[0] = shapes[k][0];
        t->shape[1] = shapes[k][1];
        t->nbytes = (size_t)xf_tensor_numel(t) * xf_dtype_size(dt[k]);
    }
    return 0;
}

/* What the safetensors writer needs to produce each tensor's bytes. */
typedef struct gptq_fill {
    const xf_export_src *s;
    const gptq_plan *p;
    size_t first_linear;   /* index of the first linear's first tensor */
    uint8_t *codes;        /* scratch: 2 * max K */
    uint32_t *cols;        /* scratch: CHUNK * max K*b/32 */
    xf_progress prog;      /* linears written (shown on a TTY only) */
    int64_t done;
} gptq_fill;

enum { CHUNK = 16 };

/* qweight [K*b/32, N]: column n is .xfq row n along K. Columns are packed
 * CHUNK at a time into `cols` ([CHUNK][kw], each a contiguous bit stream)
 * and stored row by row, so that qweight is written in whole cache lines
 * rather than one word per line. */
static int fill_qweight(const gptq_fill *f, const xf_export_linear *l, uint32_t *qweight,
                        xf_error *err)
{
    const int b = l->bits;
    const int64_t N = l->N, K = l->K, kw = K * b / 32;
    for (int64_t n0 = 0; n0 < N; n0 += CHUNK) {
        const int64_t nc = N - n0 < CHUNK ? N - n0 : CHUNK;
        for (int64_t c = 0; c < nc; c++) {
            const int64_t n = n0 + c;
            if (!l->act_order) {
                /* the .xfq row is already this bit stream (code i at bits
                 * b*i, little-endian; docs/xfq-format.md): its first kw
                 * words are the column */
                memcpy(f->cols + c * kw,
                       l->t->packed.codes + (size_t)n * l->t->packed.row_bytes, (size_t)kw * 4);
            } else {
                if (xf_export_row_codes(l, n, f->codes + K, f->codes, err) != 0)
                    return -1;
                pack_stream(f->codes, K, b, f->cols + c * kw);
            }
        }
        for (int64_t w = 0; w < kw; w++)
            for (int64_t c = 0; c < nc; c++)
                qweight[w * N + n0 + c] = f->cols[c * kw + w];
    }
    return 0;
}

static int fill_part(void *ctx, size_t index, void *buf, xf_error *err)
{
    gptq_fill *f = ctx;
    const size_t k = index - f->first_linear;
    const xf_export_linear *l = &f->s->lin[k / N_PARTS];
    const int64_t N = l->N, G = l->G, nw = N * l->bits / 32;
    switch (k % N_PARTS) {
    case PART_QWEIGHT:
        xf_progress_update(&f->prog, ++f->done, (int64_t)f->s->n_lin, 0, l->module);
        return fill_qweight(f, l, buf, err);
    case PART_QZEROS:
        for (int64_t n = 0; n < N; n++)
            for (int64_t g = 0; g < G; g++) {
                const int z = xf_export_zero(l, n, g);
                xf_gptq_put_bits((uint32_t *)buf + g * nw, 1, n, l->bits,
                                 (uint32_t)(f->p->v2 ? z : z - 1));
            }
        return 0;
    case PART_SCALES: { /* the .xfq's fp16 [N, G], transposed */
        uint16_t *sc = buf;
        for (int64_t n = 0; n < N; n++)
            for (int64_t g = 0; g < G; g++)
                sc[g * N + n] = l->t->packed.scales[n * G + g];
        return 0;
    }
    default: xf_export_group_index(l, buf); return 0;
    }
}

static json_t *quant_config(const xf_export_src *s, const gptq_plan *p)
{
    const char *fmt = p->v2 ? "gptq_v2" : "gptq";
    json_t *q = json_pack("{s:s, s:i, s:I, s:b, s:b, s:s, s:s, s:b, s:s, s:b, s:b}", "quant_method",
                          "gptq", "bits", p->bits, "group_size", (json_int_t)p->group, "desc_act",
                          p->desc_act, "sym", p->sym, "checkpoint_format", fmt, "format", fmt,
                          "lm_head", p->lm_head, "pack_dtype", "int32", "true_sequential", 1,
                          "static_groups",
                          json_is_true(json_object_get(s->recipe, "static_groups")));
    const json_t *damp = json_object_get(s->recipe, "damp");
    if (json_is_number(damp))
        json_object_set_new(q, "damp_percent", json_real(json_number_value(damp)));
    json_object_set_new(q, "meta", json_pack("{s:[s]}", "quantizer", "xfquant:" XF_VERSION));
    return q;
}

int xf_export_gptq(const char *in, const char *out_dir, const xf_export_opts *o,
                   json_t **summary, xf_error *err)
{
    if (summary)
        *summary = NULL;
    if (xf_hf_dir_out_check(out_dir, err) != 0)
        return -1;
    xf_export_src s;
    if (xf_export_src_open(&s, in, "GPTQ", o, err) != 0)
        return -1;
    gptq_plan p;
    xf_export_plain *plain = NULL;
    size_t n_plain = 0, n_out = 0;
    xf_tensor *list = NULL;
    gptq_fill fill = {.s = &s, .p = &p};
    json_t *files = json_array(), *kept = json_array();
    xf_hf_dir_out d = {0};
    int rc = -1;
    if (!files || !kept) {
        xf_fail(err, "%s: out of memory", in);
        goto out;
    }
    if (plan(&s, o, &p, err) != 0 || xf_export_plain_tensors(&s, &plain, &n_plain, err) != 0)
        goto out;
    list = calloc(n_plain + N_PARTS * s.n_lin, sizeof *list);
    int64_t max_k = 1, max_kw = 1;
    for (size_t i = 0; i < s.n_lin; i++) {
        max_k = s.lin[i].K > max_k ? s.lin[i].K : max_k;
        max_kw = s.lin[i].K * s.lin[i].bits / 32 > max_kw ? s.lin[i].K * s.lin[i].bits / 32 : max_kw;
    }
    fill.codes = malloc((size_t)(2 * max_k));
    fill.cols = malloc((size_t)(CHUNK * max_kw) * sizeof *fill.cols);
    if (!list || !fill.codes || !fill.cols) {
        xf_fail(err, "%s: out of memory", in);
        goto out;
    }
    for (size_t i = 0; i < n_plain; i++) {
        list[n_out++] = plain[i].t;
        if (plain[i].kept_dtype)
            json_array_append_new(kept, json_string(plain[i].t.name));
    }
    fill.first_linear = n_out;
    for (size_t i = 0; i < s.n_lin; i++, n_out += N_PARTS)
        if (describe_linear(&s, &s.lin[i], list + n_out, err) != 0)
            goto out;

    /* everything is checked: now write (the quantized tensors are packed
     * one at a time as the file is written) */
    if (xf_hf_dir_out_begin(&d, out_dir, err) != 0)
        goto out;
    char *st_path = xf_hf_dir_out_path(&d, "model.safetensors");
    json_t *st_meta = json_pack("{s:s}", "format", "pt");
    xf_progress_init(&fill.prog, "export gptq: linear");
    int wrc = st_path ? xf_safetensors_write_filled(st_path, list, n_out, st_meta, fill_part,
                                                    &fill, err)
                      : xf_fail(err, "%s: out of memory", out_dir);
    xf_progress_finish(&fill.prog);
    free(st_path);
    json_decref(st_meta);
    if (wrc != 0)
        goto out;
    json_array_append_new(files, json_string("model.safetensors"));
    json_t *qc = quant_config(&s, &p);
    json_t *cfg = xf_export_config(&s, json_deep_copy(qc));
    wrc = cfg ? xf_hf_dir_out_json(&d, "config.json", cfg, err)
              : xf_fail(err, "%s: out of memory", out_dir);
    if (wrc == 0)
        wrc = xf_hf_dir_out_json(&d, "quantize_config.json", qc, err);
    json_decref(cfg);
    json_decref(qc);
    if (wrc != 0)
        goto out;
    json_array_append_new(files, json_string("config.json"));
    json_array_append_new(files, json_string("quantize_config.json"));
    if (xf_export_write_tokenizer(&s, &d, files, err) != 0 ||
        xf_export_write_provenance(&s, &d, "gptq", err) != 0)
        goto out;
    json_array_append_new(files, json_string("xfquant_export.json"));
    if (xf_hf_dir_out_commit(&d, err) != 0)
        goto out;
    rc = 0;
    if (summary) {
        size_t bytes = 0;
        for (size_t i = 0; i < n_out; i++)
            bytes += list[i].nbytes;
        *summary = json_pack(
            "{s:s, s:s, s:s, s:s, s:i, s:I, s:b, s:b, s:b, s:I, s:I, s:I, s:s, s:s, s:O, s:O, "
            "s:O}",
            "target", "gptq", "input", in, "output", out_dir, "checkpoint_format",
            p.v2 ? "gptq_v2" : "gptq", "bits", p.bits, "group_size", (json_int_t)p.group,
            "sym", p.sym, "desc_act", p.desc_act, "lm_head", p.lm_head, "quantized_linears",
            (json_int_t)s.n_lin, "plain_tensors", (json_int_t)n_plain, "tensor_bytes",
            (json_int_t)bytes, "vllm_kernel", p.kernel, "vllm_kernel_reason", p.kernel_why,
            "kept_dtype", kept, "omitted", s.omitted, "files", files);
    }
out:
    xf_hf_dir_out_abort(&d);
    for (size_t i = n_plain; list && i < n_out; i++)
        free((void *)list[i].name);
    free(list);
    free(fill.codes);
    free(fill.cols);
    xf_export_plain_free(plain, n_plain);
    json_decref(files);
    json_decref(kept);
    xf_export_src_close(&s);
    return rc;
}
