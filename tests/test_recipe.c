/* The option table of rtn/gptq (pipeline/recipe_options.h) through the
 * public API (include/xfquant.h) and the CLI: every row round-trips (flag
 * value → recipe → JSON → recipe → the same JSON), `--recipe FILE` with
 * overriding flags, the .xfq's recorded recipe fed back gives the same
 * bytes, and --calib-max-tokens (the windows come from the first N tokens;
 * too few for one window is an error). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "include/xfquant.h"
#include "pipeline/recipe_options.h"
#include "tests/support/cli_run.h"
#include "tests/support/random_model.h"
#include "tests/support/random_tokenizer.h"
#include "tests/support/test_util.h"

static char *g_tmp;

static int setup(void **state)
{
    (void)state;
    g_tmp = xf_test_tmpdir();
    return g_tmp ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    xf_test_rmtree(g_tmp);
    free(g_tmp);
    return 0;
}

/* One value per option key, not its default. A row added to the table
 * without a value here fails test_every_row_round_trips. */
static const struct {
    const char *key, *value;
} samples[] = {
    {"bits", "3"},           {"group", "32"},          {"sym", "true"},
    {"clip", "mse"},         {"quantize_head", "true"}, {"gguf_type", "Q4_K_M"},
    {"outliers", "0.5%"},    {"weight_grid", "log2"},   {"tensor_bits", "down_proj=8"},
    {"calib", "c.txt"},      {"calib_field", "body"},   {"calib_format", "jsonl"},
    {"calib_max_tokens", "4096"}, {"nsamples", "16"},   {"seqlen", "64"},
    {"seed", "3"},           {"act_order", "true"},     {"static_groups", "true"},
    {"damp", "0.05"},        {"block", "64"},           {"gptq_v2", "true"},
    {"max_blocks", "2"},     {"token_weight", "attn-concentration"},
    {"act_bits", "4"},       {"act_sym", "false"},      {"act_asym", "true"},
    {"act_group", "32"},     {"act_clip", "0.9"},       {"act_inputs", "qkv,down"},
    {"kv_bits", "4"},        {"kv_group", "16"},        {"kv_clip", "0.95"},
    {"attn_prob_bits", "4"}, {"attn_prob_quant", "log2"}, {"attn_prob_base", "search"},
    {"smooth", "0.5"},       {"smooth_inputs", "qkv,mlp"}, {"rotate", "hadamard"},
    {"rotate_no_online", "true"}, {"rotate_no_headwise", "true"}, {"rotate_qk", "true"}, {"klt_hadamard", "true"},
    {"rotate_steps", "10"},  {"rotate_lr", "0.5"},
    {"act_quant", "razor"},  {"kv_quant", "razor"},     {"razor_group", "32"},
    {"razor_base_bits", "8"}, {"kv_razor_base_bits", "6"}, {"kv_keep", "log"},
    {"kv_keep_window", "8"}, {"repquant", "true"},
    {"rotate_objective", "local"}, {"rotate_weights", "fp"}, {"rotate_ste", "identity"}, {"rotate_loss", "kl"}, {"rotate_windows", "8"},
    {"rotate_batch", "2"},   {"kl_top_k", "8"},        {"rotate_scales", "true"},
};

static const char *sample_of(const char *key)
{
    for (size_t i = 0; i < sizeof samples / sizeof *samples; i++)
        if (!strcmp(samples[i].key, key))
            return samples[i].value;
    return NULL;
}

static char *to_json(const xf_recipe *r)
{
    xf_status st;
    char *s = xf_recipe_to_json(r, &st);
    if (!s)
        fail_msg("to_json: %s", st.message);
    return s;
}

/* flag value → recipe → JSON → recipe → the same JSON, for every row and
 * method that accepts it; the other method refuses it; a bad value is a
 * usage error naming the flag. */
static void test_every_row_round_trips(void **state)
{
    (void)state;
    assert_true(xf_option_count() > 30);
    xf_option_info none;
    assert_int_equal(xf_option_get(xf_option_count(), &none), -1);
    assert_int_equal(xf_option_get(-1, &none), -1);
    for (int i = 0; i < xf_option_count(); i++) {
        xf_option_info o;
        assert_int_equal(xf_option_get(i, &o), 0);
        assert_non_null(o.flag);
        assert_non_null(o.key);
        assert_non_null(o.help);
        assert_true(o.methods != 0);
        assert_true((o.type == XF_OPT_BOOL) == (o.arg_name == NULL));
        const char *v = sample_of(o.key);
        if (!v)
            fail_msg("option --%s (key %s) has no sample value in this test", o.flag, o.key);
        for (unsigned m = XF_METHOD_MASK_RTN; m <= XF_METHOD_MASK_GPTQ; m <<= 1) {
            xf_status st;
            xf_recipe *r = xf_recipe_new(m == XF_METHOD_MASK_RTN ? "rtn" : "gptq", &st);
            assert_non_null(r);
            char *base = to_json(r);
            int rc = xf_recipe_set(r, o.key, v, &st);
            bool log2_gptq = !strcmp(o.key, "weight_grid") && m == XF_METHOD_MASK_GPTQ;
            if (!(o.methods & m) || log2_gptq) {
                assert_int_equal(rc, -1);
                assert_int_equal(st.code, XF_USAGE);
                assert_non_null(strstr(st.message, "only"));
                assert_non_null(strstr(st.message, o.flag));
                xf_free(base);
                xf_recipe_free(r);
                continue;
            }
            if (rc != 0)
                fail_msg("--%s %s: %s", o.flag, v, st.message);
            char *j1 = to_json(r);
            /* the value is recorded: the JSON differs from the defaults' */
            if (!strcmp(j1, base))
                fail_msg("--%s %s is not recorded: %s", o.flag, v, j1);
            xf_recipe *back = xf_recipe_from_json(j1, &st);
            if (!back)
                fail_msg("--%s: its own JSON %s is refused: %s", o.flag, j1, st.message);
            char *j2 = to_json(back);
            if (strcmp(j1, j2) != 0)
                fail_msg("--%s: %s reads back as %s", o.flag, j1, j2);
            /* a value no row accepts is a usage error naming the flag */
            const char *bad = o.type == XF_OPT_STRING && strcmp(o.key, "act_inputs") &&
                                      strcmp(o.key, "smooth_inputs")
                                  ? ""
                                  : "x!";
            assert_int_equal(xf_recipe_set(r, o.key, bad, &st), -1);
            assert_int_equal(st.code, XF_USAGE);
            if (o.type != XF_OPT_LIST && !strstr(st.message, o.flag))
                fail_msg("--%s '%s': message '%s' does not name the flag", o.flag, bad,
                         st.message);
            xf_free(j1);
            xf_free(j2);
            xf_free(base);
            xf_recipe_free(back);
            xf_recipe_free(r);
        }
    }
    /* the rows that also take "search" read their recorded "search" back */
    static const char *const searched[] = {"smooth", "act_clip", "attn_prob_base"};
    for (size_t i = 0; i < sizeof searched / sizeof searched[0]; i++) {
        xf_status st;
        xf_recipe *r = xf_recipe_new("gptq", &st);
        if (xf_recipe_set(r, searched[i], "search", &st) != 0)
            fail_msg("%s search: %s", searched[i], st.message);
        char *j1 = to_json(r);
        assert_non_null(strstr(j1, "\"search\""));
        xf_recipe *back = xf_recipe_from_json(j1, &st);
        if (!back)
            fail_msg("%s: its own JSON %s is refused: %s", searched[i], j1, st.message);
        char *j2 = to_json(back);
        assert_string_equal(j1, j2);
        xf_free(j1);
        xf_free(j2);
        xf_recipe_free(back);
        xf_recipe_free(r);
    }
}

/* from_json: the flat object, a .xfq's recipe (its "options"), strict keys. */
/* Each row's documented default (--help, docs/cli.md) is the value
 * xf_quant_options_defaults gives: setting it changes nothing. */
static void test_defaults_agree_with_table(void **state)
{
    (void)state;
    const xf_quant_method methods[2] = {XF_METHOD_RTN, XF_METHOD_GPTQ};
    int checked = 0;
    for (int mi = 0; mi < 2; mi++) {
        xf_quant_recipe base;
        xf_quant_recipe_init(&base, methods[mi]);
        json_t *want = xf_quant_options_to_json(&base.o);
        assert_non_null(want);
        for (int i = 0; i < xf_recipe_row_count(); i++) {
            const xf_recipe_row *row = xf_recipe_row_at(i);
            unsigned bit = methods[mi] == XF_METHOD_RTN ? XF_RO_RTN : XF_RO_GPTQ;
            if (!row->default_text || row->alias_of || !(row->methods & bit))
                continue;
            xf_quant_recipe r;
            xf_quant_recipe_init(&r, methods[mi]);
            xf_error err = {0};
            if (xf_quant_recipe_set(&r, row->key, row->default_text, &err) != 0)
                fail_msg("--%s: its default '%s' is refused: %s", row->flag, row->default_text,
                         err.msg);
            json_t *got = xf_quant_options_to_json(&r.o);
            assert_non_null(got);
            if (!json_equal(got, want)) {
                char *g = json_dumps(got, JSON_SORT_KEYS), *w = json_dumps(want, JSON_SORT_KEYS);
                fail_msg("--%s %s (its documented default) gives %s, the defaults %s", row->flag,
                         row->default_text, g, w);
            }
            json_decref(got);
            xf_quant_recipe_free(&r);
            checked++;
        }
        json_decref(want);
        xf_quant_recipe_free(&base);
    }
    assert_true(checked > 20);
}

static void test_recipe_json_forms(void **state)
{
    (void)state;
    xf_status st;
    xf_recipe *r = xf_recipe_from_json(
        "{\"bits\": 3, \"group_size\": 32, \"options\": {\"method\": \"rtn\", \"bits\": 3, "
        "\"group\": 32}, \"online_transforms\": []}",
        &st);
    if (!r)
        fail_msg("%s", st.message);
    char *j = to_json(r);
    assert_string_equal(j, "{\"bits\":3,\"group\":32,\"method\":\"rtn\"}");
    xf_free(j);
    assert_int_equal(xf_recipe_check(r, &st), 0);
    assert_int_equal(st.code, XF_OK);
    xf_recipe_free(r);

    static const char *const bad[][2] = {
        {"{\"method\": \"rtn\", \"grup\": 3}", "unknown key 'grup'"},
        {"{\"bits\": 3}", "missing key 'method'"},
        {"{\"method\": \"awq\"}", "'method' must be"},
        {"{\"method\": \"rtn\", \"act_order\": true}", "key 'act_order' applies to method gptq"},
        {"{\"method\": \"rtn\", \"bits\": \"4\"}", "'bits' must be 2, 3, 4 or 8"},
        {"{\"method\": \"rtn\", \"act_asym\": true}", "unknown key 'act_asym'"},
        {"{\"method\": \"rtn\", \"tensor_bits\": \"a=4\"}", "'tensor_bits' must be"},
        {"[1]", "must be a JSON object"},
        {"{\"method\": ", "recipe"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        r = xf_recipe_from_json(bad[i][0], &st);
        assert_null(r);
        assert_int_equal(st.code, XF_USAGE);
        if (!strstr(st.message, bad[i][1]))
            fail_msg("%s: got '%s', want '%s'", bad[i][0], st.message, bad[i][1]);
        assert_null(strchr(st.message, '\n'));
    }
    /* whole-recipe rules */
    r = xf_recipe_new("gptq", &st);
    assert_int_equal(xf_recipe_check(r, &st), -1);
    assert_int_equal(st.code, XF_USAGE);
    assert_non_null(strstr(st.message, "--calib FILE is required"));
    xf_recipe_free(r);
    r = xf_recipe_new("rtn", &st);
    assert_int_equal(xf_recipe_set(r, "calib_max_tokens", "100", &st), 0);
    assert_int_equal(xf_recipe_check(r, &st), -1);
    assert_non_null(strstr(st.message, "rtn reads calibration text only for"));
    assert_int_equal(xf_recipe_set(r, "act_bits", "4", &st), 0);
    assert_int_equal(xf_recipe_set(r, "act_clip", "search", &st), 0);
    assert_int_equal(xf_recipe_check(r, &st), -1);
    assert_non_null(strstr(st.message, "need --calib FILE"));
    assert_int_equal(xf_recipe_set(r, "calib", "c.txt", &st), 0);
    assert_int_equal(xf_recipe_check(r, &st), 0);
    xf_recipe_free(r);
    assert_null(xf_recipe_new("awq", &st));
    assert_int_equal(st.code, XF_USAGE);
}

static json_t *info_json(const char *xfq)
{
    xf_cli_result r = xf_cli_run(g_tmp, "info %s --json", xfq);
    if (r.code != 0)
        fail_msg("info %s: %s", xfq, r.err);
    json_t *j = json_loads(r.out, 0, NULL);
    xf_cli_result_free(&r);
    assert_non_null(j);
    return j;
}

static json_t *options_of(const char *xfq)
{
    json_t *j = info_json(xfq);
    json_t *o = json_incref(json_object_get(json_object_get(j, "recipe"), "options"));
    json_decref(j);
    assert_non_null(o);
    return o;
}

static bool xf_path_exists_test(const char *path)
{
    FILE *fp = fopen(path, "rb");
    if (fp)
        fclose(fp);
    return fp != NULL;
}

static void write_text(const char *path, const char *text)
{
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    fputs(text, fp);
    fclose(fp);
}

static void assert_options(const char *xfq, const char *want)
{
    json_t *got = options_of(xfq), *w = json_loads(want, 0, NULL);
    assert_non_null(w);
    if (!json_equal(got, w)) {
        char *g = json_dumps(got, JSON_SORT_KEYS | JSON_COMPACT);
        fail_msg("%s: recorded options %s, want %s", xfq, g, want);
    }
    json_decref(got);
    json_decref(w);
}

/* A llama with a SentencePiece-style tokenizer (264 tokens) and a
 * calibration text of about 3000 tokens. */
static char *make_model(char *calib, size_t cap)
{
    char dir[4200];
    snprintf(dir, sizeof dir, "%s/llama", g_tmp);
    xf_random_model_spec s = {.family = "llama", .hidden = 64, .intermediate = 96, .layers = 2,
                              .heads = 4, .kv_heads = 2, .vocab = 300, .max_pos = 64,
                              .f16 = true, .seed = 11};
    char *m = xf_random_model_write(dir, &s);
    assert_non_null(m);
    assert_int_equal(xf_random_tokenizer_write(m, false), 0);
    snprintf(calib, cap, "%s/calib.txt", g_tmp);
    char *text = malloc(4000);
    assert_non_null(text);
    uint64_t x = 12345;
    for (int i = 0; i < 3000; i++) {
        x = x * 6364136223846793005ULL + 1442695040888963407ULL;
        text[i] = "ab xyz\n"[(x >> 33) % 7];
    }
    text[3000] = '\0';
    write_text(calib, text);
    free(text);
    return m;
}

/* --recipe FILE first, flags over it wherever they stand (a list flag
 * replaces the file's list); a bad file is one usage line naming it. */
static void test_recipe_file_and_flags(void **state)
{
    (void)state;
    char calib[4200];
    char *model = make_model(calib, sizeof calib);
    char rf[4200], out[4200];
    snprintf(rf, sizeof rf, "%s/r.json", g_tmp);
    snprintf(out, sizeof out, "%s/o.xfq", g_tmp);
    write_text(rf, "{\"method\": \"rtn\", \"bits\": 3, \"group\": 32, \"act_bits\": 8, "
                   "\"tensor_bits\": [\"down_proj=8\"]}");
    xf_cli_result r = xf_cli_run(g_tmp, "rtn --group 16 --recipe %s --tensor-bits up_proj=2 %s %s",
                                 rf, model, out);
    if (r.code != 0)
        fail_msg("%s", r.err);
    xf_cli_result_free(&r);
    assert_options(out, "{\"method\": \"rtn\", \"bits\": 3, \"group\": 16, \"act_bits\": 8, "
                        "\"tensor_bits\": [\"up_proj=2\"]}");
    /* a file without "method" is the command's */
    write_text(rf, "{\"bits\": 8}");
    r = xf_cli_run(g_tmp, "rtn --recipe %s %s %s", rf, model, out);
    assert_int_equal(r.code, 0);
    xf_cli_result_free(&r);
    assert_options(out, "{\"method\": \"rtn\", \"bits\": 8}");
    write_text(rf, "{\"method\": \"rtn\", \"bits\": 3, \"group\": 32, \"act_bits\": 8, "
                   "\"tensor_bits\": [\"down_proj=8\"]}");
    /* no flags: the file alone */
    r = xf_cli_run(g_tmp, "rtn --recipe %s %s %s", rf, model, out);
    assert_int_equal(r.code, 0);
    xf_cli_result_free(&r);
    assert_options(out, "{\"method\": \"rtn\", \"bits\": 3, \"group\": 32, \"act_bits\": 8, "
                        "\"tensor_bits\": [\"down_proj=8\"]}");

    char bad[4200];
    snprintf(bad, sizeof bad, "%s/bad.json", g_tmp);
    static const char *const cases[][3] = {
        {"gptq", "{\"method\": \"rtn\", \"bits\": 4}", "the recipe's method is 'rtn', not gptq"},
        {"rtn", "{\"method\": \"rtn\", \"bitz\": 4}", "unknown key 'bitz'"},
        {"rtn", "{\"method\": \"rtn\", \"bits\": 5}", "'bits' must be 2, 3, 4 or 8"},
        {"rtn", "{\"method\": \"rtn\",", "line"},
        {"rtn", "{\"method\": \"rtn\", \"nsamples\": 4}", "rtn reads calibration text only"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        write_text(bad, cases[i][1]);
        bool gptq = !strcmp(cases[i][0], "gptq");
        r = xf_cli_run(g_tmp, "%s --recipe %s%s %s %s/x.xfq", cases[i][0], bad,
                       gptq ? " --calib c.txt" : "", model, g_tmp);
        if (r.code != 2 || xf_cli_count_lines(r.err) != 1 || !strstr(r.err, cases[i][2]) ||
            (i < 4 && !strstr(r.err, bad)))
            fail_msg("%s: exit %d, '%s' (want 2 and '%s')", cases[i][1], r.code, r.err,
                     cases[i][2]);
        xf_cli_result_free(&r);
    }
    r = xf_cli_run(g_tmp, "rtn --recipe %s/none.json %s %s/x.xfq", g_tmp, model, g_tmp);
    assert_int_equal(r.code, 1);
    assert_int_equal(xf_cli_count_lines(r.err), 1);
    assert_non_null(strstr(r.err, "none.json"));
    xf_cli_result_free(&r);
    /* --help is generated from the table: every row of the method, with its key */
    for (int m = 0; m < 2; m++) {
        r = xf_cli_run(g_tmp, "%s --help", m ? "gptq" : "rtn");
        assert_int_equal(r.code, 0);
        for (int i = 0; i < xf_option_count(); i++) {
            xf_option_info o;
            xf_option_get(i, &o);
            char flag[80], key[80];
            snprintf(flag, sizeof flag, "--%s", o.flag);
            snprintf(key, sizeof key, "[%s]", o.key);
            bool listed = strstr(r.out, flag) && strstr(r.out, key);
            if (listed != ((o.methods & (m ? XF_METHOD_MASK_GPTQ : XF_METHOD_MASK_RTN)) != 0))
                fail_msg("%s --help: %s %s", m ? "gptq" : "rtn", flag,
                         listed ? "listed" : "missing");
        }
        xf_cli_result_free(&r);
    }
    free(model);
}

/* The recipe a .xfq records (the whole "recipe" object, or `info --json`'s
 * output) fed back through --recipe reproduces the file byte for byte, and
 * means what the flags meant. */
static void test_recorded_recipe_reproduces(void **state)
{
    (void)state;
    char calib[4200];
    char *model = make_model(calib, sizeof calib);
    char rf[4200], out[4200], first[4200], flags[4200];
    snprintf(rf, sizeof rf, "%s/r.json", g_tmp);
    snprintf(out, sizeof out, "%s/o.xfq", g_tmp);
    snprintf(first, sizeof first, "%s/first.xfq", g_tmp);
    snprintf(flags, sizeof flags, "%s/flags.xfq", g_tmp);
    xf_cli_result r = xf_cli_run(g_tmp,
                                 "gptq --bits 3 --group 32 --act-order --calib %s --nsamples 4 "
                                 "--seqlen 16 --seed 5 --damp 0.02 %s %s",
                                 calib, model, flags);
    if (r.code != 0)
        fail_msg("%s", r.err);
    xf_cli_result_free(&r);
    /* the recorded recipe, as a file */
    json_t *info = info_json(flags);
    char *rec = json_dumps(json_object_get(info, "recipe"), JSON_INDENT(2));
    write_text(rf, rec);
    free(rec);
    r = xf_cli_run(g_tmp, "gptq --recipe %s %s %s", rf, model, out);
    if (r.code != 0)
        fail_msg("%s", r.err);
    xf_cli_result_free(&r);
    json_t *a = options_of(flags), *b = options_of(out);
    assert_true(json_equal(a, b));
    json_decref(a);
    json_decref(b);
    /* fed back again (its own recorded recipe, the same command line): the same bytes */
    json_t *info2 = info_json(out);
    rec = json_dumps(json_object_get(info2, "recipe"), JSON_INDENT(2));
    write_text(rf, rec);
    free(rec);
    json_decref(info2);
    assert_int_equal(rename(out, first), 0);
    r = xf_cli_run(g_tmp, "gptq --recipe %s %s %s", rf, model, out);
    assert_int_equal(r.code, 0);
    xf_cli_result_free(&r);
    assert_true(xf_test_files_equal(first, out));
    /* and the flags' file holds the same weights: everything but the command line */
    json_t *i1 = info_json(flags), *i2 = info_json(out);
    json_object_del(json_object_get(i1, "provenance"), "command_line");
    json_object_del(json_object_get(i2, "provenance"), "command_line");
    json_object_del(i1, "path");
    json_object_del(i2, "path");
    json_object_del(i1, "file");
    json_object_del(i2, "file");
    if (!json_equal(i1, i2)) {
        char *s1 = json_dumps(i1, JSON_SORT_KEYS | JSON_COMPACT);
        char *s2 = json_dumps(i2, JSON_SORT_KEYS | JSON_COMPACT);
        fail_msg("flags and recipe differ:\n%.2000s\n%.2000s", s1, s2);
    }
    json_decref(i1);
    json_decref(i2);
    /* `info --json` output itself is a recipe file */
    char *whole = json_dumps(info, 0);
    write_text(rf, whole);
    free(whole);
    json_decref(info);
    r = xf_cli_run(g_tmp, "gptq --recipe %s %s %s", rf, model, out);
    assert_int_equal(r.code, 0);
    xf_cli_result_free(&r);
    assert_true(xf_test_files_equal(first, out));
    free(model);
}

/* the calibration provenance of a gptq run with extra flags */
static json_t *calibration_of(const char *model, const char *calib, const char *extra)
{
    char out[4200];
    snprintf(out, sizeof out, "%s/c.xfq", g_tmp);
    xf_cli_result r = xf_cli_run(g_tmp, "gptq --bits 4 --calib %s --nsamples 6 --seqlen 16 %s %s %s",
                                 calib, extra, model, out);
    if (r.code != 0)
        fail_msg("%s: %s", extra, r.err);
    xf_cli_result_free(&r);
    json_t *info = info_json(out);
    json_t *c = json_incref(json_object_get(json_object_get(info, "provenance"), "calibration"));
    json_decref(info);
    assert_non_null(c);
    return c;
}

/* --calib-max-tokens N: windows sampled inside the first N tokens (the
 * starts change; none past N - seqlen - 1), recorded in the recipe and the
 * provenance; fewer than one window + 1 is a one-line failure, as a too
 * short text is. */
static void test_calib_max_tokens(void **state)
{
    (void)state;
    char calib[4200];
    char *model = make_model(calib, sizeof calib);
    json_t *all = calibration_of(model, calib, "");
    json_t *cut = calibration_of(model, calib, "--calib-max-tokens 40");
    int64_t n_all = json_integer_value(json_object_get(all, "tokens_available"));
    assert_true(n_all > 1000);
    assert_null(json_object_get(all, "max_tokens"));
    assert_int_equal(json_integer_value(json_object_get(cut, "tokens_available")), 40);
    assert_int_equal(json_integer_value(json_object_get(cut, "max_tokens")), 40);
    const json_t *sa = json_object_get(all, "sample_starts"),
                 *sc = json_object_get(cut, "sample_starts");
    assert_int_equal(json_array_size(sc), 6);
    bool differ = false, far = false;
    for (size_t i = 0; i < 6; i++) {
        int64_t c = json_integer_value(json_array_get(sc, i));
        assert_true(c >= 0 && c <= 40 - 16 - 1);
        differ |= c != json_integer_value(json_array_get(sa, i));
        far |= json_integer_value(json_array_get(sa, i)) > 40;
    }
    assert_true(differ && far);
    json_decref(all);
    json_decref(cut);
    char out[4200], want[8600];
    snprintf(out, sizeof out, "%s/c.xfq", g_tmp);
    snprintf(want, sizeof want,
             "{\"method\": \"gptq\", \"calib\": \"%s\", \"nsamples\": 6, \"seqlen\": 16, "
             "\"calib_max_tokens\": 40}",
             calib);
    assert_options(out, want);
    /* exactly one window + 1: every window starts at 0 */
    json_t *one = calibration_of(model, calib, "--calib-max-tokens 17");
    for (size_t i = 0; i < 6; i++)
        assert_int_equal(json_integer_value(json_array_get(json_object_get(one, "sample_starts"), i)),
                         0);
    json_decref(one);
    /* too few for one window: a failure naming the option, nothing written */
    remove(out);
    xf_cli_result r = xf_cli_run(g_tmp,
                                 "gptq --bits 4 --calib %s --nsamples 6 --seqlen 16 "
                                 "--calib-max-tokens 16 %s %s",
                                 calib, model, out);
    assert_int_equal(r.code, 1);
    assert_int_equal(xf_cli_count_lines(r.err), 1);
    assert_non_null(strstr(r.err, "--calib-max-tokens 16"));
    assert_non_null(strstr(r.err, calib));
    xf_cli_result_free(&r);
    assert_false(xf_path_exists_test(out));
    /* a bad value is a usage error */
    r = xf_cli_run(g_tmp, "gptq --bits 4 --calib %s --calib-max-tokens 0 %s %s", calib, model, out);
    assert_int_equal(r.code, 2);
    assert_int_equal(xf_cli_count_lines(r.err), 1);
    assert_non_null(strstr(r.err, "--calib-max-tokens must be a positive integer, not '0'"));
    xf_cli_result_free(&r);
    free(model);
}

/* Every file in recipes/ (the README and docs point users at them) loads
 * through --recipe's reader, names no calibration setting (the user brings
 * those), sets only options that differ from their defaults, and becomes a
 * complete recipe once calibration flags are added. */
static void test_checked_in_recipes(void **state)
{
    (void)state;
    static const char *const files[] = {"recipes/best-w3-g32.json"};
    for (size_t f = 0; f < sizeof files / sizeof *files; f++) {
        json_error_t jerr;
        json_t *doc = json_load_file(files[f], 0, &jerr);
        if (!doc)
            fail_msg("%s: %s", files[f], jerr.text);
        xf_status st;
        xf_recipe *r = xf_recipe_from_file(files[f], "gptq", NULL, &st);
        if (!r)
            fail_msg("%s", st.message);
        char *canon = xf_recipe_to_json(r, &st);
        assert_non_null(canon);
        json_t *cj = json_loads(canon, 0, &jerr);
        assert_non_null(cj);
        const char *key;
        json_t *val;
        json_object_foreach(doc, key, val) {
            (void)val;
            if (!json_object_get(cj, key))
                fail_msg("%s: \"%s\" is at its default (drop it)", files[f], key);
        }
        static const char *const calib_keys[] = {"calib", "nsamples", "seqlen", "seed",
                                                 "calib_max_tokens", "threads"};
        for (size_t k = 0; k < sizeof calib_keys / sizeof *calib_keys; k++)
            if (json_object_get(doc, calib_keys[k]))
                fail_msg("%s: names the calibration setting \"%s\"", files[f], calib_keys[k]);
        assert_int_equal(xf_recipe_set(r, "calib", "calib.txt", &st), 0);
        if (xf_recipe_check(r, &st) != 0)
            fail_msg("%s: %s", files[f], st.message);
        json_decref(cj);
        json_decref(doc);
        xf_free(canon);
        xf_recipe_free(r);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_row_round_trips),
        cmocka_unit_test(test_defaults_agree_with_table),
        cmocka_unit_test(test_recipe_json_forms),
        cmocka_unit_test_setup_teardown(test_recipe_file_and_flags, setup, teardown),
        cmocka_unit_test_setup_teardown(test_recorded_recipe_reproduces, setup, teardown),
        cmocka_unit_test_setup_teardown(test_calib_max_tokens, setup, teardown),
        cmocka_unit_test(test_checked_in_recipes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
