/* Accuracy-regression machinery: suite parsing (strict), bands on each side
 * (absolute and relative), relations, skip propagation, the filter,
 * --update round trips, and the outputs (JUnit XML and SVG checked by a
 * small well-formedness checker written here, table, JSON, Markdown). The
 * case runner is a fake executor returning scripted metrics. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <ctype.h>
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/read_file.h"
#include "regress/compare.h"
#include "regress/exec.h"
#include "regress/report.h"
#include "regress/run.h"
#include "pipeline/recipe_options.h"
#include "regress/suite.h"
#include "tests/support/random_model.h"
#include "tests/support/random_tokenizer.h"
#include "tests/support/test_util.h"

/* A case's rtn/gptq recipe as the option table writes it, checked against
 * want (a JSON text with ' for "; the method and every non-default key). */
static void assert_recipe(const xf_regress_case *c, const char *want)
{
    assert_non_null(c->recipe.quant);
    char text[8192];
    snprintf(text, sizeof text, "%s", want);
    for (char *p = text; *p; p++)
        if (*p == '\'')
            *p = '"';
    json_t *w = json_loads(text, 0, NULL), *got = xf_quant_options_to_json(&c->recipe.quant->o);
    assert_non_null(w);
    assert_non_null(got);
    if (!json_equal(w, got)) {
        char *g = json_dumps(got, JSON_SORT_KEYS | JSON_COMPACT);
        fail_msg("recipe of '%s': got %s, want %s", c->id, g, text);
    }
    json_decref(w);
    json_decref(got);
}

/* ------------------------------------------------------------------ */
/* Fixture: a root directory with a model directory, texts and a suite. */

typedef struct {
    char *root;
    char *suite_path;
} fixture;

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    f->root = xf_test_tmpdir();
    if (!f || !f->root)
        return -1;
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/models", f->root);
    mkdir(dir, 0755);
    snprintf(dir, sizeof dir, "%s/models/m", f->root);
    mkdir(dir, 0755);
    free(xf_test_write_file(dir, "config.json", "{}", 2));
    free(xf_test_write_file(f->root, "eval.txt", "text", 4));
    free(xf_test_write_file(f->root, "calib.txt", "calib", 5));
    f->suite_path = xf_path_join(f->root, "suite.json");
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    xf_test_rmtree(f->root);
    free(f->root);
    free(f->suite_path);
    free(f);
    return 0;
}

/* JSON in C literals with ' for " (no test string needs a real '). */
static char *dq(const char *s)
{
    char *t = strdup(s);
    for (char *p = t; *p; p++)
        if (*p == '\'')
            *p = '"';
    return t;
}

static void write_suite(const fixture *f, const char *json_sq)
{
    char *t = dq(json_sq);
    FILE *fp = fopen(f->suite_path, "wb");
    assert_non_null(fp);
    fputs(t, fp);
    fclose(fp);
    free(t);
}

/* Loads json_sq as the suite; returns 0/-1 like the loader. */
static int load(const fixture *f, const char *json_sq, xf_regress_suite *s, xf_error *err)
{
    write_suite(f, json_sq);
    return xf_regress_suite_load(s, f->suite_path, f->root, err);
}

#define GPTQ_RECIPE                                                                          \
    "{'method': 'gptq', 'bits': 4, 'group': 128, 'sym': false, 'act_order': false, "         \
    "'calib': 'calib.txt', 'nsamples': 128, 'seqlen': 256, 'seed': 0}"
#define RTN_RECIPE "{'method': 'rtn', 'bits': 4, 'group': 128}"
#define EVAL "{'text': 'eval.txt', 'protocol': 'gptq', 'seqlen': 256, 'max_windows': 0}"
#define CASE(id, recipe, expect)                                                             \
    "{'id': '" id "', 'model': 'models/m', 'recipe': " recipe ", 'eval': " EVAL               \
    ", 'expect': " expect "}"
#define PPL_BAND(v) "{'ppl': {'value': " v ", 'rel_floor': 0.01, 'rel_ceiling': 0.01}}"

/* ------------------------------------------------------------------ */
/* Fake executor: scripted outcomes by case id. */

typedef struct {
    const char *id;
    xf_regress_exec exec;
    double ppl, kld, bpw, seconds; /* NAN = not measured */
    const char *why;
} fake_entry;

typedef struct {
    const fake_entry *entries;
    size_t n;
    int calls;
    char called[16][XF_REGRESS_ID_MAX + 1];
} fake_exec;

static xf_regress_exec fake_run(const xf_regress_case *c, void *user, xf_regress_metrics *out,
                                xf_error *why)
{
    fake_exec *fx = user;
    if (fx->calls < 16)
        snprintf(fx->called[fx->calls], sizeof fx->called[0], "%s", c->id);
    fx->calls++;
    /* The runner hands over a cleared struct. */
    assert_true(isnan(out->ppl) && isnan(out->kld) && isnan(out->bits_per_weight) &&
                isnan(out->seconds));
    for (size_t i = 0; i < fx->n; i++) {
        const fake_entry *e = &fx->entries[i];
        if (strcmp(e->id, c->id))
            continue;
        if (e->exec != XF_REGRESS_EXEC_OK) {
            xf_fail(why, "%s", e->why);
            return e->exec;
        }
        out->ppl = e->ppl;
        out->kld = e->kld;
        out->bits_per_weight = e->bpw;
        out->seconds = e->seconds;
        return XF_REGRESS_EXEC_OK;
    }
    xf_fail(why, "no scripted outcome for %s", c->id);
    return XF_REGRESS_EXEC_FAIL;
}

#define OK(id, ppl, bpw) {id, XF_REGRESS_EXEC_OK, ppl, NAN, bpw, 1.0, NULL}

static bool was_called(const fake_exec *fx, const char *id)
{
    for (int i = 0; i < fx->calls && i < 16; i++)
        if (!strcmp(fx->called[i], id))
            return true;
    return false;
}

static const xf_regress_case_result *case_result(const xf_regress_results *r, const char *id)
{
    long i = xf_regress_suite_find(r->suite, id);
    assert_true(i >= 0);
    return &r->cases[i];
}

/* ------------------------------------------------------------------ */
/* Parsing */

static void test_parse_full_case(void **state)
{
    fixture *f = *state;
    xf_regress_suite s;
    xf_error err = {0};
    int rc = load(f,
                  "{'name': 'demo', 'description': 'd', 'cases': ["
                  CASE("gptq-w4", GPTQ_RECIPE,
                       "{'ppl': {'value': 80.8, 'rel_floor': 0.01, 'rel_ceiling': 0.02},"
                       " 'bits_per_weight': {'value': 4.25, 'abs_floor': 0, 'abs_ceiling': 0},"
                       " 'seconds': {'value': 10, 'abs_ceiling': 5}}")
                  ", {'id': 'base', 'model': 'models/m', 'recipe': {'method': 'fp16'},"
                  " 'eval': {'text': 'eval.txt', 'protocol': 'llamacpp', 'ctx': 128},"
                  " 'expect': {}}"
                  ", {'id': 'rtn.w3_x', 'model': '/abs/model', 'recipe': {'method': 'rtn', "
                  "'bits': 3, 'sym': true, 'act_bits': 8, 'kv_bits': 4, 'rotate': 'hadamard',"
                  " 'seed': 7}, 'eval': {'text': 'eval.txt', 'half': 2}, 'expect': " PPL_BAND("90") "}"
                  "], 'relations': [{'id': 'order', 'expect': 'ppl(gptq-w4)<ppl(rtn.w3_x)*0.99'},"
                  " {'expect': ' kld( base ) >= kld(gptq-w4) '}]}",
                  &s, &err);
    assert_int_equal(rc, 0);
    assert_string_equal(s.name, "demo");
    assert_int_equal(s.n_cases, 3);
    assert_int_equal(s.n_relations, 2);

    const xf_regress_case *g = &s.cases[0];
    assert_string_equal(g->id, "gptq-w4");
    assert_int_equal(g->recipe.method, XF_REGRESS_GPTQ);
    const xf_quant_options *go = &g->recipe.quant->o;
    assert_int_equal(go->method, XF_METHOD_GPTQ);
    assert_int_equal(go->grid.bits, 4);
    assert_int_equal(go->group, 128);
    assert_false(go->grid.sym);
    assert_false(go->act_order);
    assert_int_equal(go->act.act_bits, 0); /* absent: the CLI's default */
    assert_true(go->damp == 0.01);
    assert_false(go->static_groups);
    assert_int_equal(go->rotate, XF_ROTATE_NONE);
    assert_int_equal(go->nsamples, 128);
    assert_int_equal(go->seqlen, 256);
    assert_int_equal(go->seed, 0);
    assert_string_equal(g->recipe.calib, "calib.txt");
    char want[4096];
    snprintf(want, sizeof want, "%s/calib.txt", f->root);
    assert_string_equal(g->recipe.calib_path, want);
    assert_string_equal(go->calib_path, want);
    snprintf(want, sizeof want, "%s/models/m", f->root);
    assert_string_equal(g->model_path, want);
    assert_int_equal(g->eval.protocol, XF_PROTOCOL_GPTQ);
    assert_int_equal(g->eval.seqlen, 256);
    assert_true(g->eval.ctx == XF_REGRESS_ABSENT);

    const xf_regress_band *b = &g->expect[XF_REGRESS_PPL];
    assert_true(b->present);
    assert_true(b->value == 80.8);
    assert_int_equal(b->floor.kind, XF_REGRESS_TOL_REL);
    assert_true(b->floor.tol == 0.01);
    assert_int_equal(b->ceiling.kind, XF_REGRESS_TOL_REL);
    assert_true(b->ceiling.tol == 0.02);
    assert_int_equal(g->expect[XF_REGRESS_BPW].floor.kind, XF_REGRESS_TOL_ABS);
    assert_int_equal(g->expect[XF_REGRESS_SECONDS].floor.kind, XF_REGRESS_TOL_OPEN);
    assert_false(g->expect[XF_REGRESS_KLD].present);

    const xf_regress_case *base = &s.cases[1];
    assert_int_equal(base->recipe.method, XF_REGRESS_FP16);
    assert_null(base->recipe.quant);
    assert_int_equal(base->eval.protocol, XF_PROTOCOL_LLAMACPP);
    assert_int_equal(base->eval.ctx, 128);
    assert_int_equal(base->eval.max_windows, 0);
    assert_int_equal(base->eval.half, 0); /* absent: the whole text */

    const xf_regress_case *rtn = &s.cases[2];
    assert_string_equal(rtn->model_path, "/abs/model"); /* absolute paths stay */
    assert_int_equal(rtn->eval.half, 2);
    const xf_quant_options *ro = &rtn->recipe.quant->o;
    assert_true(ro->grid.sym);
    assert_int_equal(ro->act.act_bits, 8);
    assert_int_equal(ro->act.kv_bits, 4);
    assert_int_equal(ro->rotate, XF_ROTATE_HADAMARD);
    assert_int_equal(ro->seed, 7);
    assert_int_equal(ro->group, 128); /* absent: the CLI's default */

    const xf_regress_relation *r0 = &s.relations[0];
    assert_string_equal(r0->id, "order");
    assert_int_equal(r0->op, XF_REGRESS_LT);
    assert_int_equal(r0->lhs.case_index, 0);
    assert_int_equal(r0->rhs.case_index, 2);
    assert_true(r0->lhs.factor == 1.0);
    assert_true(r0->rhs.factor == 0.99);
    const xf_regress_relation *r1 = &s.relations[1];
    assert_string_equal(r1->id, r1->expr); /* no id: the expression names it */
    assert_int_equal(r1->op, XF_REGRESS_GE);
    assert_int_equal(r1->lhs.metric, XF_REGRESS_KLD);
    /* kld is wanted because a relation names it, not because it is expected */
    assert_true(s.cases[1].wants[XF_REGRESS_KLD]);
    assert_true(s.cases[0].wants[XF_REGRESS_KLD]);
    assert_false(s.cases[2].wants[XF_REGRESS_KLD]);
    assert_true(s.cases[2].wants[XF_REGRESS_PPL]);
    xf_regress_suite_free(&s);
}

typedef struct {
    const char *json; /* ' for " */
    const char *needle;
} bad_suite;

static void test_parse_errors_name_file_and_case(void **state)
{
    fixture *f = *state;
    static const bad_suite bad[] = {
        {"{'cases': [" CASE("a", RTN_RECIPE, PPL_BAND("9")) "], 'relation': []}",
         "unknown key 'relation'"},
        {"{'name': 'x'}", "missing key 'cases'"},
        {"{'cases': []}", "non-empty array"},
        {"{'cases': [{'id': 'a', 'recipe': " RTN_RECIPE ", 'eval': " EVAL ", 'expect': {}}]}",
         "case 'a': missing key 'model'"},
        {"{'cases': [{'id': 'a', 'model': 'm', 'recipe': " RTN_RECIPE
         ", 'eval': {'text': 'e.txt', 'half': 3}, 'expect': {}}]}",
         "case 'a': eval: 'half' must be an integer in [1, 2]"},
        {"{'cases': [{'model': 'm', 'recipe': " RTN_RECIPE ", 'eval': " EVAL ", 'expect': {}}]}",
         "case #1: missing key 'id'"},
        {"{'cases': [{'id': 'a', 'modle': 'm', 'model': 'm', 'recipe': " RTN_RECIPE
         ", 'eval': " EVAL ", 'expect': {}}]}",
         "case 'a': unknown key 'modle'"},
        {"{'cases': [" CASE("a", "{'method': 'rtn', 'bits': 4, 'grup': 128}", "{}") "]}",
         "case 'a': recipe: unknown key 'grup'"},
        {"{'cases': [" CASE("a", RTN_RECIPE, "{'ppl': {'value': 9, 'rel_flor': 0.1}}") "]}",
         "case 'a': expect: ppl: unknown key 'rel_flor'"},
        {"{'cases': [" CASE("a", RTN_RECIPE, "{'perplexity': {'value': 9, 'rel_floor': 0.1}}") "]}",
         "case 'a': expect: unknown metric 'perplexity'"},
        {"{'cases': [" CASE("a", RTN_RECIPE,
                            "{'ppl': {'value': 9, 'rel_floor': 0.1, 'abs_floor': 1}}") "]}",
         "case 'a': expect: ppl: give 'abs_floor' or 'rel_floor', not both"},
        {"{'cases': [" CASE("a", RTN_RECIPE, "{'ppl': {'value': 9, 'abs_ceiling': -1}}") "]}",
         "case 'a': expect: ppl: 'abs_ceiling' must be a finite number >= 0"},
        {"{'cases': [" CASE("a", RTN_RECIPE, "{'ppl': {'value': 9}}") "]}",
         "case 'a': expect: ppl: band has neither a floor nor a ceiling"},
        {"{'cases': [" CASE("a", RTN_RECIPE, "{'kld': {'value': 0, 'rel_ceiling': 0.5}}") "]}",
         "case 'a': expect: kld: a relative tolerance around value 0"},
        {"{'cases': [" CASE("a", RTN_RECIPE, "{'ppl': {'value': '9', 'rel_floor': 0.1}}") "]}",
         "case 'a': expect: ppl: 'value' must be a finite number"},
        {"{'cases': [" CASE("a", RTN_RECIPE, "{'ppl': {'rel_floor': 0.1}}") "]}",
         "case 'a': expect: ppl: missing key 'value'"},
        {"{'cases': [" CASE("a", "{'method': 'awq', 'bits': 4}", "{}") "]}",
         "case 'a': recipe: 'method' must be"},
        {"{'cases': [" CASE("a", "{'method': 'fp16', 'bits': 4}", "{}") "]}",
         "case 'a': recipe: key 'bits' does not apply to method fp16"},
        {"{'cases': [" CASE("a", "{'method': 'rtn', 'bits': 4, 'act_order': true}", "{}") "]}",
         "case 'a': recipe: key 'act_order' applies to method gptq only"},
        {"{'cases': [" CASE("a", "{'method': 'gptq', 'group': 128}", "{}") "]}",
         "case 'a': recipe: missing key 'bits'"},
        {"{'cases': [" CASE("a", "{'method': 'rtn', 'bits': 9}", "{}") "]}",
         "case 'a': recipe: 'bits' must be 2, 3, 4 or 8, not '9'"},
        {"{'cases': [" CASE("a", "{'method': 'rtn', 'bits': 5}", "{}") "]}",
         "case 'a': recipe: 'bits' must be 2, 3, 4 or 8"},
        {"{'cases': [" CASE("a", "{'method': 'rtn', 'bits': 4, 'group': 0}", "{}") "]}",
         "case 'a': recipe: 'group' must be a positive integer or -1"},
        {"{'cases': [" CASE("a", "{'method': 'gptq', 'bits': 4}", "{}") "]}",
         "case 'a': recipe: --calib FILE is required"},
        {"{'cases': [" CASE("a", "{'method': 'rtn', 'bits': 4, 'seed': 1}", "{}") "]}",
         "case 'a': recipe: rtn reads calibration text only for"},
        {"{'cases': [" CASE("a", "{'method': 'rtn', 'bits': 4, 'clip': 'max'}", "{}") "]}",
         "case 'a': recipe: 'clip' must be none or mse, not 'max'"},
        {"{'cases': [" CASE("a", "{'method': 'gptq', 'bits': 4, 'calib': 'c', "
                                "'calib_format': 'csv'}", "{}") "]}",
         "case 'a': recipe: 'calib_format' must be text, jsonl or dir, not 'csv'"},
        {"{'cases': [" CASE("a", "{'method': 'gptq', 'bits': 4, 'calib': 'c', 'damp': 2}", "{}") "]}",
         "case 'a': recipe: 'damp' must be a number in [0, 1]"},
        {"{'cases': [" CASE("a", "{'method': 'rtn', 'bits': 4.0}", "{}") "]}",
         "case 'a': recipe: 'bits' must be 2, 3, 4 or 8"},
        {"{'cases': [" CASE("a", "{'method': 'rtn', 'bits': 4, 'sym': 1}", "{}") "]}",
         "case 'a': recipe: 'sym' must be true or false"},
        {"{'cases': [{'id': 'a', 'model': 'm', 'recipe': " RTN_RECIPE
         ", 'eval': {'protocol': 'gptq'}, 'expect': {}}]}",
         "case 'a': eval: missing key 'text'"},
        {"{'cases': [{'id': 'a', 'model': 'm', 'recipe': " RTN_RECIPE
         ", 'eval': {'text': 't', 'protocol': 'llamacpp', 'seqlen': 512}, 'expect': {}}]}",
         "case 'a': eval: 'seqlen' applies to protocol gptq"},
        {"{'cases': [{'id': 'a', 'model': 'm', 'recipe': " RTN_RECIPE
         ", 'eval': {'text': 't', 'protocol': 'wiki'}, 'expect': {}}]}",
         "case 'a': eval: 'protocol' must be"},
        {"{'cases': [{'id': 'a', 'model': 'm', 'recipe': " RTN_RECIPE ", 'eval': " EVAL "}]}",
         "case 'a': missing key 'expect'"},
        {"{'cases': [" CASE("a", RTN_RECIPE, "{}") ", " CASE("a", RTN_RECIPE, "{}") "]}",
         "case 'a': duplicate case id"},
        {"{'cases': [" CASE("a b", RTN_RECIPE, "{}") "]}", "case #1: 'id' must be"},
        {"{'cases': [" CASE("a", RTN_RECIPE, "{}") "], 'relations': [{'id': 'r1', "
         "'expect': 'ppl(a) < ppl(zzz)'}]}",
         "relation 'r1': unknown case id 'zzz'"},
        {"{'cases': [" CASE("a", RTN_RECIPE, "{}") "], 'relations': [{'id': 'r1', "
         "'expect': 'ppl(a) = ppl(a)'}]}",
         "relation 'r1': expected one of < <= > >="},
        {"{'cases': [" CASE("a", RTN_RECIPE, "{}") "], 'relations': [{'id': 'r1', "
         "'expect': 'acc(a) < ppl(a)'}]}",
         "relation 'r1': unknown metric 'acc'"},
        {"{'cases': [" CASE("a", RTN_RECIPE, "{}") "], 'relations': [{'id': 'r1', "
         "'expect': 'ppl(a) < ppl(a) x'}]}",
         "relation 'r1': expected the end of the expression"},
        {"{'cases': [" CASE("a", RTN_RECIPE, "{}") "], 'relations': [{'id': 'r1', "
         "'expect': 'ppl(a) < ppl(a) * 0'}]}",
         "relation 'r1': expected a finite number > 0"},
        {"{'cases': [" CASE("a", RTN_RECIPE, "{}") "], 'relations': [{'id': 'r1', "
         "'expect': 'ppl(a < ppl(a)'}]}",
         "relation 'r1': expected ')'"},
        {"{'cases': [" CASE("a", RTN_RECIPE, "{}") "], 'relations': [{'id': 'r1', "
         "'expct': 'ppl(a) < ppl(a)'}]}",
         "relation 'r1': unknown key 'expct'"},
        {"{'cases': [" CASE("a", RTN_RECIPE, "{}") "], 'relations': [{'id': 'r1'}]}",
         "relation 'r1': missing key 'expect'"},
        {"{'cases': [" CASE("a", RTN_RECIPE, "{}") ",]}", "invalid JSON at line 1"},
        {"{'cases': [], 'cases': []}", "invalid JSON"}, /* duplicate key */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        xf_regress_suite s;
        xf_error err = {0};
        int rc = load(f, bad[i].json, &s, &err);
        if (rc == 0 || !strstr(err.msg, bad[i].needle) || !strstr(err.msg, f->suite_path) ||
            strchr(err.msg, '\n'))
            fail_msg("bad suite #%zu: rc %d, message \"%s\" lacks \"%s\" or the path", i, rc,
                     err.msg, bad[i].needle);
        /* A failed load leaves an empty suite that is safe to free. */
        assert_null(s.cases);
        xf_regress_suite_free(&s);
    }
    xf_regress_suite s;
    xf_error err = {0};
    assert_int_equal(xf_regress_suite_load(&s, "/nonexistent/suite.json", NULL, &err), -1);
    assert_non_null(strstr(err.msg, "/nonexistent/suite.json"));
}

/* ------------------------------------------------------------------ */
/* GGUF cases: scorer llama-perplexity, method llama-quantize, file_bytes,
 * null baselines */

#define LP_EVAL                                                                              \
    "{'text': 'eval.txt', 'protocol': 'llamacpp', 'ctx': 256, 'max_windows': 8, "           \
    "'scorer': 'llama-perplexity'}"
#define LQ_RECIPE                                                                            \
    "{'method': 'llama-quantize', 'gguf_type': 'Q4_0', 'imatrix': true, 'calib': "          \
    "'calib.txt', 'nsamples': 16, 'seqlen': 128, 'tensor_type': ['ffn_down=f16']}"
#define GCASE(id, recipe, ev, expect)                                                        \
    "{'id': '" id "', 'model': 'models/m', 'recipe': " recipe ", 'eval': " ev                \
    ", 'expect': " expect "}"

static void test_gguf_cases_parse(void **state)
{
    fixture *f = *state;
    xf_regress_suite s;
    xf_error err = {0};
    int rc = load(f,
                  "{'cases': [" GCASE("fp", "{'method': 'fp16'}", LP_EVAL, "{}") ","
                  GCASE("lq", LQ_RECIPE, LP_EVAL,
                        "{'ppl': {'value': null, 'rel_floor': 0.01, 'rel_ceiling': 0.01}, "
                        "'file_bytes': {'value': 1000, 'abs_floor': 0, 'abs_ceiling': 0}}") ","
                  GCASE("xq", "{'method': 'gptq', 'gguf_type': 'Q4_K_M', 'calib': 'calib.txt'}",
                        LP_EVAL, "{}") ","
                  GCASE("xr", "{'method': 'rtn', 'gguf_type': 'Q8_0'}", EVAL, "{}")
                  "], 'relations': [{'expect': 'ppl(xq) < ppl(lq)'}, "
                  "{'expect': 'file_bytes(xq) <= file_bytes(lq) * 1.001'}]}",
                  &s, &err);
    if (rc)
        fail_msg("%s", err.msg);
    const xf_regress_case *fp = &s.cases[0], *lq = &s.cases[1], *xq = &s.cases[2],
                          *xr = &s.cases[3];
    assert_int_equal(fp->eval.scorer, XF_SCORER_LLAMA_PERPLEXITY);
    assert_true(xf_regress_case_is_gguf(fp) && xf_regress_case_is_gguf(lq) &&
                xf_regress_case_is_gguf(xq) && !xf_regress_case_is_gguf(xr));
    assert_int_equal(lq->recipe.method, XF_REGRESS_LLAMA_QUANTIZE);
    assert_string_equal(xf_regress_method_name(lq->recipe.method), "llama-quantize");
    assert_string_equal(lq->recipe.gguf_type, "Q4_0");
    assert_int_equal(lq->recipe.imatrix, 1);
    assert_int_equal(lq->recipe.nsamples, 16);
    assert_int_equal(lq->recipe.seqlen, 128);
    assert_int_equal(lq->recipe.n_tensor_type, 1);
    assert_string_equal(lq->recipe.tensor_type[0], "ffn_down=f16");
    assert_non_null(strstr(lq->recipe.calib_path, f->root));
    /* a null value is a band without a baseline */
    assert_true(lq->expect[XF_REGRESS_PPL].present && lq->expect[XF_REGRESS_PPL].pending);
    assert_true(isnan(lq->expect[XF_REGRESS_PPL].value));
    assert_false(lq->expect[XF_REGRESS_FILE_BYTES].pending);
    assert_true(xq->wants[XF_REGRESS_FILE_BYTES]);
    /* llama-quantize has no xfquant recipe; gptq/rtn get gguf_type and no bits */
    assert_null(lq->recipe.quant);
    char xq_want[4200];
    snprintf(xq_want, sizeof xq_want,
             "{'method': 'gptq', 'gguf_type': 'Q4_K_M', 'calib': '%s/calib.txt'}", f->root);
    assert_recipe(xq, xq_want);
    assert_true(xq->recipe.quant->o.gguf);
    assert_recipe(xr, "{'method': 'rtn', 'gguf_type': 'Q8_0'}");
    xf_regress_suite_free(&s);

    static const bad_suite bad[] = {
        {"{'cases': [" GCASE("a", "{'method': 'llama-quantize'}", LP_EVAL, "{}") "]}",
         "case 'a': recipe: missing key 'gguf_type' (required for method llama-quantize)"},
        {"{'cases': [" GCASE("a", "{'method': 'llama-quantize', 'gguf_type': 'Q4_K_X'}", LP_EVAL,
                             "{}") "]}",
         "case 'a': recipe: 'gguf_type' must be one of"},
        {"{'cases': [" GCASE("a", "{'method': 'llama-quantize', 'gguf_type': 'Q4_0', 'bits': 4}",
                             LP_EVAL, "{}") "]}",
         "case 'a': recipe: key 'bits' does not apply to method llama-quantize"},
        {"{'cases': [" GCASE("a", "{'method': 'llama-quantize', 'gguf_type': 'Q4_0', 'imatrix': "
                                  "true}",
                             LP_EVAL, "{}") "]}",
         "case 'a': recipe: missing key 'calib' (\"imatrix\": true needs it)"},
        {"{'cases': [" GCASE("a", "{'method': 'llama-quantize', 'gguf_type': 'Q4_0', 'calib': "
                                  "'calib.txt'}",
                             LP_EVAL, "{}") "]}",
         "case 'a': recipe: key 'calib' applies to method llama-quantize only with"},
        {"{'cases': [" GCASE("a", "{'method': 'llama-quantize', 'gguf_type': 'Q4_0', "
                                  "'tensor_type': ['ffn_down']}",
                             LP_EVAL, "{}") "]}",
         "case 'a': recipe: 'tensor_type'[0] must be a \"PATTERN=TYPE\" string"},
        {"{'cases': [" GCASE("a", "{'method': 'gptq', 'bits': 4, 'imatrix': true, 'calib': 'c'}",
                             LP_EVAL, "{}") "]}",
         "case 'a': recipe: key 'imatrix' applies to method llama-quantize only"},
        {"{'cases': [" GCASE("a", "{'method': 'rtn', 'gguf_type': 'Q4_0', 'group': 32}", LP_EVAL,
                             "{}") "]}",
         "case 'a': recipe: --group cannot be combined with --gguf-type"},
        {"{'cases': [" GCASE("a", "{'method': 'fp16', 'gguf_type': 'Q4_0'}", LP_EVAL, "{}") "]}",
         "case 'a': recipe: key 'gguf_type' does not apply to method fp16"},
        /* scorer llama-perplexity: what a GGUF cannot hold or llama.cpp cannot measure */
        {"{'cases': [" GCASE("a", "{'method': 'rtn', 'bits': 4, 'act_bits': 8}", LP_EVAL, "{}")
         "]}",
         "case 'a': recipe: key 'act_bits' cannot be scored by llama-perplexity"},
        {"{'cases': [" GCASE("a", "{'method': 'rtn', 'bits': 4, 'rotate': 'hadamard', 'seed': 1}",
                             LP_EVAL, "{}") "]}",
         "case 'a': recipe: key 'rotate' cannot be scored by llama-perplexity"},
        {"{'cases': [" GCASE("a", "{'method': 'rtn', 'bits': 4}", LP_EVAL,
                             "{'kld': {'value': 0.1, 'abs_ceiling': 0.1}}") "]}",
         "case 'a': expect: kld is not measured with scorer llama-perplexity"},
        {"{'cases': [" GCASE("a", LQ_RECIPE, EVAL, "{}") "]}",
         "case 'a': method llama-quantize needs \"scorer\": \"llama-perplexity\""},
        {"{'cases': [" GCASE("a", "{'method': 'rtn', 'bits': 4}",
                             "{'text': 'eval.txt', 'scorer': 'llama-perplexity'}", "{}") "]}",
         "case 'a': eval: scorer llama-perplexity needs \"protocol\": \"llamacpp\""},
        {"{'cases': [" GCASE("a", "{'method': 'rtn', 'bits': 4}",
                             "{'text': 'eval.txt', 'scorer': 'llama.cpp'}", "{}") "]}",
         "case 'a': eval: 'scorer' must be \"xfquant\" or \"llama-perplexity\""},
        {"{'cases': [" GCASE("a", "{'method': 'rtn', 'bits': 4}", EVAL,
                             "{'file_bytes': {'value': 10, 'abs_ceiling': 1}}") "]}",
         "case 'a': expect: file_bytes is measured for GGUF cases only"},
        {"{'cases': [" GCASE("a", "{'method': 'rtn', 'bits': 4}", EVAL, "{}") ","
         GCASE("b", LQ_RECIPE, LP_EVAL, "{}") "], 'relations': [{'id': 'r', 'expect': "
         "'file_bytes(a) < file_bytes(b)'}]}",
         "relation 'r': case 'a' does not measure file_bytes (not a GGUF case)"},
        {"{'cases': [" GCASE("a", "{'method': 'rtn', 'bits': 4}", EVAL, "{}") ","
         GCASE("b", LQ_RECIPE, LP_EVAL, "{}") "], 'relations': [{'id': 'r', 'expect': "
         "'kld(b) < kld(a)'}]}",
         "relation 'r': case 'b' does not measure kld (scorer llama-perplexity)"},
        {"{'cases': [" GCASE("a", LQ_RECIPE, LP_EVAL, "{'ppl': {'value': 'x', 'rel_floor': 0}}")
         "]}",
         "case 'a': expect: ppl: 'value' must be a finite number (or null: no baseline yet)"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        xf_regress_suite b;
        xf_error e = {0};
        int brc = load(f, bad[i].json, &b, &e);
        if (brc == 0 || !strstr(e.msg, bad[i].needle) || !strstr(e.msg, f->suite_path) ||
            strchr(e.msg, '\n'))
            fail_msg("bad GGUF suite #%zu: rc %d, message \"%s\" lacks \"%s\" or the path", i,
                     brc, e.msg, bad[i].needle);
        xf_regress_suite_free(&b);
    }
}

/* A null baseline FAILs (never passes) until --update records it; the
 * update writes the measured value in place of null and says so. */
static void test_pending_baseline_update(void **state)
{
    fixture *f = *state;
    xf_regress_suite s;
    xf_error err = {0};
    assert_int_equal(
        load(f,
             "{'cases': [" GCASE("lq", LQ_RECIPE, LP_EVAL,
                                 "{'ppl': {'value': null, 'rel_floor': 0.01, 'rel_ceiling': 0.01}}")
             "]}",
             &s, &err),
        0);
    const fake_entry ent[] = {OK("lq", 12.5, 4.5)};
    fake_exec fx = {ent, 1, 0, {{0}}};
    xf_regress_results r;
    assert_int_equal(xf_regress_run(&s, NULL, fake_run, &fx, &r, &err), 0);
    const xf_regress_case_result *cr = case_result(&r, "lq");
    assert_int_equal(cr->status, XF_REGRESS_FAIL);
    assert_non_null(strstr(cr->reason.msg, "no baseline yet"));
    assert_true(xf_regress_failed(&r));
    char *table = xf_regress_render(&r, XF_REGRESS_TABLE);
    assert_non_null(strstr(table, "run --update"));
    free(table);
    char *diff = NULL;
    assert_int_equal(xf_regress_suite_update(&s, &r, &diff, &err), 0);
    assert_non_null(strstr(diff, "lq ppl: null -> 12.5"));
    free(diff);
    assert_false(s.cases[0].expect[XF_REGRESS_PPL].pending);
    xf_regress_results_free(&r);
    xf_regress_suite_free(&s);
    /* the rewritten file has the value and passes */
    assert_int_equal(xf_regress_suite_load(&s, f->suite_path, f->root, &err), 0);
    assert_false(s.cases[0].expect[XF_REGRESS_PPL].pending);
    assert_true(s.cases[0].expect[XF_REGRESS_PPL].value == 12.5);
    fx.calls = 0;
    assert_int_equal(xf_regress_run(&s, NULL, fake_run, &fx, &r, &err), 0);
    assert_int_equal(case_result(&r, "lq")->status, XF_REGRESS_PASS);
    xf_regress_results_free(&r);
    xf_regress_suite_free(&s);
}

/* ------------------------------------------------------------------ */
/* Bands */

static xf_regress_band band(double v, xf_regress_tol fk, double ft, xf_regress_tol ck, double ct)
{
    xf_regress_band b = {true, v, {fk, ft}, {ck, ct}, false};
    return b;
}

static void test_band_sides(void **state)
{
    (void)state;
    /* absolute: [9, 12] */
    xf_regress_band a = band(10, XF_REGRESS_TOL_ABS, 1, XF_REGRESS_TOL_ABS, 2);
    assert_true(xf_regress_band_holds(&a, 9.0));
    assert_false(xf_regress_band_holds(&a, 8.99));
    assert_true(xf_regress_band_holds(&a, 12.0));
    assert_false(xf_regress_band_holds(&a, 12.01));
    assert_false(xf_regress_band_holds(&a, NAN));
    /* relative, different sides: [79.2, 84] */
    xf_regress_band r = band(80, XF_REGRESS_TOL_REL, 0.01, XF_REGRESS_TOL_REL, 0.05);
    double lo, hi;
    xf_regress_band_limits(&r, &lo, &hi);
    assert_true(fabs(lo - 79.2) < 1e-12 && fabs(hi - 84.0) < 1e-12);
    assert_true(xf_regress_band_holds(&r, 79.2));
    assert_false(xf_regress_band_holds(&r, 79.19));
    assert_true(xf_regress_band_holds(&r, 84.0));
    assert_false(xf_regress_band_holds(&r, 84.01));
    /* open floor: only the ceiling counts */
    xf_regress_band c = band(5, XF_REGRESS_TOL_OPEN, 0, XF_REGRESS_TOL_ABS, 1);
    xf_regress_band_limits(&c, &lo, &hi);
    assert_true(isinf(lo) && lo < 0);
    assert_true(xf_regress_band_holds(&c, -1e9));
    assert_false(xf_regress_band_holds(&c, 6.01));
    /* relative around a negative value uses |value| */
    xf_regress_band n = band(-10, XF_REGRESS_TOL_REL, 0.1, XF_REGRESS_TOL_REL, 0.1);
    assert_true(xf_regress_band_holds(&n, -11.0));
    assert_true(xf_regress_band_holds(&n, -9.0));
    assert_false(xf_regress_band_holds(&n, -11.01));
    assert_false(xf_regress_band_holds(&n, -8.99));
    /* zero-width band: exact value passes, the next representable does too
     * (decimal round-off slack), a visible change does not */
    xf_regress_band z = band(4.125, XF_REGRESS_TOL_ABS, 0, XF_REGRESS_TOL_ABS, 0);
    assert_true(xf_regress_band_holds(&z, 4.125));
    assert_true(xf_regress_band_holds(&z, nextafter(4.125, 5)));
    assert_false(xf_regress_band_holds(&z, 4.1251));
}

/* Each case fails on exactly one side of one band kind. */
#define REL_BAND "{'ppl': {'value': 100, 'rel_floor': 0.01, 'rel_ceiling': 0.02}}"
#define ABS_BAND "{'bits_per_weight': {'value': 4.25, 'abs_floor': 0.5, 'abs_ceiling': 0.1}}"
static void test_verdicts_each_side(void **state)
{
    fixture *f = *state;
    xf_regress_suite s;
    xf_error err = {0};
    assert_int_equal(
        load(f,
             "{'cases': ["
             CASE("ok", RTN_RECIPE, REL_BAND) ","
             CASE("rel-floor", RTN_RECIPE, REL_BAND) ","
             CASE("rel-ceil", RTN_RECIPE, REL_BAND) ","
             CASE("abs-floor", RTN_RECIPE, ABS_BAND) ","
             CASE("abs-ceil", RTN_RECIPE, ABS_BAND) ","
             CASE("no-kld", RTN_RECIPE, "{'kld': {'value': 0.1, 'abs_ceiling': 0.1}}")
             "]}",
             &s, &err),
        0);
    /* rel band [99, 102]; abs band [3.75, 4.35] */
    const fake_entry ent[] = {
        OK("ok", 101.9, 4.25),       OK("rel-floor", 98.9, 4.25), OK("rel-ceil", 102.1, 4.25),
        OK("abs-floor", 100, 3.74), OK("abs-ceil", 100, 4.36),   OK("no-kld", 100, 4.25),
    };
    fake_exec fx = {ent, sizeof ent / sizeof ent[0], 0, {{0}}};
    xf_regress_results r;
    assert_int_equal(xf_regress_run(&s, NULL, fake_run, &fx, &r, &err), 0);
    assert_int_equal(fx.calls, 6);
    assert_int_equal(case_result(&r, "ok")->status, XF_REGRESS_PASS);
    static const struct {
        const char *id, *why;
    } fails[] = {{"rel-floor", "ppl 98.9 below floor 99"},
                 {"rel-ceil", "ppl 102.1 above ceiling 102"},
                 {"abs-floor", "bits_per_weight 3.74 below floor 3.75"},
                 {"abs-ceil", "bits_per_weight 4.36 above ceiling 4.35"},
                 {"no-kld", "kld not measured"}};
    for (size_t i = 0; i < 5; i++) {
        const xf_regress_case_result *cr = case_result(&r, fails[i].id);
        assert_int_equal(cr->status, XF_REGRESS_FAIL);
        if (!strstr(cr->reason.msg, fails[i].why))
            fail_msg("%s: reason \"%s\" lacks \"%s\"", fails[i].id, cr->reason.msg, fails[i].why);
        assert_int_equal(cr->n_checks, 1);
        assert_int_equal(cr->checks[0].status, XF_REGRESS_FAIL);
    }
    const xf_regress_check *k = &case_result(&r, "rel-ceil")->checks[0];
    assert_true(fabs(k->delta - 2.1) < 1e-9);
    assert_true(fabs(k->lo - 99) < 1e-9 && fabs(k->hi - 102) < 1e-9);
    assert_int_equal(r.n_pass, 1);
    assert_int_equal(r.n_fail, 5);
    assert_int_equal(r.n_skip, 0);
    assert_true(xf_regress_failed(&r));
    /* seconds came from the executor (1.0), not from the runner's clock */
    assert_true(case_result(&r, "ok")->got.seconds == 1.0);
    xf_regress_results_free(&r);
    xf_regress_suite_free(&s);
}

/* ------------------------------------------------------------------ */
/* Relations */

#define BAND_84 "{'ppl': {'value': 84, 'abs_floor': 5, 'abs_ceiling': 5}}"

static void test_relations(void **state)
{
    fixture *f = *state;
    xf_regress_suite s;
    xf_error err = {0};
    assert_int_equal(
        load(f,
             "{'cases': [" CASE("gptq-w4", GPTQ_RECIPE, BAND_84)
             "," CASE("rtn-w4", RTN_RECIPE, BAND_84)
             "], 'relations': ["
             "{'id': 'gptq-beats-rtn', 'expect': 'ppl(gptq-w4) < ppl(rtn-w4)'},"
             "{'id': 'margin', 'expect': 'ppl(gptq-w4) < ppl(rtn-w4) * 0.99'},"
             "{'id': 'le-self', 'expect': 'ppl(rtn-w4) <= ppl(rtn-w4)'},"
             "{'id': 'lt-self', 'expect': 'ppl(rtn-w4) < ppl(rtn-w4)'},"
             "{'id': 'ge-scaled', "
             "'expect': 'bits_per_weight(gptq-w4) * 2 >= bits_per_weight(rtn-w4)'},"
             "{'id': 'gt', 'expect': 'ppl(rtn-w4) > ppl(gptq-w4)'}"
             "]}",
             &s, &err),
        0);
    /* In order: gptq 82 < rtn 85, both inside [79, 89]. */
    {
        const fake_entry ent[] = {OK("gptq-w4", 82, 4.25), OK("rtn-w4", 85, 4.25)};
        fake_exec fx = {ent, 2, 0, {{0}}};
        xf_regress_results r;
        assert_int_equal(xf_regress_run(&s, NULL, fake_run, &fx, &r, &err), 0);
        assert_int_equal(r.relations[0].status, XF_REGRESS_PASS);
        assert_int_equal(r.relations[1].status, XF_REGRESS_PASS); /* 82 < 84.15 */
        assert_int_equal(r.relations[2].status, XF_REGRESS_PASS);
        assert_int_equal(r.relations[3].status, XF_REGRESS_FAIL);
        assert_int_equal(r.relations[4].status, XF_REGRESS_PASS);
        assert_int_equal(r.relations[5].status, XF_REGRESS_PASS);
        assert_true(fabs(r.relations[1].rhs - 85 * 0.99) < 1e-9);
        assert_true(fabs(r.relations[4].lhs - 8.5) < 1e-12);
        xf_regress_results_free(&r);
    }
    /* Flipped: each number still in its band, the ordering is not. */
    {
        const fake_entry ent[] = {OK("gptq-w4", 85, 4.25), OK("rtn-w4", 84.5, 4.25)};
        fake_exec fx = {ent, 2, 0, {{0}}};
        xf_regress_results r;
        assert_int_equal(xf_regress_run(&s, NULL, fake_run, &fx, &r, &err), 0);
        assert_int_equal(case_result(&r, "gptq-w4")->status, XF_REGRESS_PASS);
        assert_int_equal(case_result(&r, "rtn-w4")->status, XF_REGRESS_PASS);
        assert_int_equal(r.relations[0].status, XF_REGRESS_FAIL);
        assert_non_null(strstr(r.relations[0].reason.msg, "85 < 84.5 does not hold"));
        assert_int_equal(r.relations[5].status, XF_REGRESS_FAIL);
        assert_true(xf_regress_failed(&r));
        xf_regress_results_free(&r);
    }
    /* A margin can fail while the plain ordering holds. */
    {
        const fake_entry ent[] = {OK("gptq-w4", 84.5, 4.25), OK("rtn-w4", 85, 4.25)};
        fake_exec fx = {ent, 2, 0, {{0}}};
        xf_regress_results r;
        assert_int_equal(xf_regress_run(&s, NULL, fake_run, &fx, &r, &err), 0);
        assert_int_equal(r.relations[0].status, XF_REGRESS_PASS);
        assert_int_equal(r.relations[1].status, XF_REGRESS_FAIL); /* 84.5 >= 84.15 */
        xf_regress_results_free(&r);
    }
    xf_regress_suite_free(&s);
}

/* A case id with '*' averages the metric over the cases it matches (the
 * seeds of a method): the relation compares the means, the report shows the
 * range; a pattern matching nothing is a suite error. */
static void test_relation_mean_over_pattern(void **state)
{
    fixture *f = *state;
    xf_regress_suite s;
    xf_error err = {0};
    assert_int_equal(
        load(f,
             "{'cases': [" CASE("a-s0", RTN_RECIPE, "{}") "," CASE("a-s1", RTN_RECIPE, "{}")
             "," CASE("a-s2", RTN_RECIPE, "{}") "," CASE("b-s0", RTN_RECIPE, "{}")
             "," CASE("b-s1", RTN_RECIPE, "{}") "," CASE("b-s2", RTN_RECIPE, "{}")
             "], 'relations': ["
             "{'id': 'means', 'expect': 'ppl(a-s*) < ppl(b-s*)'},"
             "{'id': 'one-seed', 'expect': 'ppl(a-s2) < ppl(b-s2)'},"
             "{'id': 'mixed', 'expect': 'ppl(a-s*) * 0.5 < ppl(b-s0)'}"
             "]}",
             &s, &err),
        0);
    assert_int_equal(s.relations[0].lhs.n_cases, 3);
    assert_int_equal(s.relations[0].rhs.cases[2], 5);
    assert_int_equal(s.relations[1].lhs.n_cases, 1);
    /* a's seeds 10, 11, 15 (mean 12); b's 13, 13, 13: the means order holds
     * although seed 2 alone does not */
    const fake_entry ent[] = {OK("a-s0", 10, 4), OK("a-s1", 11, 4), OK("a-s2", 15, 4),
                              OK("b-s0", 13, 4), OK("b-s1", 13, 4), OK("b-s2", 13, 4)};
    fake_exec fx = {ent, 6, 0, {{0}}};
    xf_regress_results r;
    assert_int_equal(xf_regress_run(&s, NULL, fake_run, &fx, &r, &err), 0);
    assert_int_equal(r.relations[0].status, XF_REGRESS_PASS);
    assert_true(fabs(r.relations[0].lhs - 12) < 1e-12);
    assert_true(r.relations[0].lhs_min == 10 && r.relations[0].lhs_max == 15);
    assert_int_equal(r.relations[0].lhs_n, 3);
    assert_int_equal(r.relations[1].status, XF_REGRESS_FAIL);
    assert_true(fabs(r.relations[2].lhs - 6) < 1e-12);
    assert_true(r.relations[2].lhs_max == 7.5);
    char *table = xf_regress_render(&r, XF_REGRESS_TABLE);
    assert_non_null(table);
    assert_non_null(strstr(table, "12 (10..15, n=3)"));
    free(table);
    char *json = xf_regress_render(&r, XF_REGRESS_JSON);
    assert_non_null(strstr(json, "\"lhs_range\""));
    free(json);
    xf_regress_results_free(&r);
    /* one of the matched cases skipped: the relation is skipped */
    const fake_entry ent2[] = {OK("a-s0", 10, 4), OK("a-s1", 11, 4),
                               {"a-s2", XF_REGRESS_EXEC_SKIP, NAN, NAN, NAN, NAN, "no data"},
                               OK("b-s0", 13, 4), OK("b-s1", 13, 4), OK("b-s2", 13, 4)};
    fx = (fake_exec){ent2, 6, 0, {{0}}};
    assert_int_equal(xf_regress_run(&s, NULL, fake_run, &fx, &r, &err), 0);
    assert_int_equal(r.relations[0].status, XF_REGRESS_SKIP);
    assert_non_null(strstr(r.relations[0].reason.msg, "a-s2"));
    xf_regress_results_free(&r);
    xf_regress_suite_free(&s);
    assert_int_equal(load(f,
                          "{'cases': [" CASE("a-s0", RTN_RECIPE, "{}")
                          "], 'relations': [{'expect': 'ppl(c-*) < ppl(a-s0)'}]}",
                          &s, &err),
                     -1);
    assert_non_null(strstr(err.msg, "no case id matches 'c-*'"));
}

/* ------------------------------------------------------------------ */
/* Skips, failures to run, the filter */

static void test_skip_propagation(void **state)
{
    fixture *f = *state;
    xf_regress_suite s;
    xf_error err = {0};
    assert_int_equal(
        load(f,
             "{'cases': [" CASE("good", RTN_RECIPE, PPL_BAND("100"))
             ", {'id': 'no-model', 'model': 'models/absent', 'recipe': " RTN_RECIPE ", 'eval': " EVAL
             ", 'expect': " PPL_BAND("100") "}"
             ", {'id': 'no-text', 'model': 'models/m', 'recipe': " RTN_RECIPE
             ", 'eval': {'text': 'absent.txt'}, 'expect': " PPL_BAND("100") "}"
             ", {'id': 'no-calib', 'model': 'models/m', 'recipe': {'method': 'gptq', 'bits': 4, "
             "'calib': 'absent-calib.txt'}, 'eval': " EVAL ", 'expect': " PPL_BAND("100") "}"
             "," CASE("exec-skip", RTN_RECIPE, PPL_BAND("100"))
             "," CASE("exec-fail", RTN_RECIPE, PPL_BAND("100"))
             "," CASE("nan-ppl", RTN_RECIPE, "{}")
             "," CASE("no-expect", RTN_RECIPE, "{}")
             "], 'relations': ["
             "{'id': 'r-model', 'expect': 'ppl(good) < ppl(no-model)'},"
             "{'id': 'r-skip', 'expect': 'ppl(exec-skip) > ppl(good)'},"
             "{'id': 'r-fail', 'expect': 'ppl(good) < ppl(exec-fail)'},"
             "{'id': 'r-kld', 'expect': 'kld(good) < kld(no-expect)'},"
             "{'id': 'r-ok', 'expect': 'ppl(good) < ppl(no-expect)'}"
             "]}",
             &s, &err),
        0);
    const fake_entry ent[] = {
        OK("good", 100, 4.25),
        OK("no-model", 100, 4.25),
        {"exec-skip", XF_REGRESS_EXEC_SKIP, NAN, NAN, NAN, NAN, "needs 80 GB"},
        {"exec-fail", XF_REGRESS_EXEC_FAIL, NAN, NAN, NAN, NAN, "quantize: boom"},
        {"nan-ppl", XF_REGRESS_EXEC_OK, NAN, NAN, 4.0, NAN, NULL},
        {"no-expect", XF_REGRESS_EXEC_OK, 120, NAN, 4.0, NAN, NULL},
    };
    fake_exec fx = {ent, sizeof ent / sizeof ent[0], 0, {{0}}};
    xf_regress_results r;
    assert_int_equal(xf_regress_run(&s, NULL, fake_run, &fx, &r, &err), 0);
    /* missing files: SKIP with the reason, executor never called */
    assert_false(was_called(&fx, "no-model"));
    assert_false(was_called(&fx, "no-text"));
    assert_false(was_called(&fx, "no-calib"));
    assert_int_equal(fx.calls, 5);
    const xf_regress_case_result *c = case_result(&r, "no-model");
    assert_int_equal(c->status, XF_REGRESS_SKIP);
    assert_non_null(strstr(c->reason.msg, "model models/absent not found"));
    assert_non_null(strstr(case_result(&r, "no-text")->reason.msg, "absent.txt not found"));
    assert_non_null(strstr(case_result(&r, "no-calib")->reason.msg, "absent-calib.txt not found"));
    assert_int_equal(case_result(&r, "exec-skip")->status, XF_REGRESS_SKIP);
    assert_string_equal(case_result(&r, "exec-skip")->reason.msg, "needs 80 GB");
    assert_int_equal(case_result(&r, "exec-fail")->status, XF_REGRESS_FAIL);
    assert_string_equal(case_result(&r, "exec-fail")->reason.msg, "quantize: boom");
    /* OK with a non-finite ppl is a failure of the executor */
    assert_int_equal(case_result(&r, "nan-ppl")->status, XF_REGRESS_FAIL);
    assert_non_null(strstr(case_result(&r, "nan-ppl")->reason.msg, "ppl nan"));
    /* no expectation: ran = PASS; seconds filled in by the runner */
    c = case_result(&r, "no-expect");
    assert_int_equal(c->status, XF_REGRESS_PASS);
    assert_true(isfinite(c->got.seconds) && c->got.seconds >= 0);

    assert_int_equal(r.relations[0].status, XF_REGRESS_SKIP);
    assert_non_null(strstr(r.relations[0].reason.msg, "case 'no-model' skipped: model"));
    assert_int_equal(r.relations[1].status, XF_REGRESS_SKIP);
    assert_int_equal(r.relations[2].status, XF_REGRESS_SKIP);
    assert_non_null(strstr(r.relations[2].reason.msg, "exec-fail"));
    assert_int_equal(r.relations[3].status, XF_REGRESS_FAIL); /* kld not measured */
    assert_non_null(strstr(r.relations[3].reason.msg, "kld(good) not measured"));
    assert_int_equal(r.relations[4].status, XF_REGRESS_PASS);
    /* cases: good, no-expect PASS; exec-fail, nan-ppl FAIL; 4 SKIP.
     * relations: 1 PASS, 1 FAIL, 3 SKIP. */
    assert_int_equal(r.n_pass, 3);
    assert_int_equal(r.n_fail, 3);
    assert_int_equal(r.n_skip, 7);
    xf_regress_results_free(&r);

    /* Everything skipped: not a failure, but nothing passed either. */
    xf_regress_results r2;
    assert_int_equal(xf_regress_run(&s, "^no-(model|text)$", fake_run, &fx, &r2, &err), 0);
    assert_int_equal(r2.n_pass, 0);
    assert_int_equal(r2.n_fail, 0);
    assert_int_equal(r2.n_skip, 3); /* 2 cases + r-model */
    assert_false(xf_regress_failed(&r2));
    char *table = xf_regress_render(&r2, XF_REGRESS_TABLE);
    assert_non_null(strstr(table, "result: SKIP"));
    free(table);
    xf_regress_results_free(&r2);
    xf_regress_suite_free(&s);
}

static void test_filter(void **state)
{
    fixture *f = *state;
    xf_regress_suite s;
    xf_error err = {0};
    assert_int_equal(
        load(f,
             "{'cases': [" CASE("gptq-w4", GPTQ_RECIPE, PPL_BAND("80")) "," CASE("gptq-w3", GPTQ_RECIPE, PPL_BAND("90"))
             "," CASE("rtn-w4", RTN_RECIPE, PPL_BAND("85")) "], 'relations': ["
             "{'id': 'a', 'expect': 'ppl(gptq-w4) < ppl(rtn-w4)'},"
             "{'id': 'b', 'expect': 'ppl(gptq-w4) < ppl(gptq-w3)'}]}",
             &s, &err),
        0);
    const fake_entry ent[] = {OK("gptq-w4", 80, 4.25), OK("gptq-w3", 90, 3.25),
                              OK("rtn-w4", 85, 4.25)};
    fake_exec fx = {ent, 3, 0, {{0}}};
    xf_regress_results r;
    assert_int_equal(xf_regress_run(&s, "^gptq-", fake_run, &fx, &r, &err), 0);
    assert_int_equal(fx.calls, 2);
    assert_false(was_called(&fx, "rtn-w4"));
    assert_false(case_result(&r, "rtn-w4")->selected);
    assert_int_equal(r.relations[0].status, XF_REGRESS_SKIP);
    assert_non_null(strstr(r.relations[0].reason.msg, "not selected"));
    assert_int_equal(r.relations[1].status, XF_REGRESS_PASS);
    assert_int_equal(r.n_pass, 3);
    assert_int_equal(r.n_skip, 1);
    /* unselected cases do not appear in the outputs */
    char *table = xf_regress_render(&r, XF_REGRESS_TABLE);
    assert_null(strstr(table, "rtn-w4 "));
    free(table);
    xf_regress_results_free(&r);

    /* a pattern that selects nothing: no relation either */
    assert_int_equal(xf_regress_run(&s, "nomatch", fake_run, &fx, &r, &err), 0);
    assert_int_equal(r.n_pass + r.n_fail + r.n_skip, 0);
    xf_regress_results_free(&r);

    assert_int_equal(xf_regress_run(&s, "gptq-(", fake_run, &fx, &r, &err), -1);
    assert_non_null(strstr(err.msg, "--filter 'gptq-('"));
    assert_null(strchr(err.msg, '\n'));
    xf_regress_suite_free(&s);
}

/* ------------------------------------------------------------------ */
/* --update */

/* Same keys in the same order at every level (values may differ). */
static void assert_same_shape(const json_t *a, const json_t *b, const char *where)
{
    if (json_typeof(a) != json_typeof(b)) {
        /* an integer value may become a real */
        if (json_is_number(a) && json_is_number(b))
            return;
        fail_msg("%s: JSON types differ", where);
    }
    if (json_is_object(a)) {
        assert_int_equal(json_object_size(a), json_object_size(b));
        void *ia = json_object_iter((json_t *)a), *ib = json_object_iter((json_t *)b);
        while (ia && ib) {
            if (strcmp(json_object_iter_key(ia), json_object_iter_key(ib)))
                fail_msg("%s: key order changed: %s vs %s", where, json_object_iter_key(ia),
                         json_object_iter_key(ib));
            assert_same_shape(json_object_iter_value(ia), json_object_iter_value(ib),
                              json_object_iter_key(ia));
            ia = json_object_iter_next((json_t *)a, ia);
            ib = json_object_iter_next((json_t *)b, ib);
        }
    } else if (json_is_array(a)) {
        assert_int_equal(json_array_size(a), json_array_size(b));
        for (size_t i = 0; i < json_array_size(a); i++)
            assert_same_shape(json_array_get(a, i), json_array_get(b, i), where);
    }
}

static void test_update_round_trip(void **state)
{
    fixture *f = *state;
    /* Keys deliberately not in alphabetical order; a skipped case; a
     * zero-width band; a seconds band with an open floor. */
    const char *src =
        "{'name': 'rt', 'cases': ["
        "{'model': 'models/m', 'id': 'gptq-w4', 'description': 'keep me', 'recipe': " GPTQ_RECIPE
        ", 'eval': " EVAL ", 'expect': {'ppl': {'rel_ceiling': 0.02, 'value': 80.8, 'rel_floor': 0.01},"
        " 'bits_per_weight': {'value': 4, 'abs_floor': 0, 'abs_ceiling': 0},"
        " 'seconds': {'value': 10, 'rel_ceiling': 1.5}}},"
        "{'id': 'absent', 'model': 'models/none', 'recipe': " RTN_RECIPE ", 'eval': " EVAL
        ", 'expect': {'ppl': {'value': 123.25, 'abs_floor': 1, 'abs_ceiling': 2}}}"
        "], 'relations': [{'expect': 'ppl(gptq-w4) < ppl(absent)', 'id': 'rel'}]}";
    xf_regress_suite s;
    xf_error err = {0};
    assert_int_equal(load(f, src, &s, &err), 0);
    json_t *before = json_deep_copy(s.doc);

    const double new_ppl = 81.23456789012345, new_bpw = 4.1234567890123456;
    const fake_entry ent[] = {{"gptq-w4", XF_REGRESS_EXEC_OK, new_ppl, NAN, new_bpw, 12.5, NULL}};
    fake_exec fx = {ent, 1, 0, {{0}}};
    xf_regress_results r;
    assert_int_equal(xf_regress_run(&s, NULL, fake_run, &fx, &r, &err), 0);
    assert_int_equal(case_result(&r, "gptq-w4")->status, XF_REGRESS_FAIL); /* bpw moved */
    char *diff = NULL;
    assert_int_equal(xf_regress_suite_update(&s, &r, &diff, &err), 0);
    assert_non_null(diff);
    assert_non_null(strstr(diff, "gptq-w4 ppl: 80.8 -> 81.23456789012"));
    assert_non_null(strstr(diff, "gptq-w4 bits_per_weight: 4 -> 4.123456789012"));
    assert_non_null(strstr(diff, "gptq-w4 seconds: 10 -> 12.5 (+25.00%)"));
    assert_null(strstr(diff, "absent")); /* skipped: kept */
    free(diff);

    /* The file on disk: valid, new values, everything else kept. */
    xf_regress_suite s2;
    assert_int_equal(xf_regress_suite_load(&s2, f->suite_path, f->root, &err), 0);
    const xf_regress_case *c = &s2.cases[0];
    assert_true(fabs(c->expect[XF_REGRESS_PPL].value - new_ppl) <= 1e-13 * new_ppl);
    assert_true(fabs(c->expect[XF_REGRESS_BPW].value - new_bpw) <= 1e-13 * new_bpw);
    assert_true(c->expect[XF_REGRESS_SECONDS].value == 12.5);
    assert_true(c->expect[XF_REGRESS_PPL].floor.tol == 0.01);
    assert_true(c->expect[XF_REGRESS_PPL].ceiling.tol == 0.02);
    assert_int_equal(c->expect[XF_REGRESS_SECONDS].floor.kind, XF_REGRESS_TOL_OPEN);
    assert_true(s2.cases[1].expect[XF_REGRESS_PPL].value == 123.25);
    assert_string_equal(c->description, "keep me");
    assert_string_equal(s2.relations[0].expr, "ppl(gptq-w4) < ppl(absent)");
    assert_same_shape(before, s2.doc, "root");
    /* Apart from the three values, the documents are equal. */
    json_t *patched = json_deep_copy(before);
    json_t *exp = json_object_get(json_array_get(json_object_get(patched, "cases"), 0), "expect");
    json_object_set_new(json_object_get(exp, "ppl"), "value",
                        json_real(c->expect[XF_REGRESS_PPL].value));
    json_object_set_new(json_object_get(exp, "bits_per_weight"), "value",
                        json_real(c->expect[XF_REGRESS_BPW].value));
    json_object_set_new(json_object_get(exp, "seconds"), "value", json_real(12.5));
    assert_true(json_equal(patched, s2.doc));
    json_decref(patched);
    /* Human-written decimals survive re-serialization textually. */
    char *text;
    size_t len;
    assert_int_equal(xf_read_file(f->suite_path, &text, &len, &err), 0);
    assert_non_null(strstr(text, "\"rel_floor\": 0.01"));
    assert_non_null(strstr(text, "\"value\": 123.25"));
    /* The in-memory suite was updated too. */
    assert_true(s.cases[0].expect[XF_REGRESS_PPL].value == c->expect[XF_REGRESS_PPL].value);

    /* The same measurements now pass (also the zero-width band), and a
     * second update changes nothing and leaves the file alone. */
    xf_regress_results_free(&r);
    xf_regress_results r2;
    assert_int_equal(xf_regress_run(&s2, NULL, fake_run, &fx, &r2, &err), 0);
    assert_int_equal(case_result(&r2, "gptq-w4")->status, XF_REGRESS_PASS);
    assert_int_equal(xf_regress_suite_update(&s2, &r2, &diff, &err), 0);
    assert_string_equal(diff, "no expected value changed\n");
    free(diff);
    char *text2;
    assert_int_equal(xf_read_file(f->suite_path, &text2, &len, &err), 0);
    assert_string_equal(text, text2);
    free(text);
    free(text2);
    xf_regress_results_free(&r2);
    xf_regress_suite_free(&s2);
    json_decref(before);
    xf_regress_suite_free(&s);
}

/* ------------------------------------------------------------------ */
/* A minimal XML well-formedness checker with a flat element list. */

#define XML_MAX_NODES 512
#define XML_MAX_ATTRS 12

typedef struct {
    char name[32];
    int parent;
    int n_attrs;
    char key[XML_MAX_ATTRS][32];
    char val[XML_MAX_ATTRS][512]; /* entities decoded */
} xml_node;

typedef struct {
    xml_node nodes[XML_MAX_NODES];
    int n;
    char error[256];
} xml_doc;

/* Decodes one entity at *p (which points at '&'); false if it is not one
 * of the five predefined entities. */
static bool xml_entity(const char **p, char *out)
{
    static const struct {
        const char *ent;
        char c;
    } ents[] = {{"&amp;", '&'}, {"&lt;", '<'}, {"&gt;", '>'}, {"&quot;", '"'}, {"&apos;", '\''}};
    for (size_t i = 0; i < 5; i++)
        if (!strncmp(*p, ents[i].ent, strlen(ents[i].ent))) {
            *out = ents[i].c;
            *p += strlen(ents[i].ent);
            return true;
        }
    return false;
}

static bool xml_name(const char **p, char *out, size_t cap)
{
    size_t n = 0;
    if (!isalpha((unsigned char)**p) && **p != '_')
        return false;
    while (isalnum((unsigned char)**p) || **p == '_' || **p == '-' || **p == ':' || **p == '.') {
        if (n + 1 < cap)
            out[n++] = **p;
        (*p)++;
    }
    out[n] = 0;
    return true;
}

static bool xml_fail(xml_doc *d, const char *start, const char *p, const char *what)
{
    snprintf(d->error, sizeof d->error, "offset %d: %s", (int)(p - start), what);
    return false;
}

static bool xml_parse(const char *text, xml_doc *d)
{
    memset(d, 0, sizeof *d);
    const char *p = text;
    int stack[64], depth = 0, roots = 0;
    if (!strncmp(p, "<?xml", 5)) {
        const char *e = strstr(p, "?>");
        if (!e)
            return xml_fail(d, text, p, "unterminated prolog");
        p = e + 2;
    }
    while (*p) {
        if (*p != '<') {
            char c;
            if (*p == '&') {
                if (!xml_entity(&p, &c))
                    return xml_fail(d, text, p, "bare '&'");
                continue;
            }
            if (*p == '>')
                return xml_fail(d, text, p, "bare '>' in text");
            if (depth == 0 && !isspace((unsigned char)*p))
                return xml_fail(d, text, p, "text outside the root element");
            p++;
            continue;
        }
        p++;
        if (*p == '/') { /* end tag */
            p++;
            char name[32];
            if (!xml_name(&p, name, sizeof name) || *p != '>')
                return xml_fail(d, text, p, "bad end tag");
            p++;
            if (depth == 0 || strcmp(d->nodes[stack[depth - 1]].name, name))
                return xml_fail(d, text, p, "unbalanced end tag");
            depth--;
            continue;
        }
        if (d->n == XML_MAX_NODES)
            return xml_fail(d, text, p, "too many elements");
        xml_node *nd = &d->nodes[d->n];
        if (!xml_name(&p, nd->name, sizeof nd->name))
            return xml_fail(d, text, p, "bad element name");
        nd->parent = depth ? stack[depth - 1] : -1;
        if (depth == 0 && ++roots > 1)
            return xml_fail(d, text, p, "more than one root element");
        for (;;) {
            bool ws = false;
            while (isspace((unsigned char)*p)) {
                p++;
                ws = true;
            }
            if (*p == '>' || (p[0] == '/' && p[1] == '>'))
                break;
            if (!ws || nd->n_attrs == XML_MAX_ATTRS)
                return xml_fail(d, text, p, "bad attribute list");
            int a = nd->n_attrs++;
            if (!xml_name(&p, nd->key[a], sizeof nd->key[a]) || *p != '=' || p[1] != '"')
                return xml_fail(d, text, p, "bad attribute");
            for (int k = 0; k < a; k++)
                if (!strcmp(nd->key[k], nd->key[a]))
                    return xml_fail(d, text, p, "duplicate attribute");
            p += 2;
            size_t n = 0;
            while (*p != '"') {
                char c = *p;
                if (!c || c == '<')
                    return xml_fail(d, text, p, "bad attribute value");
                if (c == '&') {
                    if (!xml_entity(&p, &c))
                        return xml_fail(d, text, p, "bare '&' in attribute");
                } else {
                    p++;
                }
                if (n + 1 < sizeof nd->val[a])
                    nd->val[a][n++] = c;
            }
            nd->val[a][n] = 0;
            p++;
        }
        d->n++;
        if (*p == '/') {
            p += 2; /* empty element */
        } else {
            p++;
            if (depth == 64)
                return xml_fail(d, text, p, "too deep");
            stack[depth++] = d->n - 1;
        }
    }
    if (depth != 0)
        return xml_fail(d, text, p, "unclosed element");
    if (roots != 1)
        return xml_fail(d, text, p, "no root element");
    return true;
}

static const char *xml_attr(const xml_node *n, const char *key)
{
    for (int i = 0; i < n->n_attrs; i++)
        if (!strcmp(n->key[i], key))
            return n->val[i];
    return NULL;
}

static int xml_count(const xml_doc *d, const char *name)
{
    int c = 0;
    for (int i = 0; i < d->n; i++)
        c += !strcmp(d->nodes[i].name, name);
    return c;
}

static void test_xml_checker_rejects(void **state)
{
    (void)state;
    /* The checker itself must catch what it is meant to catch. */
    static const char *const bad[] = {"<a><b></a></b>", "<a>x & y</a>", "<a b=\"<\"/>",
                                      "<a/><b/>", "<a b=\"1\" b=\"2\"/>", "<a>", "<a>1 > 0</a>"};
    xml_doc *d = malloc(sizeof *d);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        if (xml_parse(bad[i], d))
            fail_msg("checker accepted \"%s\"", bad[i]);
    assert_true(xml_parse("<?xml version=\"1.0\"?>\n<a x=\"&lt;&amp;\"><b/>t &gt;</a>\n", d));
    assert_int_equal(d->n, 2);
    assert_string_equal(xml_attr(&d->nodes[0], "x"), "<&");
    assert_int_equal(d->nodes[1].parent, 0);
    free(d);
}

/* A results set with every verdict, and XML special characters in the
 * suite name and in reasons. */
static void mixed_results(const fixture *f, xf_regress_suite *s, xf_regress_results *r,
                          fake_exec *fx, const fake_entry *ent, size_t n)
{
    xf_error err = {0};
    assert_int_equal(
        load(f,
             "{'name': 'q&a <suite>', 'cases': [" CASE("fp16", "{'method': 'fp16'}", PPL_BAND("70"))
             "," CASE("rtn-w8", "{'method': 'rtn', 'bits': 8}", PPL_BAND("70.5"))
             "," CASE("rtn-w4", RTN_RECIPE, PPL_BAND("85"))
             "," CASE("gptq-w4", GPTQ_RECIPE, PPL_BAND("80"))
             "," CASE("gptq-w3", GPTQ_RECIPE, PPL_BAND("90"))
             "," CASE("gptq-w2", GPTQ_RECIPE, PPL_BAND("300"))
             "," CASE("broken", RTN_RECIPE, PPL_BAND("85"))
             ", {'id': 'gone', 'model': 'models/gone', 'recipe': " RTN_RECIPE ", 'eval': " EVAL
             ", 'expect': " PPL_BAND("1") "}"
             "], 'relations': ["
             "{'expect': 'ppl(gptq-w4) < ppl(rtn-w4)'},"
             "{'id': 'w3<w4', 'expect': 'ppl(gptq-w3) < ppl(gptq-w4)'},"
             "{'id': 'skipped', 'expect': 'ppl(gone) > ppl(fp16)'}]}",
             s, &err),
        0);
    fx->entries = ent;
    fx->n = n;
    fx->calls = 0;
    assert_int_equal(xf_regress_run(s, NULL, fake_run, fx, r, &err), 0);
}

static const fake_entry mixed_entries[] = {
    OK("fp16", 70, 16),    OK("rtn-w8", 70.4, 8.25), OK("rtn-w4", 85, 4.25), OK("gptq-w4", 80, 4.25),
    OK("gptq-w3", 95, 3.25), /* above its ceiling: FAIL */
    OK("gptq-w2", 300, 2.25),
    {"broken", XF_REGRESS_EXEC_FAIL, NAN, NAN, NAN, NAN, "bad \"tensor\" <w> & 'x'"},
};

static void test_junit_xml(void **state)
{
    fixture *f = *state;
    xf_regress_suite s;
    xf_regress_results r;
    fake_exec fx;
    mixed_results(f, &s, &r, &fx, mixed_entries, sizeof mixed_entries / sizeof mixed_entries[0]);
    char *xml = xf_regress_render(&r, XF_REGRESS_JUNIT);
    assert_non_null(xml);
    xml_doc *d = malloc(sizeof *d);
    if (!xml_parse(xml, d))
        fail_msg("JUnit XML not well-formed: %s\n%s", d->error, xml);

    /* one <testsuite>, the root, with counts that match its children */
    assert_int_equal(xml_count(d, "testsuite"), 1);
    const xml_node *ts = &d->nodes[0];
    assert_string_equal(ts->name, "testsuite");
    assert_string_equal(xml_attr(ts, "name"), "q&a <suite>");
    int tests = 0, failures = 0, skipped = 0;
    for (int i = 0; i < d->n; i++) {
        const xml_node *n = &d->nodes[i];
        if (!strcmp(n->name, "testcase")) {
            assert_int_equal(n->parent, 0);
            assert_non_null(xml_attr(n, "name"));
            assert_non_null(xml_attr(n, "classname"));
            tests++;
        } else if (!strcmp(n->name, "failure") || !strcmp(n->name, "skipped")) {
            assert_string_equal(d->nodes[n->parent].name, "testcase");
            assert_non_null(xml_attr(n, "message"));
            if (n->name[0] == 'f')
                failures++;
            else
                skipped++;
        } else if (i != 0) {
            fail_msg("unexpected element <%s>", n->name);
        }
    }
    assert_int_equal(atoi(xml_attr(ts, "tests")), tests);
    assert_int_equal(atoi(xml_attr(ts, "failures")), failures);
    assert_int_equal(atoi(xml_attr(ts, "skipped")), skipped);
    /* 8 cases + 3 relations; FAIL: gptq-w3, broken, w3<w4; SKIP: gone, skipped */
    assert_int_equal(tests, 11);
    assert_int_equal(failures, 3);
    assert_int_equal(skipped, 2);

    /* one <testcase> per case with the right child, at most one child each */
    for (size_t i = 0; i < s.n_cases; i++) {
        int found = 0;
        for (int k = 0; k < d->n; k++) {
            const xml_node *n = &d->nodes[k];
            if (strcmp(n->name, "testcase") || strcmp(xml_attr(n, "name"), s.cases[i].id))
                continue;
            found++;
            int kids = 0;
            const char *kid = NULL, *msg = NULL;
            for (int j = 0; j < d->n; j++)
                if (d->nodes[j].parent == k) {
                    kids++;
                    kid = d->nodes[j].name;
                    msg = xml_attr(&d->nodes[j], "message");
                }
            xf_regress_status st = r.cases[i].status;
            assert_int_equal(kids, st == XF_REGRESS_PASS ? 0 : 1);
            if (st == XF_REGRESS_FAIL)
                assert_string_equal(kid, "failure");
            if (st == XF_REGRESS_SKIP)
                assert_string_equal(kid, "skipped");
            if (!strcmp(s.cases[i].id, "broken")) /* escaped, then decoded back */
                assert_string_equal(msg, "bad \"tensor\" <w> & 'x'");
        }
        assert_int_equal(found, 1);
    }
    /* the relation named by its '<'-containing id */
    bool rel = false;
    for (int k = 0; k < d->n; k++)
        rel |= !strcmp(d->nodes[k].name, "testcase") && !strcmp(xml_attr(&d->nodes[k], "name"), "w3<w4");
    assert_true(rel);
    free(d);

    /* written to a file through the atomic writer: same bytes */
    char *path = xf_path_join(f->root, "junit.xml"), *text;
    size_t len;
    xf_error err = {0};
    assert_int_equal(xf_regress_write(&r, XF_REGRESS_JUNIT, path, &err), 0);
    assert_int_equal(xf_read_file(path, &text, &len, &err), 0);
    assert_string_equal(text, xml);
    free(text);
    free(path);
    assert_int_equal(xf_regress_write(&r, XF_REGRESS_JUNIT, "/nonexistent-dir/j.xml", &err), -1);
    assert_non_null(strstr(err.msg, "/nonexistent-dir/j.xml"));
    free(xml);
    xf_regress_results_free(&r);
    xf_regress_suite_free(&s);
}

static int count_substr(const char *s, const char *needle)
{
    int n = 0;
    for (const char *p = s; (p = strstr(p, needle)); p += strlen(needle))
        n++;
    return n;
}

/* The x coordinates of a path's vertices ("M x y L x y ..."), n of them. */
static int path_xs(const char *d, double *xs, int cap)
{
    int n = 0;
    for (const char *p = d; *p && n < cap;) {
        while (*p == ' ' || *p == 'M' || *p == 'L')
            p++;
        char *end;
        xs[n++] = strtod(p, &end);
        p = end;
        strtod(p, &end); /* y */
        p = end;
    }
    return n;
}

/* The text of the i-th <g class="panel"> element (malloc'd). */
static char *panel_text(const char *svg, int i)
{
    const char *p = svg;
    for (int k = 0; k <= i; k++) {
        p = strstr(p, "<g class=\"panel\"");
        assert_non_null(p);
        if (k < i)
            p++;
    }
    const char *end = strstr(p, "</g>");
    assert_non_null(end);
    return strndup(p, (size_t)(end - p));
}

static void test_svg_plot(void **state)
{
    fixture *f = *state;
    xf_regress_suite s;
    xf_regress_results r;
    fake_exec fx;
    mixed_results(f, &s, &r, &fx, mixed_entries, sizeof mixed_entries / sizeof mixed_entries[0]);
    char *svg = xf_regress_render(&r, XF_REGRESS_SVG);
    assert_non_null(svg);
    xml_doc *d = malloc(sizeof *d);
    if (!xml_parse(svg, d))
        fail_msg("SVG not well-formed: %s\n%s", d->error, svg);
    assert_string_equal(d->nodes[0].name, "svg");
    assert_string_equal(xml_attr(&d->nodes[0], "xmlns"), "http://www.w3.org/2000/svg");
    /* a panel per model: models/m has an fp16 case, so y = PPL - fp16 PPL
     * on a log axis; models/gone (skipped) shows, empty */
    assert_int_equal(count_substr(svg, "<g class=\"panel\""), 2);
    assert_non_null(strstr(svg, "data-model=\"models/m\""));
    char *gone = panel_text(svg, 1);
    assert_non_null(strstr(gone, "data-model=\"models/gone\""));
    assert_non_null(strstr(gone, "no measured cases"));
    free(gone);
    assert_non_null(strstr(svg, "PPL − fp16 PPL (log)"));
    /* fp16 is the reference, not a point: two series (rtn, gptq), one <path> each */
    assert_int_equal(xml_count(d, "path"), 2);
    /* points: 2 rtn + 3 gptq (broken and gone have none), all circles (xfquant's) */
    assert_int_equal(count_substr(svg, "<circle class=\"point\""), 5);
    assert_int_equal(count_substr(svg, "<rect class=\"point\""), 0);
    /* each path has as many vertices as its series has points, sorted by bits */
    int vertices[2] = {0}, k = 0;
    const char *names[2] = {NULL, NULL};
    for (int i = 0; i < d->n; i++)
        if (!strcmp(d->nodes[i].name, "path")) {
            double xs[8];
            int nv = path_xs(xml_attr(&d->nodes[i], "d"), xs, 8);
            for (int v = 1; v < nv; v++)
                assert_true(xs[v] >= xs[v - 1]);
            names[k] = xml_attr(&d->nodes[i], "data-series");
            vertices[k++] = nv;
        }
    assert_string_equal(names[0], "xfquant rtn");
    assert_string_equal(names[1], "xfquant gptq");
    assert_int_equal(vertices[0], 2);
    assert_int_equal(vertices[1], 3);
    assert_non_null(strstr(svg, ">bits per weight</text>"));
    /* the legend names every series once */
    char *legend = strstr(svg, "<g class=\"legend\">");
    assert_non_null(legend);
    assert_int_equal(count_substr(legend, "class=\"legend-entry\""), 2);
    assert_non_null(strstr(legend, ">xfquant gptq</text>"));
    assert_non_null(strstr(legend, ">xfquant rtn</text>"));
    assert_true(xml_count(d, "line") >= 4); /* ticks and grid */
    /* every marker lies inside the drawing */
    double w = atof(xml_attr(&d->nodes[0], "width")), h = atof(xml_attr(&d->nodes[0], "height"));
    for (int i = 0; i < d->n; i++)
        if (!strcmp(d->nodes[i].name, "circle")) {
            double cx = atof(xml_attr(&d->nodes[i], "cx")), cy = atof(xml_attr(&d->nodes[i], "cy"));
            assert_true(cx >= 0 && cx <= w && cy >= 0 && cy <= h);
        }
    /* deterministic bytes */
    char *again = xf_regress_render(&r, XF_REGRESS_SVG);
    assert_string_equal(svg, again);
    free(again);
    free(svg);
    xf_regress_results_free(&r);
    xf_regress_suite_free(&s);

    /* Only one method measured, all at the same bits, no fp16: y is the
     * PPL (linear), one path, no NaN. */
    const fake_entry one[] = {OK("gptq-w4", 80, 4.25), OK("gptq-w3", 80, 4.25)};
    mixed_results(f, &s, &r, &fx, one, 2);
    svg = xf_regress_render(&r, XF_REGRESS_SVG);
    assert_true(xml_parse(svg, d));
    assert_int_equal(xml_count(d, "path"), 1);
    assert_non_null(strstr(svg, ">perplexity</text>"));
    assert_null(strstr(svg, "PPL − fp16 PPL (log)"));
    assert_null(strstr(svg, "nan"));
    assert_null(strstr(svg, "inf"));
    free(svg);
    xf_regress_results_free(&r);
    xf_regress_suite_free(&s);

    /* Nothing measured: a valid, empty chart. */
    mixed_results(f, &s, &r, &fx, NULL, 0);
    svg = xf_regress_render(&r, XF_REGRESS_SVG);
    assert_true(xml_parse(svg, d));
    assert_int_equal(xml_count(d, "path"), 0);
    assert_int_equal(xml_count(d, "circle"), 0);
    free(svg);
    free(d);
    xf_regress_results_free(&r);
    xf_regress_suite_free(&s);
}

/* Two models, GGUF cases: a panel each; llama.cpp's points are squares in a
 * series of their own, labelled with their file type; a model without an
 * fp16 case is drawn as PPL with no reference; a point not above fp16 is
 * hollow at the axis floor. */
static void test_svg_panels(void **state)
{
    fixture *f = *state;
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/models/m2", f->root);
    mkdir(dir, 0755);
    free(xf_test_write_file(dir, "config.json", "{}", 2));
    xf_regress_suite s;
    xf_error err = {0};
    assert_int_equal(
        load(f,
             "{'cases': [" GCASE("fp", "{'method': 'fp16'}", LP_EVAL, "{}") ","
             GCASE("lq-q8", "{'method': 'llama-quantize', 'gguf_type': 'Q8_0'}", LP_EVAL, "{}") ","
             GCASE("lq-q4", LQ_RECIPE, LP_EVAL, "{}") ","
             GCASE("lq-q4km", "{'method': 'llama-quantize', 'gguf_type': 'Q4_K_M', 'imatrix': "
                              "true, 'calib': 'calib.txt'}", LP_EVAL, "{}") ","
             GCASE("xq-q4", "{'method': 'gptq', 'gguf_type': 'Q4_0', 'calib': 'calib.txt'}",
                   LP_EVAL, "{}") ","
             "{'id': 'm2-gptq', 'model': 'models/m2', 'recipe': {'method': 'gptq', 'gguf_type': "
             "'Q4_0', 'calib': 'calib.txt'}, 'eval': " LP_EVAL ", 'expect': {}}]}",
             &s, &err),
        0);
    const fake_entry ent[] = {OK("fp", 20.0, 32),      OK("lq-q8", 19.999, 8.5),
                              OK("lq-q4km", 20.5, 4.9), OK("lq-q4", 21.0, 4.5),
                              OK("xq-q4", 20.8, 4.5),   OK("m2-gptq", 33.0, 4.25)};
    fake_exec fx = {ent, 6, 0, {{0}}};
    xf_regress_results r;
    assert_int_equal(xf_regress_run(&s, NULL, fake_run, &fx, &r, &err), 0);
    char *svg = xf_regress_render(&r, XF_REGRESS_SVG);
    xml_doc *d = malloc(sizeof *d);
    if (!xml_parse(svg, d))
        fail_msg("SVG not well-formed: %s\n%s", d->error, svg);
    assert_int_equal(count_substr(svg, "<g class=\"panel\""), 2);
    char *p1 = panel_text(svg, 0), *p2 = panel_text(svg, 1);
    assert_non_null(strstr(p1, "data-model=\"models/m\""));
    assert_non_null(strstr(p1, "(log)"));
    /* llama.cpp: one series of squares (imatrix or not is part of the
     * label, so two series here), xfquant: circles */
    assert_int_equal(count_substr(p1, "<rect class=\"point\""), 3);
    assert_int_equal(count_substr(p1, "<circle class=\"point\""), 1);
    if (!strstr(p1, "data-series=\"llama-quantize + imatrix\""))
        fail_msg("no llama-quantize + imatrix series in the first panel");
    assert_non_null(strstr(p1, "data-series=\"llama-quantize\""));
    assert_non_null(strstr(p1, "data-series=\"xfquant gptq\""));
    assert_non_null(strstr(p1, ">Q4_K_M</text>"));
    /* Q8_0 is below fp16: hollow, and the legend says what that means */
    assert_non_null(strstr(p1, "fill=\"white\""));
    assert_non_null(strstr(svg, "not above fp16"));
    /* the second model: no fp16 case, so the PPL itself */
    assert_non_null(strstr(p2, "data-model=\"models/m2\""));
    assert_non_null(strstr(p2, ">perplexity</text>"));
    assert_int_equal(count_substr(p2, "<path"), 1);
    assert_null(strstr(p2, "class=\"reference\""));
    /* the legend: the three series once each, colours shared by the panels */
    char *legend = strstr(svg, "<g class=\"legend\">");
    assert_non_null(legend);
    assert_int_equal(count_substr(legend, "class=\"legend-entry\""), 4);
    free(p1);
    free(p2);
    free(svg);
    free(d);
    xf_regress_results_free(&r);
    xf_regress_suite_free(&s);
}

static void test_table_json_markdown(void **state)
{
    fixture *f = *state;
    xf_regress_suite s;
    xf_regress_results r;
    fake_exec fx;
    mixed_results(f, &s, &r, &fx, mixed_entries, sizeof mixed_entries / sizeof mixed_entries[0]);

    char *t = xf_regress_render(&r, XF_REGRESS_TABLE);
    assert_non_null(t);
    const char *hdr[] = {"case", "metric", "expected", "got", "delta", "band", "result"};
    for (size_t i = 0; i < 7; i++)
        assert_non_null(strstr(t, hdr[i]));
    /* gptq-w3: expected 90, got 95, +5 (+5.56%), band [89.1, 90.9] */
    const char *line = strstr(t, "gptq-w3");
    assert_non_null(line);
    char row[256];
    snprintf(row, sizeof row, "%.*s", (int)strcspn(line, "\n"), line);
    assert_non_null(strstr(row, "95"));
    assert_non_null(strstr(row, "+5 (+5.56%)"));
    assert_non_null(strstr(row, "[89.1, 90.9]"));
    assert_non_null(strstr(row, "FAIL"));
    assert_non_null(strstr(row, "above ceiling"));
    assert_non_null(strstr(t, "model models/gone not found"));
    assert_non_null(strstr(t, "result: FAIL (6 pass, 3 fail, 2 skip)"));
    /* no trailing blanks on any line */
    for (const char *p = t; (p = strchr(p, '\n')); p++)
        assert_true(p == t || p[-1] != ' ');
    free(t);

    char *js = xf_regress_render(&r, XF_REGRESS_JSON);
    json_error_t je;
    json_t *j = json_loads(js, 0, &je);
    assert_non_null(j);
    assert_string_equal(json_string_value(json_object_get(j, "status")), "FAIL");
    assert_int_equal(json_integer_value(json_object_get(j, "failed")), 3);
    assert_int_equal(json_array_size(json_object_get(j, "cases")), 8);
    assert_int_equal(json_array_size(json_object_get(j, "relations")), 3);
    json_t *w3 = json_array_get(json_object_get(j, "cases"), 4);
    assert_string_equal(json_string_value(json_object_get(w3, "id")), "gptq-w3");
    json_t *chk = json_array_get(json_object_get(w3, "checks"), 0);
    assert_true(json_real_value(json_object_get(chk, "got")) == 95);
    assert_string_equal(json_string_value(json_object_get(chk, "status")), "FAIL");
    json_t *broken = json_array_get(json_object_get(j, "cases"), 6);
    assert_string_equal(json_string_value(json_object_get(broken, "reason")),
                        "bad \"tensor\" <w> & 'x'");
    json_decref(j);
    free(js);

    char *md = xf_regress_render(&r, XF_REGRESS_MARKDOWN);
    assert_non_null(strstr(md, "| case | method | metric | expected | got | delta | band | result |"));
    assert_non_null(strstr(md, "| gptq-w3 | gptq | ppl | 90 | 95 |"));
    assert_non_null(strstr(md, "## Relations"));
    /* '<' escaped so a Markdown renderer cannot read it as HTML */
    assert_non_null(strstr(md, "ppl(gptq-w4) &lt; ppl(rtn-w4)"));
    assert_null(strstr(md, "<w>"));
    /* every table row has as many cells as its header: count unescaped '|' */
    for (const char *p = md; *p;) {
        size_t n = strcspn(p, "\n");
        if (p[0] == '|') {
            int bars = 0;
            for (size_t i = 0; i < n; i++)
                bars += p[i] == '|' && (i == 0 || p[i - 1] != '\\');
            assert_true(bars == 9 || bars == 6);
        }
        p += n + (p[n] == '\n');
    }
    free(md);
    xf_regress_results_free(&r);
    xf_regress_suite_free(&s);
}

static void assert_argv(char **argv, int argc, const char *const *want)
{
    int n = 0;
    while (want[n])
        n++;
    assert_non_null(argv);
    if (argc != n)
        fail_msg("argc %d, want %d (first: %s)", argc, n, argc ? argv[0] : "-");
    for (int i = 0; i < n; i++)
        assert_string_equal(argv[i], want[i]);
    assert_null(argv[argc]);
}

/* The real executor reuses the previous case's file when a case quantizes
 * the same model with the same recipe (the two halves of a text), and the
 * numbers are those of a fresh quantization; a different recipe quantizes
 * again; nothing is left in the temporary directory. */
static void test_exec_reuses_same_recipe(void **state)
{
    fixture *f = *state;
    char mdir[4096], tmp[4096];
    snprintf(mdir, sizeof mdir, "%s/models/r", f->root);
    snprintf(tmp, sizeof tmp, "%s/tmp", f->root);
    mkdir(tmp, 0700);
    xf_random_model_spec spec = {.family = "llama", .hidden = 32, .intermediate = 64,
                                 .layers = 1, .heads = 4, .kv_heads = 2, .vocab = 300,
                                 .max_pos = 64, .seed = 9};
    char *d = xf_random_model_write(mdir, &spec);
    assert_non_null(d);
    free(d);
    assert_int_equal(xf_random_tokenizer_write(mdir, false), 0);
    char text[4096] = "";
    for (int i = 0; i < 60; i++)
        snprintf(text + strlen(text), sizeof text - strlen(text), "the cat %d sat on a mat\n", i);
    free(xf_test_write_file(f->root, "lines.txt", text, strlen(text)));
#define RCASE(id, bits, half)                                                                \
    "{'id': '" id "', 'model': 'models/r', 'recipe': {'method': 'rtn', 'bits': " bits       \
    ", 'group': -1}, 'eval': {'text': 'lines.txt', 'seqlen': 16, 'half': " half "},"         \
    " 'expect': {}}"
    xf_regress_suite s;
    xf_error err = {0};
    assert_int_equal(load(f,
                          "{'cases': [" RCASE("a", "4", "1") ", " RCASE("b", "4", "2") ", " RCASE(
                              "c", "3", "1") ", " RCASE("b2", "4", "2") "]}",
                          &s, &err),
                     0);
#undef RCASE
    xf_regress_exec_ctx ctx = {.tmpdir = tmp};
    xf_regress_metrics m[4];
    for (int i = 0; i < 3; i++) {
        xf_regress_metrics_clear(&m[i]);
        assert_int_equal(xf_regress_execute(&s.cases[i], &ctx, &m[i], &err), XF_REGRESS_EXEC_OK);
        assert_int_equal(ctx.reused, i >= 1 ? 1 : 0); /* b reuses a's file, c does not */
    }
    assert_true(m[0].bits_per_weight == m[1].bits_per_weight);
    assert_true(m[0].ppl != m[1].ppl); /* the other half */
    assert_true(m[2].bits_per_weight < m[0].bits_per_weight);
    /* b after a fresh start (c's recipe in between): the same numbers as when reused */
    xf_regress_exec_ctx_free(&ctx);
    assert_int_equal(xf_test_dir_entries(tmp), 0);
    xf_regress_exec_ctx fresh = {.tmpdir = tmp};
    xf_regress_metrics_clear(&m[3]);
    assert_int_equal(xf_regress_execute(&s.cases[3], &fresh, &m[3], &err), XF_REGRESS_EXEC_OK);
    assert_int_equal(fresh.reused, 0);
    assert_true(m[3].ppl == m[1].ppl);
    assert_true(m[3].bits_per_weight == m[1].bits_per_weight);
    assert_int_equal(xf_test_dir_entries(tmp), 1); /* kept for a next case */
    xf_regress_exec_ctx_free(&fresh);
    assert_int_equal(xf_test_dir_entries(tmp), 0);
    xf_regress_suite_free(&s);
}

/* The recipe and eval keys become exactly the documented CLI flags. */
static void test_argv_maps_recipe_to_cli_flags(void **state)
{
    fixture *f = *state;
    xf_regress_suite s;
    xf_error err = {0};
    assert_int_equal(
        load(f,
             "{'cases': [{'id': 'g', 'model': 'models/m', 'recipe': {'method': 'gptq', 'bits': 3, "
             "'group': -1, 'sym': true, 'clip': 'mse', 'quantize_head': false, "
             "'calib': 'calib.txt', 'calib_field': 'body', 'calib_format': 'jsonl', "
             "'nsamples': 64, 'seqlen': 512, 'seed': 3, 'act_order': true, "
             "'static_groups': true, 'damp': 0.05, 'block': 64}, "
             "'eval': {'text': 'eval.txt', 'protocol': 'llamacpp', 'ctx': 256, 'max_windows': 8}, "
             "'expect': {}},"
             "{'id': 'r', 'model': '/abs/m', 'recipe': {'method': 'rtn', 'bits': 4, 'sym': false, "
             "'act_bits': 8, 'rotate': 'hadamard', 'seed': 1}, 'eval': {'text': 'eval.txt'}, "
             "'expect': {}},"
             "{'id': 'f', 'model': 'models/m', 'recipe': {'method': 'fp16'}, "
             "'eval': {'text': 'eval.txt', 'seqlen': 128, 'half': 1}, 'expect': {}}]}",
             &s, &err),
        0);
    char model[4096], calib[4096], text[4096];
    snprintf(model, sizeof model, "%s/models/m", f->root);
    snprintf(calib, sizeof calib, "%s/calib.txt", f->root);
    snprintf(text, sizeof text, "%s/eval.txt", f->root);
    char want_g[4500];
    snprintf(want_g, sizeof want_g,
             "{'method': 'gptq', 'bits': 3, 'group': -1, 'sym': true, 'clip': 'mse', "
             "'calib': '%s', 'calib_field': 'body', 'calib_format': 'jsonl', 'nsamples': 64, "
             "'seqlen': 512, 'seed': 3, 'act_order': true, 'static_groups': true, "
             "'damp': 0.05, 'block': 64}",
             calib);
    assert_recipe(&s.cases[0], want_g); /* quantize_head false: the default, not recorded */
    (void)model;
    int argc;
    char **argv;
    argv = xf_regress_eval_argv(&s.cases[0], &argc);
    const char *const want_ge[] = {"--text", text,    "--protocol",    "llamacpp", "--ctx",
                                   "256",    "--max-windows", "8", NULL};
    assert_argv(argv, argc, want_ge);
    xf_regress_argv_free(argv);

    assert_recipe(&s.cases[1], "{'method': 'rtn', 'act_bits': 8, 'rotate': 'hadamard', 'seed': 1}");
    argv = xf_regress_eval_argv(&s.cases[1], &argc);
    const char *const want_re[] = {"--text", text, "--protocol", "gptq", NULL};
    assert_argv(argv, argc, want_re);
    xf_regress_argv_free(argv);

    assert_null(s.cases[2].recipe.quant); /* fp16: nothing to quantize */
    argv = xf_regress_eval_argv(&s.cases[2], &argc);
    const char *const want_fe[] = {"--text",   text, "--protocol",  "gptq", "--seqlen",
                                   "128",      "--text-half", "1",   NULL};
    assert_argv(argv, argc, want_fe);
    xf_regress_argv_free(argv);
    xf_regress_suite_free(&s);

    /* Every flag emitted for rtn/gptq (other than the reserved act/kv bits
     * and rotation) is one the CLI documents in its --help. */
    const char *bin = getenv("XFQUANT_BIN");
    if (!bin || !xf_path_exists(bin)) {
        print_message("SKIP: CLI flag check: XFQUANT_BIN not set or not built\n");
        return;
    }
    static const char *const flags[][2] = {
        {"gptq", "--bits"},          {"gptq", "--group"},        {"gptq", "--sym"},
        {"gptq", "--clip"},          {"gptq", "--quantize-head"}, {"gptq", "--calib"},
        {"gptq", "--calib-field"},   {"gptq", "--calib-format"}, {"gptq", "--nsamples"},
        {"gptq", "--seqlen"},        {"gptq", "--seed"},         {"gptq", "--act-order"},
        {"gptq", "--static-groups"}, {"gptq", "--damp"},         {"gptq", "--block"},
        {"rtn", "--bits"},           {"rtn", "--group"},         {"rtn", "--sym"},
        {"rtn", "--clip"},           {"rtn", "--quantize-head"}, {"ppl", "--text"},
        {"ppl", "--protocol"},       {"ppl", "--seqlen"},        {"ppl", "--ctx"},
        {"ppl", "--max-windows"},    {"kld", "--text"},          {"kld", "--max-windows"},
        {"rtn", "--act-bits"},       {"rtn", "--act-sym"},       {"rtn", "--act-asym"},
        {"rtn", "--act-group"},      {"rtn", "--act-clip"},      {"rtn", "--act-inputs"},
        {"rtn", "--kv-bits"},        {"rtn", "--kv-group"},      {"rtn", "--kv-clip"},
        {"rtn", "--attn-prob-bits"}, {"rtn", "--attn-prob-quant"}, {"rtn", "--attn-prob-base"},
        {"rtn", "--tensor-bits"},    {"gptq", "--act-bits"},     {"gptq", "--tensor-bits"},
        {"rtn", "--calib"},          {"rtn", "--nsamples"},      {"ppl", "--text-half"},
        {"kld", "--text-half"}};
    for (size_t i = 0; i < sizeof flags / sizeof flags[0]; i++) {
        char cmd[4200], help[16384];
        snprintf(cmd, sizeof cmd, "'%s' %s --help 2>&1", bin, flags[i][0]);
        FILE *p = popen(cmd, "r");
        assert_non_null(p);
        size_t n = fread(help, 1, sizeof help - 1, p);
        help[n] = 0;
        pclose(p);
        if (!strstr(help, flags[i][1]))
            fail_msg("xfquant %s --help does not mention %s", flags[i][0], flags[i][1]);
    }
}

/* The scheme keys (act_*, kv_*, attn_prob_*, tensor_bits, smooth,
 * outliers) are the option table's keys; rtn accepts calibration keys only
 * when a key searches on calibration text. */
static void test_scheme_keys_map_to_options(void **state)
{
    fixture *f = *state;
    xf_regress_suite s;
    xf_error err = {0};
    assert_int_equal(
        load(f,
             "{'cases': [{'id': 'a', 'model': '/abs/m', 'recipe': {'method': 'rtn', 'bits': 4, "
             "'act_bits': 4, 'act_sym': false, 'act_group': 32, 'act_clip': 'search', "
             "'act_inputs': 'qkv,down', 'kv_bits': 4, 'kv_group': 16, 'kv_clip': 0.95, "
             "'attn_prob_bits': 4, 'attn_prob_quant': 'log2', 'attn_prob_base': 0.5, "
             "'tensor_bits': ['down_proj=8', 'q_proj=3'], 'calib': '/abs/c.txt', "
             "'nsamples': 8}, 'eval': {'text': 'eval.txt'}, 'expect': {}}]}",
             &s, &err),
        0);
    assert_recipe(&s.cases[0],
                  "{'method': 'rtn', 'act_bits': 4, 'kv_bits': 4, 'calib': '/abs/c.txt', "
                  "'nsamples': 8, 'act_sym': false, 'act_group': 32, 'act_clip': 'search', "
                  "'act_inputs': 'qkv,down', 'kv_group': 16, 'kv_clip': 0.95, "
                  "'attn_prob_bits': 4, 'attn_prob_quant': 'log2', 'attn_prob_base': 0.5, "
                  "'tensor_bits': ['down_proj=8', 'q_proj=3']}");
    xf_regress_suite_free(&s);

    static const char *const bad[][2] = {
        {"'act_clip': 1.5", "'act_clip' must be a number in (0, 1], not '1.5'"},
        {"'act_sym': 1", "'act_sym' must be true or false"},
        {"'tensor_bits': 'down=8'", "'tensor_bits' must be a non-empty array of strings"},
        {"'kv_group': -1", "'kv_group' must be a non-negative integer, not '-1'"},
        {"'calib': 'c.txt'", "rtn reads calibration text only for --act-clip search"},
        {"'act_clip': 'search'", "need --calib FILE"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char suite[1024];
        snprintf(suite, sizeof suite,
                 "{'cases': [{'id': 'a', 'model': 'm', 'recipe': {'method': 'rtn', 'bits': 4, "
                 "'act_bits': 4, %s}, 'eval': {'text': 'e'}, 'expect': {}}]}",
                 bad[i][0]);
        err.msg[0] = 0;
        assert_int_not_equal(load(f, suite, &s, &err), 0);
        if (!strstr(err.msg, bad[i][1]))
            fail_msg("%s: got '%s', want '%s'", bad[i][0], err.msg, bad[i][1]);
    }
}

/* Every scheme key is a recipe key: a key missing from the recipe's list
 * rejected every suite that used it (weight_grid did, found while fuzzing). */
static void test_every_scheme_key_is_allowed(void **state)
{
    fixture *f = *state;
    xf_regress_suite s;
    xf_error err = {0};
    assert_int_equal(load(f,
                          "{'cases': [{'id': 'a', 'model': '/abs/m', 'recipe': {'method': 'rtn', "
                          "'bits': 4, 'weight_grid': 'log2'}, 'eval': {'text': 'e'}, "
                          "'expect': {}}]}",
                          &s, &err),
                     0);
    assert_recipe(&s.cases[0], "{'method': 'rtn', 'weight_grid': 'log2'}");
    xf_regress_suite_free(&s);
    for (int i = 0; i < xf_recipe_row_count(); i++) {
        const xf_recipe_row *row = xf_recipe_row_at(i);
        char suite[512];
        snprintf(suite, sizeof suite,
                 "{'cases': [{'id': 'a', 'model': 'm', 'recipe': {'method': 'rtn', 'bits': 4, "
                 "'%s': null}, 'eval': {'text': 'e'}, 'expect': {}}]}",
                 row->key);
        err.msg[0] = 0;
        if (load(f, suite, &s, &err) == 0)
            xf_regress_suite_free(&s);
        else if (strstr(err.msg, "unknown key") && !row->alias_of)
            fail_msg("option key %s refused: %s", row->key, err.msg);
    }
}

/* The example in docs/regress.md is a valid suite. */
static void test_docs_example_parses(void **state)
{
    (void)state;
    char *doc;
    size_t len;
    xf_error err = {0};
    assert_int_equal(xf_read_file("docs/regress.md", &doc, &len, &err), 0);
    const char *mark = strstr(doc, "<!-- example-suite -->");
    assert_non_null(mark);
    const char *start = strstr(mark, "```json\n");
    assert_non_null(start);
    start += 8;
    const char *end = strstr(start, "```");
    assert_non_null(end);
    xf_regress_suite s;
    if (xf_regress_suite_parse(&s, start, (size_t)(end - start), "docs/regress.md", ".", &err))
        fail_msg("%s", err.msg);
    assert_true(s.n_cases >= 3);
    assert_true(s.n_relations >= 1);
    xf_regress_suite_free(&s);
    free(doc);
}

/* Every suite committed under tests/regress/ loads (a broken suite file
 * would otherwise only show up when someone runs `xfquant regress`). */
static void test_repo_suites_parse(void **state)
{
    (void)state;
    DIR *d = opendir("tests/regress");
    assert_non_null(d);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        size_t len = strlen(e->d_name);
        if (len < 6 || strcmp(e->d_name + len - 5, ".json"))
            continue;
        char path[512];
        snprintf(path, sizeof path, "tests/regress/%s", e->d_name);
        xf_regress_suite s;
        xf_error err = {0};
        if (xf_regress_suite_load(&s, path, ".", &err))
            fail_msg("%s", err.msg);
        assert_true(s.n_cases >= 1);
        xf_regress_suite_free(&s);
        n++;
    }
    closedir(d);
    assert_true(n >= 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_parse_full_case, setup, teardown),
        cmocka_unit_test_setup_teardown(test_parse_errors_name_file_and_case, setup, teardown),
        cmocka_unit_test_setup_teardown(test_gguf_cases_parse, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pending_baseline_update, setup, teardown),
        cmocka_unit_test(test_band_sides),
        cmocka_unit_test_setup_teardown(test_verdicts_each_side, setup, teardown),
        cmocka_unit_test_setup_teardown(test_relations, setup, teardown),
        cmocka_unit_test_setup_teardown(test_skip_propagation, setup, teardown),
        cmocka_unit_test_setup_teardown(test_filter, setup, teardown),
        cmocka_unit_test_setup_teardown(test_update_round_trip, setup, teardown),
        cmocka_unit_test(test_xml_checker_rejects),
        cmocka_unit_test_setup_teardown(test_junit_xml, setup, teardown),
        cmocka_unit_test_setup_teardown(test_svg_plot, setup, teardown),
        cmocka_unit_test_setup_teardown(test_svg_panels, setup, teardown),
        cmocka_unit_test_setup_teardown(test_table_json_markdown, setup, teardown),
        cmocka_unit_test_setup_teardown(test_every_scheme_key_is_allowed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_scheme_keys_map_to_options, setup, teardown),
        cmocka_unit_test_setup_teardown(test_argv_maps_recipe_to_cli_flags, setup, teardown),
        cmocka_unit_test_setup_teardown(test_exec_reuses_same_recipe, setup, teardown),
        cmocka_unit_test_setup_teardown(test_relation_mean_over_pattern, setup, teardown),
        cmocka_unit_test(test_docs_example_parses),
        cmocka_unit_test(test_repo_suites_parse),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
