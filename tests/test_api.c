/* The public API (include/xfquant.h) from the inside: a call sets OpenMP's
 * and OpenBLAS's thread counts for its own duration only; progress and log
 * lines reach the caller's callbacks; results equal the internal runners';
 * errors are one line with the right code. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "eval/model_scorer.h"
#include "eval/perplexity.h"
#include "eval/text_tokens.h"
#include "include/xfquant.h"
#include "model/loader.h"
#include "tests/support/random_model.h"
#include "tests/support/random_tokenizer.h"
#include "tests/support/test_util.h"

int openblas_get_num_threads(void);
void openblas_set_num_threads(int n);

typedef struct seen {
    int updates, ends, bad, warns;
    char last_warn[512];
} seen;

static void on_progress(void *user, const char *stage, int64_t done, int64_t total)
{
    seen *s = user;
    if (done == -1 && total == -1)
        s->ends++;
    else if (stage && *stage && done >= 1 && done <= total)
        s->updates++;
    else
        s->bad++;
}

static void on_log(void *user, int level, const char *message)
{
    seen *s = user;
    if (level == XF_LEVEL_WARN) {
        s->warns++;
        snprintf(s->last_warn, sizeof s->last_warn, "%s", message);
    }
}

static void test_threads_restored_and_callbacks(void **state)
{
    (void)state;
    XF_TEST_REQUIRE_SHARED(model_s, "models/stories260K");
    char model[4096]; /* xf_test_shared's buffer is reused */
    snprintf(model, sizeof model, "%s", model_s);
    XF_TEST_REQUIRE_SHARED(text, "data/tinystories/eval.txt");
    omp_set_num_threads(1);
    openblas_set_num_threads(1);
    seen s = {0};
    xf_set_log(on_log, &s, XF_LEVEL_WARN);
    xf_run_opts run = {.threads = 3, .progress = on_progress, .progress_user = &s};
    xf_status st;
    xf_model *m = xf_open_model(model, &run, &st);
    if (!m)
        print_message("%s\n", st.message);
    assert_non_null(m);
    assert_int_equal(st.code, XF_OK);
    xf_model_info info;
    assert_int_equal(xf_model_get_info(m, &info), 0);
    /* stories260K: max_position_embeddings 512; a longer window warns */
    xf_eval_opts eo = {.seqlen = 2 * info.max_position_embeddings, .max_windows = 2};
    xf_ppl_stats r;
    char *json = NULL;
    assert_int_equal(xf_perplexity(m, text, &eo, &run, &r, &json, &st), 0);
    assert_int_equal(r.threads, 3);                   /* ran with the call's count */
    assert_int_equal(omp_get_max_threads(), 1);       /* and gave the process its own back */
    assert_int_equal(openblas_get_num_threads(), 1);
    assert_int_equal(s.updates, 2);                   /* one per window */
    assert_int_equal(s.ends, 1);
    assert_int_equal(s.bad, 0);
    assert_int_equal(s.warns, 1);
    assert_non_null(strstr(s.last_warn, "longer than the model's max_position_embeddings"));
    assert_null(strchr(s.last_warn, '\n'));
    assert_true(isfinite(r.ppl) && r.ppl > 1.0);
    assert_non_null(json);
    char want[64];
    snprintf(want, sizeof want, "{\"ppl\": %.10g, ", r.ppl);
    assert_true(strncmp(json, want, strlen(want)) == 0);
    xf_free(json);

    /* the same number as the internal runner on the same windows */
    xf_loaded_model lm;
    xf_error err = {0};
    assert_int_equal(xf_model_open(&lm, model, &err), 0);
    xf_tokenizer *tok = xf_model_tokenizer(&lm, &err);
    assert_non_null(tok);
    xf_text_tokens tt = {0};
    assert_int_equal(xf_text_tokens_load(&tt, text, tok, false, &err), 0);
    xf_window_plan plan;
    assert_int_equal(xf_window_plan_make(&plan, XF_PROTOCOL_GPTQ, eo.seqlen, (int64_t)tt.n, 2,
                                         xf_llamacpp_chunk_bos(tok), &err),
                     0);
    xf_model_scorer ms;
    assert_int_equal(xf_model_scorer_open(&ms, &lm, eo.seqlen, &err), 0);
    xf_ppl_result ref;
    omp_set_num_threads(3);
    assert_int_equal(xf_perplexity_run(&ms.scorer, tt.ids, (int64_t)tt.n, &plan, &ref, &err), 0);
    omp_set_num_threads(1);
    assert_true(ref.ppl == r.ppl);
    assert_int_equal(ref.n_windows, r.n_windows);
    xf_model_scorer_free(&ms);
    xf_text_tokens_free(&tt);
    xf_tokenizer_free(tok);
    xf_model_close(&lm);

    /* no callback after the call: progress of internal code run now stays off them */
    int before = s.updates;
    assert_int_equal(xf_perplexity(m, text, &(xf_eval_opts){.max_windows = 1},
                                   &(xf_run_opts){.threads = 1}, &r, NULL, &st), 0);
    assert_int_equal(s.updates, before);
    xf_set_log(NULL, NULL, XF_LEVEL_WARN);
    xf_close_model(m);
}

/* --text-half: the two halves are the file's bytes cut after the first LF
 * at or after the middle; scoring half k equals scoring a file holding
 * exactly those bytes (same tokens, hash and perplexity); a text with no
 * line break after its middle has no halves. */
static void test_text_halves(void **state)
{
    (void)state;
    char *dir = xf_test_tmpdir();
    xf_random_model_spec spec = {.family = "llama", .hidden = 32, .intermediate = 64,
                                 .layers = 1, .heads = 4, .kv_heads = 2, .vocab = 300,
                                 .max_pos = 64, .seed = 5};
    char *mdir = xf_random_model_write(dir, &spec);
    assert_non_null(mdir);
    assert_int_equal(xf_random_tokenizer_write(mdir, false), 0);
    /* lines of different lengths, CRLF ends, so the cut is not at len / 2 */
    char text[4096] = "";
    for (int i = 0; i < 40; i++)
        snprintf(text + strlen(text), sizeof text - strlen(text), "line %d %.*s\r\n", i, i % 7 * 3,
                 "the cat sat on the mat and then");
    const size_t len = strlen(text);
    size_t o1, n1, o2, n2;
    assert_int_equal(xf_text_half_range(text, len, 1, &o1, &n1), 0);
    assert_int_equal(xf_text_half_range(text, len, 2, &o2, &n2), 0);
    assert_int_equal(o1, 0);
    assert_int_equal(o2, n1);             /* disjoint, nothing lost */
    assert_int_equal(n1 + n2, len);
    assert_true(n1 >= len / 2 && n1 < len / 2 + 64);
    assert_int_equal(text[n1 - 1], '\n'); /* half 1 ends at a line end */
    assert_true(memchr(text + len / 2, '\n', n1 - len / 2 - 1) == NULL); /* the first LF */
    char *whole = xf_test_write_file(dir, "whole.txt", text, len);
    char *h1 = xf_test_write_file(dir, "h1.txt", text, n1);
    char *h2 = xf_test_write_file(dir, "h2.txt", text + o2, n2);
    xf_status st;
    xf_run_opts run = {.threads = 1};
    xf_model *m = xf_open_model(mdir, &run, &st);
    assert_non_null(m);
    for (int half = 1; half <= 2; half++) {
        xf_ppl_stats a, b;
        xf_eval_opts eo = {.seqlen = 16, .text_half = half};
        assert_int_equal(xf_perplexity(m, whole, &eo, &run, &a, NULL, &st), 0);
        eo.text_half = 0;
        assert_int_equal(xf_perplexity(m, half == 1 ? h1 : h2, &eo, &run, &b, NULL, &st), 0);
        assert_true(a.ppl == b.ppl);
        assert_int_equal(a.n_tokens, b.n_tokens);
        assert_string_equal(a.text_sha256, b.text_sha256);
        assert_int_equal(a.text_half, half);
    }
    xf_ppl_stats w, one;
    assert_int_equal(xf_perplexity(m, whole, &(xf_eval_opts){.seqlen = 16}, &run, &w, NULL, &st), 0);
    assert_int_equal(xf_perplexity(m, whole, &(xf_eval_opts){.seqlen = 16, .text_half = 1}, &run,
                                   &one, NULL, &st), 0);
    assert_true(one.n_tokens < w.n_tokens);
    /* no LF after the middle: refused, naming the file */
    char *flat = xf_test_write_file(dir, "flat.txt", "one line\nno break after the middle", 35);
    assert_int_equal(xf_perplexity(m, flat, &(xf_eval_opts){.seqlen = 4, .text_half = 2}, &run,
                                   &one, NULL, &st), -1);
    assert_non_null(strstr(st.message, "flat.txt"));
    assert_non_null(strstr(st.message, "no halves"));
    xf_close_model(m);
    free(flat);
    free(whole);
    free(h1);
    free(h2);
    free(mdir);
    xf_test_rmtree(dir);
    free(dir);
}

static void test_errors_and_info(void **state)
{
    (void)state;
    xf_status st;
    xf_run_opts run = {.threads = 1};
    assert_null(xf_open_model("/nonexistent/xf-model", &run, &st));
    assert_int_equal(st.code, XF_FAIL);
    assert_non_null(strstr(st.message, "/nonexistent/xf-model"));
    assert_null(strchr(st.message, '\n'));
    assert_null(xf_info("/nonexistent/x.xfq", XF_FORMAT_JSON, &run, &st));
    assert_int_equal(st.code, XF_FAIL);
    assert_null(xf_info("/nonexistent/x.xfq", 7, &run, &st));
    assert_int_equal(st.code, XF_USAGE);

    const char *name, *what;
    int n = 0, gguf = 0;
    for (; xf_export_target_info(n, &name, &what) == 0; n++)
        gguf += !strcmp(name, "gguf") && what && *what;
    assert_true(n >= 3);
    assert_int_equal(gguf, 1);
    assert_int_equal(xf_export_target_info(-1, &name, &what), -1);
    xf_export_options eo = {.to = "nope"};
    assert_int_equal(xf_export("a.xfq", "b.gguf", &eo, &run, XF_FORMAT_TEXT, NULL, &st), -1);
    assert_int_equal(st.code, XF_USAGE);
    assert_string_equal(st.message, "unknown target 'nope'");
    eo = (xf_export_options){.to = "gguf", .float_type = "f8"};
    assert_int_equal(xf_export("a.xfq", "b.gguf", &eo, &run, XF_FORMAT_TEXT, NULL, &st), -1);
    assert_int_equal(st.code, XF_USAGE);
    assert_non_null(strstr(st.message, "--type must be"));
    assert_non_null(xf_version());
    assert_string_equal(xf_version(), XF_VERSION);

    XF_TEST_REQUIRE_SHARED(model, "models/stories260K");
    char *txt = xf_info(model, XF_FORMAT_TEXT, &run, &st);
    char *js = xf_info(model, XF_FORMAT_JSON, &run, &st);
    assert_non_null(txt);
    assert_non_null(js);
    assert_non_null(strstr(txt, "architecture: llama"));
    assert_non_null(strstr(js, "\"model_type\": \"llama\""));
    xf_free(txt);
    xf_free(js);
    xf_model *m = xf_open_model(model, &run, &st);
    assert_non_null(m);
    xf_stats_options so = {.calib = "/nonexistent/calib.txt"};
    assert_int_equal(xf_stats(m, &so, &run, XF_FORMAT_TEXT, NULL, &st), -1);
    assert_int_equal(st.code, XF_FAIL);
    assert_non_null(strstr(st.message, "/nonexistent/calib.txt"));
    so.calib_format = "csv";
    assert_int_equal(xf_stats(m, &so, &run, XF_FORMAT_TEXT, NULL, &st), -1);
    assert_int_equal(st.code, XF_USAGE);
    xf_close_model(m);
}

typedef struct events_seen {
    int n, updates, bad;
    int first_kind, last_kind;
    int64_t last_done;
} events_seen;

static void on_event(void *user, const xf_progress_event *e)
{
    events_seen *s = user;
    if (s->n++ == 0)
        s->first_kind = e->kind;
    s->last_kind = e->kind;
    if (!e->stage || strcmp(e->stage, "rtn: layer") != 0 || e->elapsed_s < 0 ||
        e->done < s->last_done)
        s->bad++;
    s->last_done = e->done;
    if (e->kind == XF_PROGRESS_UPDATE)
        s->updates++;
}

/* progress_event beside the simple callback: each gets the loop's
 * progress (the simple one as before: no start, updates, one end), and a
 * call without them reaches neither. */
static void test_progress_events(void **state)
{
    (void)state;
    char *tmp = xf_test_tmpdir();
    assert_non_null(tmp);
    char dir[4200], out[4200];
    snprintf(dir, sizeof dir, "%s/llama", tmp);
    snprintf(out, sizeof out, "%s/a.xfq", tmp);
    xf_random_model_spec spec = {.family = "llama", .hidden = 32, .intermediate = 64,
                                 .layers = 3, .heads = 4, .kv_heads = 2, .vocab = 64,
                                 .max_pos = 32, .seed = 5};
    char *model = xf_random_model_write(dir, &spec);
    assert_non_null(model);
    xf_status st;
    xf_recipe *r = xf_recipe_new("rtn", &st);
    assert_non_null(r);
    assert_int_equal(xf_recipe_set(r, "bits", "4", &st), 0);
    seen s = {0};
    events_seen es = {0};
    xf_run_opts run = {.threads = 1, .progress = on_progress, .progress_user = &s,
                       .progress_event = on_event, .progress_event_user = &es};
    char *report = NULL;
    assert_int_equal(xf_quantize(model, r, out, &run, XF_FORMAT_JSON, &report, &st), 0);
    assert_int_equal(s.updates, 3);
    assert_int_equal(s.ends, 1);
    assert_int_equal(s.bad, 0);
    assert_int_equal(es.n, 5);
    assert_int_equal(es.first_kind, XF_PROGRESS_START);
    assert_int_equal(es.last_kind, XF_PROGRESS_END);
    assert_int_equal(es.updates, 3);
    assert_int_equal(es.last_done, 3);
    assert_int_equal(es.bad, 0);
    assert_null(strstr(report, "\"timing\"")); /* GPTQ's only */
    xf_free(report);

    /* events alone; then neither */
    events_seen es2 = {0};
    run = (xf_run_opts){.threads = 1, .progress_event = on_event, .progress_event_user = &es2};
    assert_int_equal(xf_quantize(model, r, out, &run, XF_FORMAT_TEXT, NULL, &st), 0);
    assert_int_equal(es2.n, 5);
    assert_int_equal(xf_quantize(model, r, out, &(xf_run_opts){.threads = 1}, XF_FORMAT_TEXT,
                                 NULL, &st),
                     0);
    assert_int_equal(es2.n, 5);
    assert_int_equal(es.n, 5);
    assert_int_equal(s.updates, 3);
    xf_recipe_free(r);
    free(model);
    xf_test_rmtree(tmp);
    free(tmp);
}

/* The same file for any thread count: GPTQ (v2, act-order, 4-bit
 * activations and KV, Hadamard rotation) on a model with novels-5m's
 * widths, where OpenBLAS's own threading gave other sums (a 256 x 688 x
 * 256 product, LAPACK's dpotrf) before every product was tiled. */
static void test_quantize_any_threads(void **state)
{
    (void)state;
    char *tmp = xf_test_tmpdir();
    char dir[4200], calib[4200];
    snprintf(dir, sizeof dir, "%s/llama", tmp);
    xf_random_model_spec spec = {.family = "llama", .hidden = 256, .intermediate = 688,
                                 .layers = 2, .heads = 8, .kv_heads = 4, .vocab = 300,
                                 .max_pos = 256, .seed = 11};
    char *model = xf_random_model_write(dir, &spec);
    assert_non_null(model);
    assert_int_equal(xf_random_tokenizer_write(model, false), 0);
    size_t cap = 1 << 16, len = 0;
    char *text = malloc(cap);
    uint64_t rs = 3;
    static const char *const words[] = {"the", "cat", "sat", "on", "a", "mat", "and", "ran",
                                        "to", "see", "dog", "big", "red", "sun", "hat"};
    while (len + 16 < cap) {
        const char *w = words[xf_test_rand_u64(&rs) % 15];
        len += (size_t)snprintf(text + len, cap - len, "%s%s", w, len % 7 == 0 ? ".\n" : " ");
    }
    char *cpath = xf_test_write_file(tmp, "calib.txt", text, len);
    snprintf(calib, sizeof calib, "%s", cpath);
    free(cpath);
    free(text);
    xf_status st;
    xf_recipe *r = xf_recipe_new("gptq", &st);
    assert_non_null(r);
    const char *kv[][2] = {{"bits", "4"},       {"gptq_v2", "true"}, {"act_order", "true"},
                           {"act_bits", "4"},   {"kv_bits", "4"},    {"rotate", "hadamard"},
                           {"nsamples", "4"},   {"seqlen", "256"},   {"calib", calib}};
    for (size_t i = 0; i < sizeof kv / sizeof kv[0]; i++)
        assert_int_equal(xf_recipe_set(r, kv[i][0], kv[i][1], &st), 0);
    char out[3][4200];
    const int threads[3] = {1, 2, 3};
    static const char *const pass_name[] = {"hadamard", "learned", "learned+scales (OstQuant)"};
    for (int pass = 0; pass < 3; pass++) {
        if (pass == 2) { /* OstQuant: learned scales and the KL-Top loss on top */
            assert_int_equal(xf_recipe_set(r, "rotate_scales", "true", &st), 0);
            assert_int_equal(xf_recipe_set(r, "rotate_loss", "kl-top", &st), 0);
        }
        if (pass == 1) { /* the learned rotation (end to end, a few steps) too */
            assert_int_equal(xf_recipe_set(r, "rotate", "learned", &st), 0);
            assert_int_equal(xf_recipe_set(r, "rotate_steps", "3", &st), 0);
            assert_int_equal(xf_recipe_set(r, "rotate_windows", "2", &st), 0);
            assert_int_equal(xf_recipe_set(r, "rotate_batch", "2", &st), 0);
        }
        for (int k = 0; k < 3; k++) {
            snprintf(out[k], sizeof out[k], "%s/t%d-%d.xfq", tmp, pass, threads[k]);
            xf_run_opts run = {.threads = threads[k]};
            if (xf_quantize(model, r, out[k], &run, XF_FORMAT_TEXT, NULL, &st) != 0)
                fail_msg("%s", st.message);
        }
        if (!xf_test_files_equal(out[0], out[1]) || !xf_test_files_equal(out[0], out[2]))
            fail_msg("%s: the file depends on the thread count", pass_name[pass]);
    }
    xf_recipe_free(r);
    free(model);
    xf_test_rmtree(tmp);
    free(tmp);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_threads_restored_and_callbacks),
        cmocka_unit_test(test_errors_and_info),
        cmocka_unit_test(test_text_halves),
        cmocka_unit_test(test_progress_events),
        cmocka_unit_test(test_quantize_any_threads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
