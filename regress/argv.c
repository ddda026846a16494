/* The command lines a regression case stands for: the recipe as
 * `xfquant rtn|gptq` arguments, the evaluation as `xfquant ppl|kld`
 * options. This is where "keys map 1:1 to flags" is written down. */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "regress/suite.h"

typedef struct {
    char **v;
    int n, cap;
    bool oom;
} strv;

static void push(strv *a, const char *s)
{
    if (a->oom)
        return;
    if (a->n + 2 > a->cap) {
        int cap = a->cap ? 2 * a->cap : 16;
        char **v = realloc(a->v, (size_t)cap * sizeof *v);
        if (!v) {
            a->oom = true;
            return;
        }
        a->v = v;
        a->cap = cap;
    }
    if (!(a->v[a->n] = strdup(s))) {
        a->oom = true;
        return;
    }
    a->v[++a->n] = NULL;
}

static void push_int(strv *a, const char *flag, int64_t v)
{
    if (v == XF_REGRESS_ABSENT)
        return;
    char buf[32];
    snprintf(buf, sizeof buf, "%" PRId64, v);
    push(a, flag);
    push(a, buf);
}

static void push_str(strv *a, const char *flag, const char *v)
{
    if (!v)
        return;
    push(a, flag);
    push(a, v);
}

/* Tri-state booleans: true gives the flag; false and absent both mean the
 * CLI default, which is "off" for every boolean flag of rtn/gptq. */
static void push_bool(strv *a, const char *flag, int v)
{
    if (v == 1)
        push(a, flag);
}

static char **finish(strv *a, int *argc)
{
    if (!a->v && !a->oom) {
        a->v = calloc(1, sizeof *a->v);
        a->oom = !a->v;
    }
    if (a->oom) {
        xf_regress_argv_free(a->v);
        *argc = 0;
        return NULL;
    }
    *argc = a->n;
    return a->v;
}

char **xf_regress_quant_argv(const xf_regress_case *c, const char *out_xfq, int *argc)
{
    const xf_regress_recipe *r = &c->recipe;
    strv a = {0};
    if (r->method == XF_REGRESS_FP16 || r->method == XF_REGRESS_LLAMA_QUANTIZE)
        return finish(&a, argc);
    push(&a, xf_regress_method_name(r->method));
    push_str(&a, "--gguf-type", r->gguf_type);
    push_int(&a, "--bits", r->bits);
    push_int(&a, "--group", r->group);
    push_bool(&a, "--sym", r->sym);
    push_str(&a, "--clip", r->clip);
    push_bool(&a, "--quantize-head", r->quantize_head);
    push_int(&a, "--act-bits", r->act_bits);
    push_int(&a, "--kv-bits", r->kv_bits);
    push_str(&a, "--rotate", r->rotation);
    push_str(&a, "--calib", r->calib_path);
    push_str(&a, "--calib-field", r->calib_field);
    push_str(&a, "--calib-format", r->calib_format);
    push_int(&a, "--nsamples", r->nsamples);
    push_int(&a, "--seqlen", r->seqlen);
    push_int(&a, "--seed", r->seed);
    push_bool(&a, "--act-order", r->act_order);
    push_bool(&a, "--static-groups", r->static_groups);
    push_bool(&a, "--gptq-v2", r->gptq_v2);
    if (!isnan(r->damp)) {
        /* shortest decimal that reads back as the same double */
        char buf[32];
        for (int digits = 15; digits <= 17; digits++) {
            snprintf(buf, sizeof buf, "%.*g", digits, r->damp);
            if (strtod(buf, NULL) == r->damp)
                break;
        }
        push_str(&a, "--damp", buf);
    }
    push_int(&a, "--block", r->block);
    for (int i = 0; i < r->n_scheme_flags; i++)
        push(&a, r->scheme_flags[i]);
    push(&a, c->model_path);
    push(&a, out_xfq);
    return finish(&a, argc);
}

char **xf_regress_eval_argv(const xf_regress_case *c, int *argc)
{
    const xf_regress_eval *e = &c->eval;
    strv a = {0};
    push_str(&a, "--text", e->text_path);
    push_str(&a, "--protocol", xf_protocol_name(e->protocol));
    push_int(&a, "--seqlen", e->seqlen);
    push_int(&a, "--ctx", e->ctx);
    if (e->max_windows > 0)
        push_int(&a, "--max-windows", e->max_windows);
    return finish(&a, argc);
}

void xf_regress_argv_free(char **argv)
{
    if (!argv)
        return;
    for (char **p = argv; *p; p++)
        free(*p);
    free(argv);
}
