/* xf_export: a model written for another engine through export/'s target
 * table (`xfquant export`), with the summary as text or JSON. */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "api/call.h"
#include "export/export.h"

XF_API int xf_export_target_info(int i, const char **name, const char **what)
{
    if (i < 0 || i >= xf_export_n_targets)
        return -1;
    if (name)
        *name = xf_export_targets[i].name;
    if (what)
        *what = xf_export_targets[i].what;
    return 0;
}

/* value among names[] (NULL-terminated) -> its index in vals; NULL: dflt. */
static int pick(const char *value, const char *const *names, const int *vals, int dflt, int *out)
{
    if (!value) {
        *out = dflt;
        return 0;
    }
    for (int i = 0; names[i]; i++)
        if (!strcmp(value, names[i])) {
            *out = vals[i];
            return 0;
        }
    return -1;
}

static int export_opts(const xf_export_options *o, xf_export_opts *x, xf_status *st)
{
    static const char *const floats[] = {"f16", "f32", "bf16", NULL};
    static const int float_v[] = {XF_EXPORT_FLOAT_F16, XF_EXPORT_FLOAT_F32, XF_EXPORT_FLOAT_BF16};
    static const char *const asyms[] = {"q5_0", "q4_1", NULL};
    static const int asym_v[] = {XF_GGUF_ASYM_Q5_0, XF_GGUF_ASYM_Q4_1};
    static const char *const falls[] = {"f16", "f32", NULL};
    static const int fall_v[] = {XF_EXPORT_FALLBACK_F16, XF_EXPORT_FALLBACK_F32};
    static const char *const zeros[] = {"auto", "v1", "v2", NULL};
    static const int zero_v[] = {XF_GPTQ_ZEROS_AUTO, XF_GPTQ_ZEROS_V1, XF_GPTQ_ZEROS_V2};
    int v;
    memset(x, 0, sizeof *x);
    if (pick(o->float_type, floats, float_v, XF_EXPORT_FLOAT_KEEP, &v) != 0)
        return xf_api_failf(st, XF_USAGE, "--type must be f16, f32 or bf16, not '%s'",
                            o->float_type);
    x->float_type = (xf_export_float)v;
    /* the zero value of xf_gguf_asym is the default (Q5_0) */
    if (pick(o->gguf_asym, asyms, asym_v, 0, &v) != 0)
        return xf_api_failf(st, XF_USAGE, "--gguf-asym must be q5_0 or q4_1, not '%s'",
                            o->gguf_asym);
    x->gguf_asym = (xf_gguf_asym)v;
    if (pick(o->fallback, falls, fall_v, XF_EXPORT_FALLBACK_NONE, &v) != 0)
        return xf_api_failf(st, XF_USAGE, "--fallback must be f16 or f32, not '%s'", o->fallback);
    x->fallback = (xf_export_fallback)v;
    if (pick(o->gptq_format, zeros, zero_v, XF_GPTQ_ZEROS_AUTO, &v) != 0)
        return xf_api_failf(st, XF_USAGE, "--gptq-format must be auto, v1 or v2, not '%s'",
                            o->gptq_format);
    x->gptq_zeros = (xf_gptq_zero_format)v;
    x->weights_only = o->weights_only != 0;
    return 0;
}

/* GGUF summary */
static void print_gguf(FILE *out, const json_t *s)
{
    fprintf(out, "wrote %s (%s, %s): %lld tensors, %lld bytes, %.4f bits per weight\n",
            json_string_value(json_object_get(s, "output")),
            json_string_value(json_object_get(s, "to")),
            json_string_value(json_object_get(s, "architecture")),
            (long long)json_integer_value(json_object_get(s, "tensors")),
            (long long)json_integer_value(json_object_get(s, "bytes")),
            json_real_value(json_object_get(s, "bits_per_weight")));
    const char *k;
    const json_t *e;
    json_object_foreach((json_t *)json_object_get(s, "types"), k, e)
        fprintf(out, "  %-6s %4lld tensors %12lld weights %.4f bits per weight\n", k,
                (long long)json_integer_value(json_object_get(e, "tensors")),
                (long long)json_integer_value(json_object_get(e, "params")),
                json_real_value(json_object_get(e, "bits_per_weight")));
    const json_t *ap = json_object_get(s, "approximate");
    if (json_array_size(ap) == 0)
        fprintf(out, "every quantized weight is exact\n");
    size_t i;
    json_array_foreach(ap, i, e)
        fprintf(out, "  approximate: %s as %s, max |error| %.3g (%s)\n",
                json_string_value(json_object_get(e, "tensor")),
                json_string_value(json_object_get(e, "type")),
                json_real_value(json_object_get(e, "max_abs_err")),
                json_string_value(json_object_get(e, "why")));
    const char *om = json_string_value(json_object_get(s, "omitted"));
    if (om)
        fprintf(out, "note: %s\n", om);
}

/* GPTQ / compressed-tensors summary */
static void print_checkpoint(FILE *out, const json_t *s)
{
    const char *target = json_string_value(json_object_get(s, "target"));
    fprintf(out, "%s -> %s (%s)\n", json_string_value(json_object_get(s, "input")),
            json_string_value(json_object_get(s, "output")), target);
    fprintf(out, "quantized linears: %lld, plain tensors: %lld, tensor bytes: %lld\n",
            (long long)json_integer_value(json_object_get(s, "quantized_linears")),
            (long long)json_integer_value(json_object_get(s, "plain_tensors")),
            (long long)json_integer_value(json_object_get(s, "tensor_bytes")));
    if (target && !strcmp(target, "gptq")) {
        fprintf(out, "checkpoint_format %s, bits %lld, group_size %lld, sym %s, desc_act %s\n",
                json_string_value(json_object_get(s, "checkpoint_format")),
                (long long)json_integer_value(json_object_get(s, "bits")),
                (long long)json_integer_value(json_object_get(s, "group_size")),
                json_is_true(json_object_get(s, "sym")) ? "true" : "false",
                json_is_true(json_object_get(s, "desc_act")) ? "true" : "false");
        fprintf(out, "vLLM kernel: %s (%s)\n", json_string_value(json_object_get(s, "vllm_kernel")),
                json_string_value(json_object_get(s, "vllm_kernel_reason")));
    } else {
        fprintf(out, "config groups: %lld, scales %s, vLLM scheme: %s\n",
                (long long)json_integer_value(json_object_get(s, "config_groups")),
                json_string_value(json_object_get(s, "scale_dtype")),
                json_string_value(json_object_get(s, "vllm_scheme")));
    }
    size_t i;
    const json_t *v;
    json_array_foreach(json_object_get(s, "kept_dtype"), i, v)
        fprintf(out, "kept in its .xfq dtype (not exact in the model's): %s\n",
                json_string_value(v));
    json_array_foreach(json_object_get(s, "omitted"), i, v)
        fprintf(out, "omitted (--weights-only): %s\n", json_string_value(v));
}

XF_API int xf_export(const char *in, const char *out, const xf_export_options *o,
                     const xf_run_opts *run, int format, char **report, xf_status *st)
{
    if (report)
        *report = NULL;
    if (!in || !out || !o)
        return xf_api_fail_msg(st, XF_USAGE, "xf_export: IN, OUT and options are required");
    if (!o->to)
        return xf_api_fail_msg(st, XF_USAGE, "--to TARGET is required");
    const xf_export_target *t = xf_export_find(o->to);
    if (!t)
        return xf_api_failf(st, XF_USAGE, "unknown target '%s'", o->to);
    if (format != XF_FORMAT_TEXT && format != XF_FORMAT_JSON)
        return xf_api_failf(st, XF_USAGE, "xf_export: unknown format %d", format);
    xf_export_opts x;
    if (export_opts(o, &x, st) != 0)
        return -1;
    x.progress = run && run->progress;
    xf_api_call call;
    xf_api_begin(&call, run);
    xf_error err = {0};
    json_t *summary = NULL;
    int rc = t->run(in, out, &x, &summary, &err);
    xf_api_end(&call);
    if (rc != 0) {
        json_decref(summary);
        return xf_api_fail(st, XF_FAIL, &err);
    }
    char *s = NULL;
    if (!report)
        ;
    else if (format == XF_FORMAT_JSON)
        s = json_dumps(summary, JSON_INDENT(2) | JSON_SORT_KEYS | JSON_REAL_PRECISION(10));
    else {
        xf_api_text tx;
        if (xf_api_text_open(&tx) == 0) {
            if (!strcmp(t->name, "gguf"))
                print_gguf(tx.f, summary);
            else
                print_checkpoint(tx.f, summary);
            s = xf_api_text_take(&tx);
        }
    }
    json_decref(summary);
    if (report) {
        if (!s) /* the file is written: only its summary is missing */
            return xf_api_failf(st, XF_FAIL, "%s: written, but out of memory for the summary", out);
        *report = s;
    }
    xf_api_ok(st);
    return 0;
}
