/* The public recipe API (include/xfquant.h): the option table of
 * pipeline/recipe_options.h behind opaque xf_recipe handles. Every bad
 * option or value is XF_USAGE (what a command line would exit 2 for). */
#include <stdlib.h>
#include <string.h>

#include "api/api_status.h"
#include "api/recipe_impl.h"
#include "core/json_util.h"
#include "include/xfquant.h"

/* (xf_free belongs with the rest of the library's common calls; it lives
 * here until those land.) */
XF_API void xf_free(void *p)
{
    free(p);
}

XF_API int xf_option_count(void)
{
    return xf_recipe_row_count();
}

XF_API int xf_option_get(int i, xf_option_info *info)
{
    const xf_recipe_row *row = xf_recipe_row_at(i);
    if (!row || !info)
        return -1;
    *info = (xf_option_info){.flag = row->flag,
                             .key = row->key,
                             .type = row->type,
                             .arg_name = row->arg_name,
                             .default_text = row->default_text,
                             .help = row->help,
                             .methods = row->methods,
                             .needs_calib = row->needs_calib};
    return 0;
}

_Static_assert((int)XF_OPT_BOOL == (int)XF_RO_BOOL && (int)XF_OPT_INT == (int)XF_RO_INT &&
                   (int)XF_OPT_FLOAT == (int)XF_RO_FLOAT &&
                   (int)XF_OPT_STRING == (int)XF_RO_STRING &&
                   (int)XF_OPT_ENUM == (int)XF_RO_ENUM && (int)XF_OPT_LIST == (int)XF_RO_LIST &&
                   (int)XF_METHOD_MASK_RTN == (int)XF_RO_RTN &&
                   (int)XF_METHOD_MASK_GPTQ == (int)XF_RO_GPTQ,
               "include/xfquant.h and pipeline/recipe_options.h number types and methods alike");

static xf_recipe *alloc_recipe(xf_status *st)
{
    xf_recipe *r = calloc(1, sizeof *r);
    if (!r && st) {
        st->code = XF_FAIL;
        snprintf(st->message, sizeof st->message, "out of memory");
    }
    return r;
}

XF_API xf_recipe *xf_recipe_new(const char *method, xf_status *st)
{
    xf_quant_method m;
    if (xf_quant_method_from_name(method, &m) != 0) {
        xf_error e = {0};
        xf_fail(&e, "method must be \"rtn\" or \"gptq\", not '%s'", method ? method : "");
        xf_api_fail(st, XF_USAGE, &e);
        return NULL;
    }
    xf_recipe *r = alloc_recipe(st);
    if (!r)
        return NULL;
    xf_quant_recipe_init(&r->q, m);
    xf_api_ok(st);
    return r;
}

XF_API xf_recipe *xf_recipe_from_json(const char *json_text, xf_status *st)
{
    xf_error e = {0};
    json_t *j = json_text ? xf_json_load_buffer(json_text, strlen(json_text), "recipe", &e)
                          : NULL;
    if (!j) {
        if (!json_text)
            xf_fail(&e, "recipe: no JSON text");
        xf_api_fail(st, XF_USAGE, &e);
        return NULL;
    }
    xf_recipe *r = alloc_recipe(st);
    if (!r) {
        json_decref(j);
        return NULL;
    }
    int rc = xf_quant_recipe_from_json(&r->q, j, "recipe", NULL, NULL, &e);
    json_decref(j);
    if (rc != 0) {
        free(r);
        xf_api_fail(st, XF_USAGE, &e);
        return NULL;
    }
    xf_api_ok(st);
    return r;
}

XF_API int xf_recipe_set(xf_recipe *r, const char *key, const char *value, xf_status *st)
{
    xf_error e = {0};
    if (!r)
        xf_fail(&e, "no recipe");
    if (!r || xf_quant_recipe_set(&r->q, key, value, &e) != 0)
        return xf_api_fail(st, XF_USAGE, &e);
    xf_api_ok(st);
    return 0;
}

XF_API int xf_recipe_check(const xf_recipe *r, xf_status *st)
{
    xf_error e = {0};
    if (!r)
        xf_fail(&e, "no recipe");
    if (!r || xf_quant_recipe_check(&r->q, &e) != 0)
        return xf_api_fail(st, XF_USAGE, &e);
    xf_api_ok(st);
    return 0;
}

XF_API char *xf_recipe_to_json(const xf_recipe *r, xf_status *st)
{
    json_t *j = r ? xf_quant_options_to_json(&r->q.o) : NULL;
    char *s = j ? xf_json_dump_sorted(j) : NULL;
    json_decref(j);
    if (!s) {
        xf_error e = {0};
        xf_fail(&e, r ? "recipe: out of memory" : "no recipe");
        xf_api_fail(st, r ? XF_FAIL : XF_USAGE, &e);
        return NULL;
    }
    xf_api_ok(st);
    return s;
}

XF_API void xf_recipe_free(xf_recipe *r)
{
    if (!r)
        return;
    xf_quant_recipe_free(&r->q);
    free(r);
}
