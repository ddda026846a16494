#include "pipeline/tensor_bits.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int xf_tensor_bits_rule_split(const char *rule, char *pattern, size_t cap, int *bits,
                              xf_error *err)
{
    const char *eq = strrchr(rule, '=');
    if (!eq || eq == rule)
        return xf_fail(err, "--tensor-bits '%s': expected REGEX=BITS", rule);
    const char *b = eq + 1;
    if (!((b[0] == '2' || b[0] == '3' || b[0] == '4' || b[0] == '8') && b[1] == '\0'))
        return xf_fail(err, "--tensor-bits '%s': bits must be 2, 3, 4 or 8, not '%s'", rule, b);
    size_t n = (size_t)(eq - rule);
    if (n + 1 > cap)
        return xf_fail(err, "--tensor-bits '%s': pattern too long", rule);
    memcpy(pattern, rule, n);
    pattern[n] = '\0';
    *bits = b[0] - '0';
    return 0;
}

int xf_tensor_bits_init(xf_tensor_bits *tb, const char *const *rules, size_t n, xf_error *err)
{
    memset(tb, 0, sizeof *tb);
    if (n > XF_TENSOR_BITS_MAX_RULES)
        return xf_fail(err, "--tensor-bits: at most %d rules, got %zu", XF_TENSOR_BITS_MAX_RULES, n);
    for (size_t i = 0; i < n; i++) {
        size_t len = strlen(rules[i]) + 1;
        char *pat = malloc(len);
        if (!pat) {
            xf_tensor_bits_free(tb);
            return xf_fail(err, "--tensor-bits: out of memory");
        }
        tb->pattern[i] = pat;
        tb->n = i + 1;
        if (xf_tensor_bits_rule_split(rules[i], pat, len, &tb->bits[i], err) != 0) {
            xf_tensor_bits_free(tb);
            return -1;
        }
        char what[64];
        snprintf(what, sizeof what, "--tensor-bits rule %zu", i + 1);
        tb->re[i] = xf_regex_compile(pat, strlen(pat), false, what, err);
        if (!tb->re[i]) {
            xf_tensor_bits_free(tb);
            return -1;
        }
    }
    return 0;
}

void xf_tensor_bits_free(xf_tensor_bits *tb)
{
    for (size_t i = 0; i < tb->n; i++) {
        free(tb->pattern[i]);
        if (tb->re[i])
            xf_regex_free(tb->re[i]);
    }
    memset(tb, 0, sizeof *tb);
}

int xf_tensor_bits_for(const xf_tensor_bits *tb, const char *name, int default_bits)
{
    for (size_t i = 0; i < tb->n; i++) {
        xf_spans sp = {0};
        xf_error e = {0};
        /* a match error (e.g. resource limits) counts as no match; names
         * are short ASCII, so it does not happen in practice */
        int rc = xf_regex_find_all(tb->re[i], name, strlen(name), &sp, "tensor name", &e);
        bool hit = rc == 0 && sp.n > 0;
        xf_spans_free(&sp);
        if (hit)
            return tb->bits[i];
    }
    return default_bits;
}

json_t *xf_tensor_bits_to_json(const xf_tensor_bits *tb)
{
    json_t *a = json_array();
    for (size_t i = 0; i < tb->n; i++)
        json_array_append_new(a, json_pack("{s:s, s:i}", "pattern", tb->pattern[i], "bits",
                                           tb->bits[i]));
    return a;
}
