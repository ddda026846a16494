/* GF(p^k) arithmetic for the Paley constructions. Sizes are small (q is
 * at most XF_HADAMARD_MAX_BASE), so clarity beats speed: polynomials are
 * digit arrays, an irreducible modulus is found by trial division. */
#include "sim/hadamard_gf.h"

#include <stdlib.h>
#include <string.h>

/* Degree of a field element polynomial is < k <= XF_GF_MAX_K. 2^11 > 1024
 * bounds k for q <= 1024 and still leaves room for larger q. */
#define XF_GF_MAX_K 32

bool xf_gf_prime_power(int64_t q, int64_t *p, int *k)
{
    if (q < 2)
        return false;
    int64_t f = 0;
    for (int64_t d = 2; d * d <= q; d++)
        if (q % d == 0) {
            f = d;
            break;
        }
    if (f == 0)
        f = q; /* q is prime */
    int e = 0;
    while (q % f == 0) {
        q /= f;
        e++;
    }
    if (q != 1)
        return false;
    if (p)
        *p = f;
    if (k)
        *k = e;
    return true;
}

int64_t xf_gf_sub(int64_t a, int64_t b, int64_t p)
{
    int64_t r = 0, w = 1;
    while (a > 0 || b > 0) {
        int64_t d = (a % p - b % p + p) % p;
        r += d * w;
        w *= p;
        a /= p;
        b /= p;
    }
    return r;
}

static void digits(int64_t a, int64_t p, int k, int64_t *d)
{
    for (int i = 0; i < k; i++) {
        d[i] = a % p;
        a /= p;
    }
}

/* Remainder of the polynomial num (degree < nlen) modulo the monic
 * polynomial den (degree dk, den[dk] = 1), in place in num. */
static void poly_mod(int64_t *num, int nlen, const int64_t *den, int dk, int64_t p)
{
    for (int i = nlen - 1; i >= dk; i--) {
        int64_t c = num[i] % p;
        if (c == 0)
            continue;
        for (int j = 0; j <= dk; j++)
            num[i - dk + j] = ((num[i - dk + j] - c * den[j]) % p + p) % p;
    }
}

/* f = x^k + sum_{i<k} c_i x^i with c_i the digits of code. Irreducible iff
 * no monic polynomial of degree 1..k/2 divides it. */
static bool irreducible(int64_t code, int64_t p, int k)
{
    int64_t f[XF_GF_MAX_K + 1];
    digits(code, p, k, f);
    f[k] = 1;
    for (int d = 1; d <= k / 2; d++) {
        int64_t count = 1;
        for (int i = 0; i < d; i++)
            count *= p;
        for (int64_t g = 0; g < count; g++) {
            int64_t den[XF_GF_MAX_K + 1], rem[XF_GF_MAX_K + 1];
            digits(g, p, d, den);
            den[d] = 1;
            memcpy(rem, f, sizeof(int64_t) * (size_t)(k + 1));
            poly_mod(rem, k + 1, den, d, p);
            bool zero = true;
            for (int i = 0; i < d; i++)
                zero = zero && rem[i] == 0;
            if (zero)
                return false;
        }
    }
    return true;
}

/* a * a modulo f (digits in, digits out). */
static int64_t square_mod(int64_t a, const int64_t *f, int64_t p, int k)
{
    int64_t d[XF_GF_MAX_K], prod[2 * XF_GF_MAX_K] = {0};
    digits(a, p, k, d);
    for (int i = 0; i < k; i++)
        for (int j = 0; j < k; j++)
            prod[i + j] = (prod[i + j] + d[i] * d[j]) % p;
    poly_mod(prod, 2 * k - 1, f, k, p);
    int64_t r = 0;
    for (int i = k - 1; i >= 0; i--)
        r = r * p + prod[i];
    return r;
}

int xf_gf_quadratic_character(int64_t q, int8_t *chi, xf_error *err)
{
    int64_t p;
    int k;
    if (!xf_gf_prime_power(q, &p, &k))
        return xf_fail(err, "GF(%lld): %lld is not a prime power", (long long)q, (long long)q);
    if (k > XF_GF_MAX_K)
        return xf_fail(err, "GF(%lld): extension degree %d too large", (long long)q, k);
    /* monic irreducible f of degree k; for k = 1, f = x works */
    int64_t code = -1;
    for (int64_t c = 0; c < q && code < 0; c++)
        if (irreducible(c, p, k))
            code = c;
    if (code < 0) /* cannot happen: irreducibles of every degree exist */
        return xf_fail(err, "GF(%lld): no irreducible polynomial of degree %d found", (long long)q, k);
    int64_t f[XF_GF_MAX_K + 1];
    digits(code, p, k, f);
    f[k] = 1;
    memset(chi, -1, (size_t)q);
    chi[0] = 0;
    int64_t squares = 0;
    for (int64_t a = 1; a < q; a++) {
        int64_t s = square_mod(a, f, p, k);
        if (chi[s] != 1) {
            chi[s] = 1;
            squares++;
        }
    }
    /* In a field of odd order exactly half the nonzero elements are squares
     * (for p = 2 every element is). Anything else means the arithmetic is
     * wrong; refuse rather than build a wrong matrix. */
    int64_t want = p == 2 ? q - 1 : (q - 1) / 2;
    if (squares != want || chi[0] != 0)
        return xf_fail(err, "GF(%lld): %lld nonzero squares, expected %lld (internal error)",
                       (long long)q, (long long)squares, (long long)want);
    return 0;
}
