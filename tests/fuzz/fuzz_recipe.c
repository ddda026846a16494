/* libFuzzer harness: the recipe object of an .xfq's metadata as its
 * readers see it: the activation scheme ("activations",
 * sim/act_quant.h xf_act_scheme_from_json, read through
 * eval/model_scorer.h xf_model_act_scheme as the evaluator does) and the
 * online transforms ("online_transforms", sim/online.h) of a fixed
 * small llama config; and its options ("options", or the object itself:
 * what `--recipe FILE` reads, pipeline/recipe_options.h). An accepted
 * scheme or option set must survive its JSON round trip unchanged. */
#include "core/json_util.h"
#include "pipeline/recipe_options.h"
#include "eval/model_scorer.h"
#include "sim/act_quant.h"
#include "sim/online.h"
#include "tests/fuzz/fuzz_util.h"

static const char config_json[] =
    "{\"model_type\": \"llama\", \"hidden_size\": 64, \"intermediate_size\": 128,"
    " \"num_hidden_layers\": 2, \"num_attention_heads\": 4, \"num_key_value_heads\": 2,"
    " \"vocab_size\": 256, \"max_position_embeddings\": 64, \"rms_norm_eps\": 1e-5}";

static void check_scheme(const xf_act_scheme *s, int64_t head_dim)
{
    xf_error err = {0};
    char desc[256], desc2[256];
    xf_act_scheme_describe(s, desc, sizeof desc);
    if (xf_act_scheme_check(s, "recipe", &err) != 0)
        xf_fuzz_check_error(&err, "xf_act_scheme_check");
    int64_t group;
    if (xf_act_scheme_kv_group(s, head_dim, &group, &err) != 0)
        xf_fuzz_check_error(&err, "xf_act_scheme_kv_group");
    for (int in = 0; in < XF_IN_COUNT; in++)
        (void)xf_act_scheme_clip(s, (xf_lin_input)in);
    json_t *j = xf_act_scheme_to_json(s);
    xf_act_scheme back;
    if (!j || xf_act_scheme_from_json(&back, j, "round trip", &err) != 0) {
        fprintf(stderr, "accepted scheme does not read back: %s\n", err.msg);
        abort();
    }
    xf_act_scheme_describe(&back, desc2, sizeof desc2);
    if (strcmp(desc, desc2) != 0) {
        fprintf(stderr, "scheme changed in its round trip: \"%s\" -> \"%s\"\n", desc, desc2);
        abort();
    }
    json_decref(j);
}

/* --recipe's path: accepted options write a JSON that reads back the same */
static void check_options(const json_t *recipe)
{
    xf_error err = {0};
    xf_quant_recipe q = {0}, back = {0};
    if (xf_quant_recipe_from_json(&q, recipe, "recipe", NULL, NULL, &err) != 0) {
        xf_fuzz_check_error(&err, "recipe");
        return;
    }
    if (xf_quant_recipe_check(&q, &err) != 0)
        xf_fuzz_check_error(&err, "recipe check");
    json_t *j = xf_quant_options_to_json(&q.o), *k = NULL;
    if (!j || xf_quant_recipe_from_json(&back, j, "round trip", NULL, NULL, &err) != 0) {
        fprintf(stderr, "accepted options do not read back: %s\n", err.msg);
        abort();
    }
    if (!(k = xf_quant_options_to_json(&back.o)) || !json_equal(j, k)) {
        fprintf(stderr, "options changed in their round trip\n");
        abort();
    }
    json_decref(j);
    json_decref(k);
    xf_quant_recipe_free(&back);
    xf_quant_recipe_free(&q);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    xf_error err = {0};
    json_t *recipe = xf_json_load_buffer((const char *)data, size, "recipe", &err);
    if (!recipe) {
        xf_fuzz_check_error(&err, "recipe");
        return 0;
    }
    json_t *cj = xf_json_load_buffer(config_json, sizeof config_json - 1, "config", &err);
    xf_model_config cfg;
    if (!cj || xf_model_config_parse(&cfg, cj, "config", &err) != 0) {
        fprintf(stderr, "fixed config refused: %s\n", err.msg);
        abort();
    }
    /* the evaluator's path: the recipe inside an .xfq's metadata */
    xf_loaded_model m;
    memset(&m, 0, sizeof m);
    m.source = XF_SOURCE_XFQ;
    m.path = "model.xfq";
    m.cfg = cfg;
    m.xfq.meta = json_pack("{s:O}", "recipe", recipe);
    xf_act_scheme s;
    if (xf_model_act_scheme(&m, &s, &err) == 0)
        check_scheme(&s, cfg.head_dim);
    else
        xf_fuzz_check_error(&err, "activations");
    xf_online_transforms o;
    const json_t *arr = json_object_get(recipe, "online_transforms");
    if (xf_online_from_json(&o, arr, &cfg, "model.xfq: recipe", &err) == 0) {
        json_t *back = xf_online_to_json(&o);
        xf_online_transforms o2;
        if (xf_online_from_json(&o2, back, &cfg, "round trip", &err) != 0) {
            fprintf(stderr, "online transforms do not read back: %s\n", err.msg);
            abort();
        }
        xf_online_free(&o2);
        json_decref(back);
        xf_online_free(&o);
    } else
        xf_fuzz_check_error(&err, "online_transforms");
    check_options(recipe);
    json_decref(m.xfq.meta);
    json_decref(cj);
    json_decref(recipe);
    return 0;
}
