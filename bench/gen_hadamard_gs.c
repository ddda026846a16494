/* Generator (run by hand, not by the build or the tests) of the
 * Goethals-Seidel circulant rows stored in sim/hadamard_orders.c.
 *
 * Usage: gen_hadamard_gs t g1 [g2 ...]
 * Searches four +-1 sequences a, b, c, d of length t with
 *     PAF_a(s) + PAF_b(s) + PAF_c(s) + PAF_d(s) = 0 for s = 1 .. t-1
 * (PAF = periodic autocorrelation), which makes the circulants satisfy
 * A A^T + B B^T + C C^T + D D^T = 4t I, the input of the Goethals-Seidel
 * array (Hadamard matrix of order 4t). The search is restricted to
 * sequences constant on the orbits of the multiplier group H = <g1, g2, ...>
 * (units mod t) acting on Z_t; their autocorrelations are H-invariant too,
 * so one shift per nonzero orbit is checked. Pruning:
 *   - a[0] = +1 (negating a sequence keeps its PAF);
 *   - power spectral density |DFT_x(k)|^2 <= 4t for every k, also for the
 *     sum over a pair;
 *   - row sums: sum_a^2 + sum_b^2 + sum_c^2 + sum_d^2 = 4t.
 * Pairs (a, b) are stored with a hash of PAF_a + PAF_b at the orbit shifts,
 * pairs (c, d) look up the negated sum (meet in the middle). A hit is
 * re-checked on every shift before it is printed (four rows of '+'/'-').
 * Found for xfquant: `43 37` (H of order 6, contains -1, so the sequences
 * are symmetric: Williamson sequences) and `39 16` (H = {1, 16, 22});
 * each run takes well under a second. Exit 0 found, 2 none, 1 bad usage. */
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_T 256
#define MAX_ORBITS 31

typedef struct cand {
    int sum;
    int paf[MAX_ORBITS];
    double psd[MAX_T];
    int8_t a[MAX_T];
} cand;

typedef struct pair_ent {
    uint64_t hash;
    int i, j;
} pair_ent;

static int cmp_ent(const void *x, const void *y)
{
    uint64_t a = ((const pair_ent *)x)->hash, b = ((const pair_ent *)y)->hash;
    return a < b ? -1 : a > b;
}

static uint64_t hash_vec(const int *v, int n, int sign)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a over the values */
    for (int i = 0; i < n; i++) {
        h ^= (uint64_t)(int64_t)(sign * v[i]) + 0x9e37u;
        h *= 1099511628211ull;
    }
    return h;
}

static bool psd_pair_ok(const cand *x, const cand *y, int t)
{
    for (int k = 1; k < t; k++)
        if (x->psd[k] + y->psd[k] > 4.0 * t + 1e-6)
            return false;
    return true;
}

static int full_check(const cand *const q[4], int t)
{
    for (int sh = 1; sh < t; sh++) {
        int v = 0;
        for (int z = 0; z < 4; z++)
            for (int x = 0; x < t; x++)
                v += q[z]->a[x] * q[z]->a[(x + sh) % t];
        if (v)
            return 0;
    }
    return 1;
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: gen_hadamard_gs t g1 [g2 ...]\n");
        return 1;
    }
    int t = atoi(argv[1]), ng = argc - 2, gens[16];
    if (t < 3 || t > MAX_T || t % 2 == 0 || ng > 16) {
        fprintf(stderr, "gen_hadamard_gs: t must be odd in [3, %d], at most 16 generators\n", MAX_T);
        return 1;
    }
    for (int i = 0; i < ng; i++)
        gens[i] = atoi(argv[2 + i]);
    /* orbits of Z_t under H */
    int orbit_of[MAX_T], rep[MAX_T], r = 0;
    for (int i = 0; i < t; i++)
        orbit_of[i] = -1;
    for (int x = 0; x < t; x++) {
        if (orbit_of[x] >= 0)
            continue;
        int stack[MAX_T], sp = 0;
        stack[sp++] = x;
        orbit_of[x] = r;
        while (sp) {
            int y = stack[--sp];
            for (int g = 0; g < ng; g++) {
                int z = (int)((long)y * gens[g] % t);
                if (orbit_of[z] < 0) {
                    orbit_of[z] = r;
                    stack[sp++] = z;
                }
            }
        }
        rep[r++] = x;
    }
    fprintf(stderr, "t=%d: %d orbits\n", t, r);
    if (r - 1 > MAX_ORBITS - 1 || r - 1 > 24) {
        fprintf(stderr, "gen_hadamard_gs: too many orbits, use a larger multiplier group\n");
        return 1;
    }
    const int lim = 4 * t;
    long total = 1L << (r - 1);
    cand *S = malloc(sizeof(cand) * (size_t)total);
    if (!S)
        return 1;
    int ns = 0;
    for (long mask = 0; mask < total; mask++) {
        cand c;
        c.sum = 0;
        for (int i = 0; i < t; i++) {
            int o = orbit_of[i];
            c.a[i] = (int8_t)((o == 0 || !((mask >> (o - 1)) & 1)) ? 1 : -1);
            c.sum += c.a[i];
        }
        if (c.sum * c.sum > lim)
            continue;
        bool ok = true;
        for (int k = 1; k < t && ok; k++) {
            double re = 0, im = 0;
            for (int i = 0; i < t; i++) {
                re += c.a[i] * cos(2 * M_PI * i * k / t);
                im += c.a[i] * sin(2 * M_PI * i * k / t);
            }
            c.psd[k] = re * re + im * im;
            ok = c.psd[k] <= lim + 1e-6;
        }
        if (!ok)
            continue;
        for (int o = 1; o < r; o++) {
            int v = 0;
            for (int i = 0; i < t; i++)
                v += c.a[i] * c.a[(i + rep[o]) % t];
            c.paf[o - 1] = v;
        }
        S[ns++] = c;
    }
    fprintf(stderr, "%d of %ld candidates pass the PSD bound\n", ns, total);
    for (int s1 = 1; s1 * s1 <= lim; s1 += 2)
        for (int s2 = s1; s1 * s1 + s2 * s2 <= lim; s2 += 2)
            for (int s3 = s2; s1 * s1 + s2 * s2 + s3 * s3 <= lim; s3 += 2) {
                int rem = lim - s1 * s1 - s2 * s2 - s3 * s3, s4 = (int)lround(sqrt(rem));
                if (s4 * s4 != rem || s4 < s3)
                    continue;
                long cap = 1024, ne = 0;
                pair_ent *E = malloc(sizeof(pair_ent) * (size_t)cap);
                for (int i = 0; E && i < ns; i++)
                    for (int j = 0; E && j < ns; j++) {
                        if (abs(S[i].sum) != s1 || abs(S[j].sum) != s2 || !psd_pair_ok(&S[i], &S[j], t))
                            continue;
                        int v[MAX_ORBITS];
                        for (int q = 0; q < r - 1; q++)
                            v[q] = S[i].paf[q] + S[j].paf[q];
                        if (ne == cap) {
                            cap *= 2;
                            pair_ent *bigger = realloc(E, sizeof(pair_ent) * (size_t)cap);
                            if (!bigger) {
                                free(E);
                                E = NULL;
                                break;
                            }
                            E = bigger;
                        }
                        E[ne++] = (pair_ent){hash_vec(v, r - 1, 1), i, j};
                    }
                if (!E) {
                    fprintf(stderr, "gen_hadamard_gs: out of memory\n");
                    return 1;
                }
                qsort(E, (size_t)ne, sizeof(pair_ent), cmp_ent);
                fprintf(stderr, "row sums %d %d %d %d: %ld (a, b) pairs\n", s1, s2, s3, s4, ne);
                for (int i = 0; i < ns; i++)
                    for (int j = 0; j < ns; j++) {
                        if (abs(S[i].sum) != s3 || abs(S[j].sum) != s4 || !psd_pair_ok(&S[i], &S[j], t))
                            continue;
                        int v[MAX_ORBITS];
                        for (int q = 0; q < r - 1; q++)
                            v[q] = S[i].paf[q] + S[j].paf[q];
                        uint64_t h = hash_vec(v, r - 1, -1);
                        long lo = 0, hi = ne;
                        while (lo < hi) {
                            long mid = (lo + hi) / 2;
                            if (E[mid].hash < h)
                                lo = mid + 1;
                            else
                                hi = mid;
                        }
                        for (; lo < ne && E[lo].hash == h; lo++) {
                            const cand *q4[4] = {&S[E[lo].i], &S[E[lo].j], &S[i], &S[j]};
                            if (!full_check(q4, t))
                                continue; /* hash collision */
                            for (int z = 0; z < 4; z++) {
                                for (int x = 0; x < t; x++)
                                    putchar(q4[z]->a[x] > 0 ? '+' : '-');
                                putchar('\n');
                            }
                            free(E);
                            free(S);
                            return 0;
                        }
                    }
                free(E);
            }
    fprintf(stderr, "no solution in this orbit structure\n");
    free(S);
    return 2;
}
