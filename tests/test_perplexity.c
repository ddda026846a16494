/* Evaluator logic with synthetic "models" whose perplexity is known in
 * closed form: window plans of both protocols, NLL/KL arithmetic. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <math.h>
#include <string.h>
#include <stdlib.h>

#include <cmocka.h>

#include "eval/nll.h"
#include "eval/perplexity.h"
#include "eval/windows.h"

/* Uniform logits: every prediction has NLL log(V), PPL = V exactly. */
static int uniform_logits(void *user, const int32_t *tokens, int64_t T, float *logits,
                          xf_error *err)
{
    (void)tokens;
    (void)err;
    int64_t V = *(int64_t *)user;
    for (int64_t i = 0; i < T * V; i++)
        logits[i] = 0.25f;
    return 0;
}

/* Predicts the next token with probability p = e^a/(e^a + V-1) when the
 * next token is (current+1) mod V: the text below follows that rule, so
 * NLL = log(e^a + V - 1) - a at every position. */
typedef struct {
    int64_t V;
    float a;
    int64_t calls;
    int32_t first_seen[64];
} succ_model;

static int successor_logits(void *user, const int32_t *tokens, int64_t T, float *logits,
                            xf_error *err)
{
    (void)err;
    succ_model *m = user;
    if (m->calls < 64)
        m->first_seen[m->calls] = tokens[0];
    m->calls++;
    for (int64_t t = 0; t < T; t++)
        for (int64_t v = 0; v < m->V; v++)
            logits[t * m->V + v] = v == (tokens[t] + 1) % m->V ? m->a : 0.0f;
    return 0;
}

static void test_uniform_ppl_is_vocab(void **state)
{
    (void)state;
    int64_t V = 37, n = 1000;
    int32_t *tok = calloc((size_t)n, sizeof *tok);
    for (int64_t i = 0; i < n; i++)
        tok[i] = (int32_t)(i * 7 % V);
    xf_scorer s = {.fn = uniform_logits, .user = &V, .vocab = V};
    xf_window_plan plan;
    xf_error err = {0};
    assert_int_equal(xf_window_plan_make(&plan, XF_PROTOCOL_GPTQ, 128, n, 0, -1, &err), 0);
    assert_int_equal(plan.n_windows, 7); /* 1000 // 128, tail dropped */
    xf_ppl_result r;
    assert_int_equal(xf_perplexity_run(&s, tok, n, &plan, &r, &err), 0);
    assert_true(fabs(r.ppl - 37.0) < 1e-9);
    assert_int_equal(r.n_scored, 7 * 127);
    assert_int_equal(r.n_tokens, 1000);
    free(tok);
}

static void test_successor_model_closed_form(void **state)
{
    (void)state;
    int64_t V = 11, n = 300;
    int32_t *tok = malloc((size_t)n * sizeof *tok);
    for (int64_t i = 0; i < n; i++)
        tok[i] = (int32_t)(i % V);
    succ_model m = {.V = V, .a = 2.0f};
    xf_scorer s = {.fn = successor_logits, .user = &m, .vocab = V};
    xf_window_plan plan;
    xf_error err = {0};
    assert_int_equal(xf_window_plan_make(&plan, XF_PROTOCOL_GPTQ, 50, n, 4, -1, &err), 0);
    assert_int_equal(plan.n_windows, 4); /* capped by max_windows */
    xf_ppl_result r;
    assert_int_equal(xf_perplexity_run(&s, tok, n, &plan, &r, &err), 0);
    double expect = exp(log(exp(2.0) + (double)(V - 1)) - 2.0);
    assert_true(fabs(r.ppl - expect) < 1e-6);
    assert_true(r.ppl_stderr < 1e-6); /* every prediction has the same NLL */
    free(tok);
}

/* llama.cpp protocol: the first token of every chunk becomes BOS and only
 * the second half is scored. With BOS = V-1 chosen so that BOS's successor
 * is 0 ... the scored half never touches position 0, so PPL equals the
 * closed form, and the model saw BOS first in every chunk. */
static void test_llamacpp_protocol(void **state)
{
    (void)state;
    int64_t V = 11, n = 260;
    int32_t *tok = malloc((size_t)n * sizeof *tok);
    for (int64_t i = 0; i < n; i++)
        tok[i] = (int32_t)(i % V);
    succ_model m = {.V = V, .a = 1.5f};
    xf_scorer s = {.fn = successor_logits, .user = &m, .vocab = V};
    xf_window_plan plan;
    xf_error err = {0};
    assert_int_equal(xf_window_plan_make(&plan, XF_PROTOCOL_LLAMACPP, 64, n, 0, 7, &err), 0);
    assert_int_equal(plan.n_windows, 4);
    assert_int_equal(plan.first_scored, 32);
    assert_int_equal(xf_window_scored(&plan), 31);
    xf_ppl_result r;
    assert_int_equal(xf_perplexity_run(&s, tok, n, &plan, &r, &err), 0);
    for (int i = 0; i < 4; i++)
        assert_int_equal(m.first_seen[i], 7);
    double expect = exp(log(exp(1.5) + (double)(V - 1)) - 1.5);
    assert_true(fabs(r.ppl - expect) < 1e-6);
    assert_int_equal(r.n_scored, 4 * 31);
    free(tok);
}

static void test_too_few_tokens(void **state)
{
    (void)state;
    xf_window_plan plan;
    xf_error err = {0};
    assert_int_equal(xf_window_plan_make(&plan, XF_PROTOCOL_GPTQ, 512, 100, 0, -1, &err), -1);
    assert_non_null(strstr(err.msg, "100 tokens"));
    assert_int_equal(xf_window_plan_make(&plan, XF_PROTOCOL_GPTQ, 1, 100, 0, -1, &err), -1);
}

static void test_kl_rows(void **state)
{
    (void)state;
    float a[4] = {1.0f, 2.0f, 0.5f, -1.0f};
    xf_kl_row r = xf_kl_row_compute(a, a, 4, 2);
    assert_true(r.kl == 0.0);
    assert_true(r.same_top1);
    assert_true(fabs(r.nll_base - xf_nll_row(a, 4, 2)) < 1e-15);
    /* hand formula: P = softmax(a), Q = softmax(b) */
    float b[4] = {0.0f, 0.0f, 3.0f, 0.0f};
    r = xf_kl_row_compute(a, b, 4, 1);
    double za = 0, zb = 0, kl = 0;
    for (int i = 0; i < 4; i++) {
        za += exp(a[i]);
        zb += exp(b[i]);
    }
    for (int i = 0; i < 4; i++) {
        double p = exp(a[i]) / za, q = exp(b[i]) / zb;
        kl += p * log(p / q);
    }
    assert_true(fabs(r.kl - kl) < 1e-12);
    assert_false(r.same_top1);
    /* large logits must not overflow */
    float c[3] = {1000.0f, 999.0f, -1000.0f};
    double nll = xf_nll_row(c, 3, 1);
    assert_true(fabs(nll - (log(1.0 + exp(1.0)))) < 1e-9);
}

static void test_kld_self_is_zero(void **state)
{
    (void)state;
    int64_t V = 11, n = 200;
    int32_t *tok = malloc((size_t)n * sizeof *tok);
    for (int64_t i = 0; i < n; i++)
        tok[i] = (int32_t)((i * 5) % V);
    succ_model m1 = {.V = V, .a = 2.0f}, m2 = {.V = V, .a = 2.0f}, m3 = {.V = V, .a = 0.5f};
    xf_scorer s1 = {.fn = successor_logits, .user = &m1, .vocab = V},
              s2 = {.fn = successor_logits, .user = &m2, .vocab = V},
              s3 = {.fn = successor_logits, .user = &m3, .vocab = V};
    xf_window_plan plan;
    xf_error err = {0};
    assert_int_equal(xf_window_plan_make(&plan, XF_PROTOCOL_GPTQ, 40, n, 0, -1, &err), 0);
    xf_kld_result r;
    assert_int_equal(xf_kld_run(&s1, &s2, tok, n, &plan, &r, &err), 0);
    assert_true(r.kl_mean == 0.0 && r.kl_max == 0.0);
    assert_true(r.same_top1 == 1.0);
    assert_true(r.base.ppl == r.model.ppl);
    assert_int_equal(xf_kld_run(&s1, &s3, tok, n, &plan, &r, &err), 0);
    assert_true(r.kl_mean > 0.0);
    assert_true(r.kl_median <= r.kl_p99 && r.kl_p99 <= r.kl_p999 && r.kl_p999 <= r.kl_max);
    assert_true(r.model.ppl > r.base.ppl || r.model.ppl < r.base.ppl);
    free(tok);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_uniform_ppl_is_vocab),
        cmocka_unit_test(test_successor_model_closed_form),
        cmocka_unit_test(test_llamacpp_protocol),
        cmocka_unit_test(test_too_few_tokens),
        cmocka_unit_test(test_kl_rows),
        cmocka_unit_test(test_kld_self_is_zero),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
