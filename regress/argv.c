/* The evaluation options a regression case stands for, as `xfquant
 * ppl|kld` arguments (its recipe is the option table's own object:
 * pipeline/recipe_options.h, no command line in between). */
#include <inttypes.h>
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
    if (e->half > 0)
        push_int(&a, "--text-half", e->half);
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
