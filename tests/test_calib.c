/* Calibration readers and window sampling. The random-number vectors below
 * were printed by CPython 3.11 (`random.seed(s); random.randint(a, b)`), an
 * independent implementation of the generator the GPTQ reference uses. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <stdio.h>
#include <sys/stat.h>

#include <cmocka.h>

#include "calib/calib_text.h"
#include "calib/pyrandom.h"
#include "calib/sampling.h"
#include "tests/support/test_util.h"

static void test_pyrandom_matches_cpython(void **state)
{
    (void)state;
    xf_pyrandom r;
    xf_pyrandom_seed(&r, 0);
    const int64_t a[5] = {864, 394, 776, 911, 430}; /* randint(0, 1000) x5 */
    for (int i = 0; i < 5; i++)
        assert_int_equal(xf_pyrandom_randint(&r, 0, 1000), a[i]);
    xf_pyrandom_seed(&r, 0);
    const int64_t b[5] = {100989, 110250, 10612, 67873, 134027}; /* randint(0, 172000) */
    for (int i = 0; i < 5; i++)
        assert_int_equal(xf_pyrandom_randint(&r, 0, 172000), b[i]);
    xf_pyrandom_seed(&r, 12345);
    const int64_t c[3] = {1789368711, 43676229, 1282648386}; /* randint(0, 2**31) */
    for (int i = 0; i < 3; i++)
        assert_int_equal(xf_pyrandom_randint(&r, 0, (int64_t)1 << 31), c[i]);
    xf_pyrandom_seed(&r, 0);
    const uint32_t d[3] = {3626764237u, 1654615998u, 3255389356u}; /* getrandbits(32) */
    for (int i = 0; i < 3; i++)
        assert_int_equal(xf_pyrandom_getrandbits(&r, 32), d[i]);
}

static void test_sampling_windows(void **state)
{
    (void)state;
    int64_t n = 1001;
    int32_t *stream = malloc((size_t)n * sizeof *stream);
    for (int64_t i = 0; i < n; i++)
        stream[i] = (int32_t)i;
    xf_calib_set cs;
    xf_error err = {0};
    /* every window is a verbatim copy of the stream at its start */
    assert_int_equal(xf_calib_set_sample(&cs, stream, n, 5, 1, 0, &err), 0);
    for (int s = 0; s < 5; s++)
        assert_int_equal(cs.tokens[s], stream[cs.starts[s]]);
    xf_calib_set_free(&cs);
    /* n - seqlen - 1 == 1000 reproduces CPython's randint(0, 1000) starts */
    int64_t n2 = 1011;
    int32_t *s2 = malloc((size_t)n2 * sizeof *s2);
    for (int64_t i = 0; i < n2; i++)
        s2[i] = (int32_t)(i * 3);
    assert_int_equal(xf_calib_set_sample(&cs, s2, n2, 5, 10, 0, &err), 0);
    const int64_t a[5] = {864, 394, 776, 911, 430};
    for (int s = 0; s < 5; s++) {
        assert_int_equal(cs.starts[s], a[s]);
        for (int t = 0; t < 10; t++)
            assert_int_equal(cs.tokens[s * 10 + t], s2[a[s] + t]);
    }
    assert_int_equal(cs.tokens_available, n2);
    xf_calib_set_free(&cs);
    /* too short: exactly seqlen tokens is not enough */
    assert_int_equal(xf_calib_set_sample(&cs, s2, 10, 1, 10, 0, &err), -1);
    assert_non_null(strstr(err.msg, "10 tokens"));
    free(stream);
    free(s2);
}

static void test_readers(void **state)
{
    (void)state;
    char *dir = xf_test_tmpdir();
    assert_non_null(dir);
    xf_error err = {0};
    xf_calib_text ct;

    const char plain[] = "Once upon a time.\r\nThe end.";
    char *p = xf_test_write_file(dir, "plain.txt", plain, sizeof plain - 1);
    assert_int_equal(xf_calib_text_read(&ct, p, XF_CALIB_AUTO, NULL, &err), 0);
    assert_int_equal(ct.format, XF_CALIB_TEXT);
    /* read like Python's text mode: CRLF -> LF */
    assert_string_equal(ct.text, "Once upon a time.\nThe end.");
    assert_int_equal(ct.len, sizeof plain - 2);
    xf_calib_text_free(&ct);
    free(p);

    const char jl[] = "{\"text\": \"first doc\"}\n\n{\"text\": \"\", \"id\": 2}\r\n"
                      "{\"text\": \"second \\u00e9\", \"body\": \"x\"}\n";
    p = xf_test_write_file(dir, "c.jsonl", jl, sizeof jl - 1);
    assert_int_equal(xf_calib_text_read(&ct, p, XF_CALIB_AUTO, NULL, &err), 0);
    assert_int_equal(ct.format, XF_CALIB_JSONL);
    assert_string_equal(ct.text, "first doc\n\nsecond \xc3\xa9");
    assert_int_equal(ct.n_documents, 2);
    assert_int_equal(ct.n_skipped, 1);
    xf_calib_text_free(&ct);
    /* another field: only the last record has "body" */
    assert_int_equal(xf_calib_text_read(&ct, p, XF_CALIB_JSONL, "body", &err), -1);
    assert_non_null(strstr(err.msg, "line 1"));
    free(p);

    const char bad[] = "{\"text\": \"ok\"}\n{not json}\n";
    p = xf_test_write_file(dir, "bad.jsonl", bad, sizeof bad - 1);
    assert_int_equal(xf_calib_text_read(&ct, p, XF_CALIB_AUTO, NULL, &err), -1);
    assert_non_null(strstr(err.msg, "line 2"));
    free(p);

    p = xf_test_write_file(dir, "empty.txt", "", 0);
    assert_int_equal(xf_calib_text_read(&ct, p, XF_CALIB_TEXT, NULL, &err), -1);
    assert_non_null(strstr(err.msg, "empty"));
    free(p);

    char sub[4096];
    snprintf(sub, sizeof sub, "%s/docs", dir);
    assert_int_equal(mkdir(sub, 0700), 0);
    assert_int_equal(xf_calib_text_read(&ct, sub, XF_CALIB_AUTO, NULL, &err), -1);
    assert_non_null(strstr(err.msg, "no .txt"));
    free(xf_test_write_file(sub, "b.txt", "bee", 3));
    free(xf_test_write_file(sub, "a.txt", "ay", 2));
    free(xf_test_write_file(sub, "skip.md", "no", 2));
    assert_int_equal(xf_calib_text_read(&ct, sub, XF_CALIB_AUTO, NULL, &err), 0);
    assert_int_equal(ct.format, XF_CALIB_DIR);
    assert_string_equal(ct.text, "ay\n\nbee");
    xf_calib_text_free(&ct);

    assert_int_equal(xf_calib_text_read(&ct, "/nonexistent/calib.txt", XF_CALIB_AUTO, NULL, &err), -1);
    assert_non_null(strstr(err.msg, "/nonexistent/calib.txt"));
    xf_test_rmtree(dir);
    free(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pyrandom_matches_cpython),
        cmocka_unit_test(test_sampling_windows),
        cmocka_unit_test(test_readers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
