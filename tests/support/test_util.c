#include "tests/support/test_util.h"

#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/read_file.h"

const char *xf_test_shared(const char *rel)
{
    static char buf[4096];
    snprintf(buf, sizeof buf, "../shared/%s", rel);
    struct stat st;
    if (stat(buf, &st) != 0)
        return NULL;
    return buf;
}

char *xf_test_tmpdir(void)
{
    const char *base = getenv("TMPDIR");
    if (!base || !*base)
        base = "/tmp";
    char *p = malloc(strlen(base) + 32);
    if (!p)
        return NULL;
    sprintf(p, "%s/xfq-test-XXXXXX", base);
    if (!mkdtemp(p)) {
        free(p);
        return NULL;
    }
    return p;
}

void xf_test_rmtree(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        struct stat st;
        if (lstat(path, &st) == 0 && S_ISDIR(st.st_mode))
            xf_test_rmtree(path);
        else
            unlink(path);
    }
    closedir(d);
    rmdir(dir);
}

int xf_test_tmpdir_setup(char **dir)
{
    *dir = xf_test_tmpdir();
    return *dir ? 0 : -1;
}

int xf_test_tmpdir_teardown(char **dir)
{
    if (*dir)
        xf_test_rmtree(*dir);
    free(*dir);
    *dir = NULL;
    return 0;
}

int xf_test_dir_entries(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
            n++;
    closedir(d);
    return n;
}

char *xf_test_write_file(const char *dir, const char *name, const void *data, size_t n)
{
    char *path = malloc(strlen(dir) + strlen(name) + 2);
    if (!path)
        return NULL;
    sprintf(path, "%s/%s", dir, name);
    FILE *fp = fopen(path, "wb");
    if (!fp) {
        free(path);
        return NULL;
    }
    if (n && fwrite(data, 1, n, fp) != n) {
        fclose(fp);
        free(path);
        return NULL;
    }
    fclose(fp);
    return path;
}

uint64_t xf_test_rand_u64(uint64_t *state)
{
    uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

float xf_test_rand_uniform(uint64_t *state)
{
    return (float)((xf_test_rand_u64(state) >> 40) * (1.0 / 16777216.0));
}

float xf_test_rand_normal(uint64_t *state)
{
    double u1 = ((xf_test_rand_u64(state) >> 11) + 1.0) * (1.0 / 9007199254740993.0);
    double u2 = (xf_test_rand_u64(state) >> 11) * (1.0 / 9007199254740992.0);
    return (float)(sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));
}

int32_t *xf_test_random_tokens(int64_t n, int64_t vocab, uint64_t seed)
{
    int32_t *t = malloc((size_t)(n > 0 ? n : 1) * sizeof *t);
    if (!t)
        abort(); /* a test cannot go on without it */
    for (int64_t i = 0; i < n; i++)
        t[i] = (int32_t)(xf_test_rand_u64(&seed) % (uint64_t)vocab);
    return t;
}

double xf_test_rel_diff(const float *a, const float *ref, int64_t n)
{
    double md = 0, mr = 0;
    for (int64_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - ref[i]), r = fabs((double)ref[i]);
        if (!(d <= md)) /* NaN propagates */
            md = d;
        if (r > mr)
            mr = r;
    }
    return mr > 0 ? md / mr : md;
}

bool xf_test_files_equal(const char *a, const char *b)
{
    char *x, *y;
    size_t nx, ny;
    if (xf_read_file(a, &x, &nx, NULL) != 0)
        return false;
    if (xf_read_file(b, &y, &ny, NULL) != 0) {
        free(x);
        return false;
    }
    bool eq = nx == ny && memcmp(x, y, nx) == 0;
    free(x);
    free(y);
    return eq;
}

float *xf_test_correlated_inputs(int N, int d, uint64_t seed)
{
    uint64_t rng = seed;
    float *M = malloc(sizeof(float) * d * d), *Z = malloc(sizeof(float) * N * d);
    float *X = calloc((size_t)N * d, sizeof(float));
    for (int i = 0; i < d * d; i++)
        M[i] = xf_test_rand_normal(&rng) / sqrtf((float)d) + ((i / d == i % d) ? 0.5f : 0.0f);
    for (int i = 0; i < N * d; i++)
        Z[i] = xf_test_rand_normal(&rng);
    float *s = malloc(sizeof(float) * d);
    for (int j = 0; j < d; j++)
        s[j] = expf(0.7f * xf_test_rand_normal(&rng));
    for (int r = 0; r < N; r++)
        for (int k = 0; k < d; k++)
            for (int j = 0; j < d; j++)
                X[r * d + j] += Z[r * d + k] * M[k * d + j];
    for (int r = 0; r < N; r++)
        for (int j = 0; j < d; j++)
            X[r * d + j] *= s[j];
    free(M);
    free(Z);
    free(s);
    return X;
}

double *xf_test_hessian(const float *X, int N, int d)
{
    double *H = calloc((size_t)d * d, sizeof(double));
    for (int r = 0; r < N; r++)
        for (int i = 0; i < d; i++)
            for (int j = 0; j < d; j++)
                H[i * d + j] += (double)X[r * d + i] * X[r * d + j];
    for (int i = 0; i < d * d; i++)
        H[i] *= 2.0 / N;
    return H;
}

float *xf_test_copy_f32(const float *x, size_t n)
{
    float *y = malloc((n ? n : 1) * sizeof *y);
    if (!y)
        abort();
    memcpy(y, x, n * sizeof *y);
    return y;
}
