/* xf_recipe_from_file: a recipe JSON people share (`--recipe FILE`). The
 * file may hold the options flat, as a .xfq records them ("options"), or
 * as `xfquant info --json` shows them ("recipe"."options"); the caller's
 * own keys are dropped from it so that they override the file. */
#include <stdlib.h>
#include <string.h>

#include "api/api_status.h"
#include "api/recipe_impl.h"
#include "core/json_util.h"
#include "core/read_file.h"
#include "include/xfquant.h"

/* The object holding the options inside the file's JSON. */
static json_t *options_object(json_t *j)
{
    json_t *inner;
    if (json_is_object(inner = json_object_get(j, "options")))
        return inner;
    if (json_is_object(inner = json_object_get(json_object_get(j, "recipe"), "options")))
        return inner;
    return j;
}

XF_API xf_recipe *xf_recipe_from_file(const char *path, const char *method,
                                      const char *const *skip, xf_status *st)
{
    xf_error e = {0};
    xf_quant_method want;
    if (!path || xf_quant_method_from_name(method, &want) != 0) {
        xf_fail(&e, "xf_recipe_from_file: needs a path and the method 'rtn' or 'gptq'");
        xf_api_fail(st, XF_USAGE, &e);
        return NULL;
    }
    char *text = NULL;
    size_t len = 0;
    if (xf_read_file(path, &text, &len, &e) != 0) {
        xf_api_fail(st, XF_FAIL, &e);
        return NULL;
    }
    json_t *j = xf_json_load_buffer(text, len, path, &e);
    free(text);
    if (!j) {
        xf_api_fail(st, XF_USAGE, &e);
        return NULL;
    }
    json_t *obj = options_object(j);
    for (size_t i = 0; skip && skip[i] && json_is_object(obj); i++)
        json_object_del(obj, skip[i]);
    if (json_is_object(obj) && !json_object_get(obj, "method"))
        json_object_set_new(obj, "method", json_string(method));
    const char *got = json_string_value(json_object_get(obj, "method"));
    xf_recipe *r = NULL;
    if (json_is_object(obj) && got && strcmp(got, method) != 0) {
        xf_fail(&e, "%s: the recipe's method is '%s', not %s", path, got, method);
    } else if (!(r = calloc(1, sizeof *r))) {
        xf_fail(&e, "%s: out of memory", path);
    } else if (xf_quant_recipe_from_json(&r->q, obj, path, NULL, NULL, &e) != 0) {
        free(r);
        r = NULL;
    }
    json_decref(j);
    if (!r) {
        xf_api_fail(st, XF_USAGE, &e);
        return NULL;
    }
    xf_api_ok(st);
    return r;
}
