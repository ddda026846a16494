/* compressed-tensors pack-quantized writer. Codes are stored unsigned
 * (u = v + 2^(b-1), which is exactly the .xfq code), pf = 32 / b per int32
 * word, element j at bits [b*j, b*j + b) — for 3 bits 10 per word with the
 * top 2 bits unused (unlike GPTQ's 3-bit stream). weight_packed [N,
 * ceil(K/pf)] packs along K inside each row; weight_zero_point
 * [ceil(N/pf), G] packs along N. */
#include "export/ct_ckpt.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/progress.h"
#include "export/hf_dir_out.h"
#include "formats/safetensors.h"

enum { CT_PARTS = 5 }; /* packed, scale, zero_point, g_idx, shape */

static const char *const part_names[CT_PARTS] = {"weight_packed", "weight_scale",
                                                 "weight_zero_point", "weight_g_idx",
                                                 "weight_shape"};

/* The quantization scheme of one linear: linears with equal keys share a
 * config group. */
typedef struct ct_key {
    int bits;
    int64_t g;
    bool asym, act_order;
} ct_key;

static bool key_eq(ct_key a, ct_key b)
{
    return a.bits == b.bits && a.g == b.g && a.asym == b.asym && a.act_order == b.act_order;
}

static ct_key key_of(const xf_export_linear *l)
{
    return (ct_key){l->bits, l->g, l->asym, l->act_order};
}

static char *name_with(const char *module, const char *suffix)
{
    size_t n = strlen(module) + strlen(suffix) + 2;
    char *s = malloc(n);
    if (s)
        snprintf(s, n, "%s.%s", module, suffix);
    return s;
}

/* Scales in the model's dtype when it holds every fp16 scale exactly
 * (F16, F32); otherwise (BF16, unknown) fp16 — documented. */
static xf_dtype scale_dtype(const xf_export_src *s)
{
    return s->model_dtype == XF_DTYPE_F32 ? XF_DTYPE_F32 : XF_DTYPE_F16;
}

/* The headers (data NULL: filled while the file is written) of one
 * linear's tensors; part_of / lin_of record what each one is. */
static int describe_linear(const xf_export_src *s, size_t li, xf_tensor *out, size_t *n_out,
                           int *part_of, size_t *lin_of, xf_error *err)
{
    const xf_export_linear *l = &s->lin[li];
    const int64_t pf = 32 / l->bits, N = l->N, K = l->K, G = l->G;
    const int64_t shapes[CT_PARTS][2] = {
        {N, (K + pf - 1) / pf}, {N, G}, {(N + pf - 1) / pf, G}, {K, 0}, {2, 0}};
    const xf_dtype dt[CT_PARTS] = {XF_DTYPE_I32, scale_dtype(s), XF_DTYPE_I32, XF_DTYPE_I32,
                                   XF_DTYPE_I64};
    const bool present[CT_PARTS] = {true, true, l->asym, l->act_order, true};
    for (int k = 0; k < CT_PARTS; k++) {
        if (!present[k])
            continue;
        xf_tensor *t = &out[*n_out];
        memset(t, 0, sizeof *t);
        t->name = name_with(l->module, part_names[k]);
        if (!t->name)
            return xf_fail(err, "%s: tensor %s: out of memory", s->path, l->t->name);
        t->dtype = dt[k];
        t->ndim = shapes[k][1] ? 2 : 1;
        t->shape[0] = shapes[k][0];
        t->shape[1] = shapes[k][1];
        t->nbytes = (size_t)xf_tensor_numel(t) * xf_dtype_size(dt[k]);
        part_of[*n_out] = k;
        lin_of[*n_out] = li;
        (*n_out)++;
    }
    return 0;
}

typedef struct ct_fill {
    const xf_export_src *s;
    const int *part_of;
    const size_t *lin_of;
    uint8_t *codes; /* scratch: 2 * max K */
    xf_progress prog; /* linears written (shown on a TTY only) */
    int64_t done;
} ct_fill;

/* weight_packed [N, ceil(K/pf)]: pf codes per word along K, per row. */
static int fill_packed(const ct_fill *f, const xf_export_linear *l, uint32_t *packed,
                       xf_error *err)
{
    const int b = l->bits;
    const int64_t pf = 32 / b, N = l->N, K = l->K, kw = (K + pf - 1) / pf;
    for (int64_t n = 0; n < N; n++) {
        uint32_t *row = packed + n * kw;
        if (!l->act_order && b != 3) {
            /* for 2/4/8 bits the .xfq row is these words already (pf codes
             * per little-endian word); the bits past K are masked so that
             * padding is zero whatever the .xfq holds there */
            memcpy(row, l->t->packed.codes + (size_t)n * l->t->packed.row_bytes, (size_t)kw * 4);
            const int64_t tail = K - (kw - 1) * pf; /* codes in the last word */
            if (tail < pf)
                row[kw - 1] &= (1u << (b * tail)) - 1u;
            continue;
        }
        if (xf_export_row_codes(l, n, f->codes + K, f->codes, err) != 0)
            return -1;
        for (int64_t c = 0, i = 0; c < kw; c++) { /* word by word: no division per code */
            uint32_t w = 0;
            for (int j = 0; j < pf && i < K; j++, i++)
                w |= (uint32_t)f->codes[i] << (b * j);
            row[c] = w;
        }
    }
    return 0;
}

static int fill_part(void *ctx, size_t index, void *buf, xf_error *err)
{
    ct_fill *f = ctx;
    const xf_export_linear *l = &f->s->lin[f->lin_of[index]];
    const int b = l->bits;
    const int64_t pf = 32 / b, N = l->N, G = l->G;
    switch (f->part_of[index]) {
    case 0:
        xf_progress_update(&f->prog, ++f->done, (int64_t)f->s->n_lin, 0, l->module);
        return fill_packed(f, l, buf, err);
    case 1: { /* the .xfq's [N, G] fp16 scales, as they are or widened */
        if (scale_dtype(f->s) == XF_DTYPE_F16) {
            memcpy(buf, l->t->packed.scales, (size_t)(N * G) * 2);
            return 0;
        }
        xf_tensor h = {.name = l->t->name, .dtype = XF_DTYPE_F16, .ndim = 1, .shape = {N * G},
                       .data = l->t->packed.scales, .nbytes = (size_t)(N * G) * 2};
        return xf_tensor_to_f32(&h, buf, err); /* fp16 -> fp32 is exact */
    }
    case 2: { /* u_zp = z, pf per word along N */
        uint32_t *zp = buf;
        for (int64_t n = 0; n < N; n++)
            for (int64_t g = 0; g < G; g++)
                zp[(n / pf) * G + g] |= (uint32_t)xf_export_zero(l, n, g) << (b * (int)(n % pf));
        return 0;
    }
    case 3: xf_export_group_index(l, buf); return 0;
    default: {
        int64_t *shape = buf;
        shape[0] = N;
        shape[1] = l->K;
        return 0;
    }
    }
}

/* config_groups + ignore. One scheme: targets ["Linear"]; several: each
 * group targets its modules by name. */
static json_t *quant_config(const xf_export_src *s, const char **vllm, int *n_groups)
{
    ct_key *keys = calloc(s->n_lin, sizeof *keys);
    int *of = calloc(s->n_lin, sizeof *of);
    json_t *groups = json_object(), *ignore = json_array();
    int nk = 0;
    for (size_t i = 0; keys && of && i < s->n_lin; i++) {
        ct_key k = key_of(&s->lin[i]);
        int j = 0;
        while (j < nk && !key_eq(keys[j], k))
            j++;
        if (j == nk)
            keys[nk++] = k;
        of[i] = j;
    }
    bool vllm_ok = true;
    for (int j = 0; keys && of && j < nk; j++) {
        json_t *targets = json_array();
        if (nk == 1)
            json_array_append_new(targets, json_string("Linear"));
        else
            for (size_t i = 0; i < s->n_lin; i++)
                if (of[i] == j)
                    json_array_append_new(targets, json_string(s->lin[i].module));
        vllm_ok = vllm_ok && (keys[j].bits == 4 || keys[j].bits == 8);
        json_t *w = json_pack(
            "{s:i, s:s, s:b, s:s, s:o, s:o, s:b, s:n, s:n}", "num_bits", keys[j].bits, "type",
            "int", "symmetric", !keys[j].asym, "strategy", keys[j].g > 0 ? "group" : "channel",
            "group_size", keys[j].g > 0 ? json_integer(keys[j].g) : json_null(), "actorder",
            keys[j].act_order ? json_string("group") : json_null(), "dynamic", 0,
            "block_structure", "observer");
        json_object_del(w, "observer"); /* defaults of the library fill the rest */
        char name[32];
        snprintf(name, sizeof name, "group_%d", j);
        json_object_set_new(groups, name,
                            json_pack("{s:o, s:o, s:n, s:n, s:s}", "targets", targets, "weights",
                                      w, "input_activations", "output_activations", "format",
                                      "pack-quantized"));
    }
    size_t i;
    const json_t *v;
    json_array_foreach(s->linear_modules, i, v)
    {
        bool quantized = false;
        for (size_t k = 0; k < s->n_lin && !quantized; k++)
            quantized = !strcmp(s->lin[k].module, json_string_value(v));
        if (!quantized)
            json_array_append_new(ignore, json_string(json_string_value(v)));
    }
    free(keys);
    free(of);
    *vllm = vllm_ok ? "CompressedTensorsWNA16" : "none";
    *n_groups = nk;
    return json_pack("{s:s, s:s, s:s, s:o, s:o, s:n}", "quant_method", "compressed-tensors",
                     "format", "pack-quantized", "quantization_status", "compressed", "ignore",
                     ignore, "config_groups", groups, "kv_cache_scheme");
}

int xf_export_compressed_tensors(const char *in, const char *out_dir,
                                 const xf_export_opts *o, json_t **summary, xf_error *err)
{
    if (summary)
        *summary = NULL;
    if (xf_hf_dir_out_check(out_dir, err) != 0)
        return -1;
    xf_export_src s;
    if (xf_export_src_open(&s, in, "compressed-tensors", o, err) != 0)
        return -1;
    xf_export_plain *plain = NULL;
    size_t n_plain = 0, n_out = 0;
    xf_tensor *list = NULL;
    int *part_of = NULL;
    size_t *lin_of = NULL;
    ct_fill fill = {.s = &s};
    json_t *files = json_array(), *kept = json_array();
    xf_hf_dir_out d = {0};
    int rc = -1;
    if (!files || !kept) {
        xf_fail(err, "%s: out of memory", in);
        goto out;
    }
    if (xf_export_plain_tensors(&s, &plain, &n_plain, err) != 0)
        goto out;
    const size_t cap = n_plain + CT_PARTS * s.n_lin;
    list = calloc(cap, sizeof *list);
    part_of = calloc(cap, sizeof *part_of);
    lin_of = calloc(cap, sizeof *lin_of);
    int64_t max_k = 1;
    for (size_t i = 0; i < s.n_lin; i++)
        max_k = s.lin[i].K > max_k ? s.lin[i].K : max_k;
    fill.codes = malloc((size_t)(2 * max_k));
    fill.part_of = part_of;
    fill.lin_of = lin_of;
    if (!list || !part_of || !lin_of || !fill.codes) {
        xf_fail(err, "%s: out of memory", in);
        goto out;
    }
    for (size_t i = 0; i < n_plain; i++) {
        list[n_out++] = plain[i].t;
        if (plain[i].kept_dtype)
            json_array_append_new(kept, json_string(plain[i].t.name));
    }
    for (size_t i = 0; i < s.n_lin; i++)
        if (describe_linear(&s, i, list, &n_out, part_of, lin_of, err) != 0)
            goto out;
    const char *vllm = NULL;
    int n_groups = 0;
    json_t *qc = quant_config(&s, &vllm, &n_groups);

    if (xf_hf_dir_out_begin(&d, out_dir, err) != 0) {
        json_decref(qc);
        goto out;
    }
    char *st_path = xf_hf_dir_out_path(&d, "model.safetensors");
    json_t *st_meta = json_pack("{s:s}", "format", "pt");
    xf_progress_init(&fill.prog, "export compressed-tensors: linear");
    int wrc = st_path ? xf_safetensors_write_filled(st_path, list, n_out, st_meta, fill_part,
                                                    &fill, err)
                      : xf_fail(err, "%s: out of memory", out_dir);
    xf_progress_finish(&fill.prog);
    free(st_path);
    json_decref(st_meta);
    json_t *cfg = xf_export_config(&s, qc);
    if (wrc == 0)
        wrc = cfg ? xf_hf_dir_out_json(&d, "config.json", cfg, err)
                  : xf_fail(err, "%s: out of memory", out_dir);
    json_decref(cfg);
    if (wrc != 0)
        goto out;
    json_array_append_new(files, json_string("model.safetensors"));
    json_array_append_new(files, json_string("config.json"));
    if (xf_export_write_tokenizer(&s, &d, files, err) != 0 ||
        xf_export_write_provenance(&s, &d, "compressed-tensors", err) != 0)
        goto out;
    json_array_append_new(files, json_string("xfquant_export.json"));
    if (xf_hf_dir_out_commit(&d, err) != 0)
        goto out;
    rc = 0;
    if (summary) {
        size_t bytes = 0;
        for (size_t i = 0; i < n_out; i++)
            bytes += list[i].nbytes;
        *summary = json_pack("{s:s, s:s, s:s, s:s, s:i, s:I, s:I, s:I, s:s, s:s, s:O, s:O, s:O}",
                             "target", "compressed-tensors", "input", in, "output", out_dir,
                             "format", "pack-quantized", "config_groups", n_groups,
                             "quantized_linears", (json_int_t)s.n_lin, "plain_tensors",
                             (json_int_t)n_plain, "tensor_bytes", (json_int_t)bytes,
                             "vllm_scheme", vllm, "scale_dtype",
                             xf_dtype_name(scale_dtype(&s)), "kept_dtype", kept, "omitted",
                             s.omitted, "files", files);
    }
out:
    xf_hf_dir_out_abort(&d);
    for (size_t i = n_plain; list && i < n_out; i++)
        free((void *)list[i].name);
    free(list);
    free(part_of);
    free(lin_of);
    free(fill.codes);
    xf_export_plain_free(plain, n_plain);
    json_decref(files);
    json_decref(kept);
    xf_export_src_close(&s);
    return rc;
}
