/* Helpers shared by the cmocka tests. */
#ifndef XF_TEST_UTIL_H
#define XF_TEST_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* "../shared" relative to the repository root (tests run there). Returns
 * the joined path (static buffer, valid until the next call) or NULL when
 * shared/ is absent; then the caller skips with xf_test_skip_reason. */
const char *xf_test_shared(const char *rel);
/* Prints "SKIP: <why>" and calls cmocka's skip(). */
#define XF_TEST_REQUIRE_SHARED(path_var, rel)                                   \
    const char *path_var = xf_test_shared(rel);                                 \
    do {                                                                        \
        if (!path_var) {                                                        \
            print_message("SKIP: ../shared/%s not found (shared material absent)\n", rel); \
            skip();                                                             \
        }                                                                       \
    } while (0)

/* A fresh empty temporary directory (mkdtemp); caller removes it with
 * xf_test_rmtree. */
char *xf_test_tmpdir(void);
void xf_test_rmtree(const char *dir);
/* The temp-dir fixture of a test group, for its setup and teardown:
 * *dir = a fresh directory (-1 when none could be made); then removed with
 * everything in it, freed and set to NULL. */
int xf_test_tmpdir_setup(char **dir);
int xf_test_tmpdir_teardown(char **dir);
/* Entries of a directory other than "." and ".." (-1 if it cannot be
 * opened): how tests check that a failed write left nothing behind. */
int xf_test_dir_entries(const char *dir);
/* Writes bytes to dir/name; returns malloc'd full path. */
char *xf_test_write_file(const char *dir, const char *name, const void *data, size_t n);
/* Deterministic pseudo-random numbers for tests (splitmix64). */
uint64_t xf_test_rand_u64(uint64_t *state);
float xf_test_rand_normal(uint64_t *state);
float xf_test_rand_uniform(uint64_t *state); /* [0, 1) */
/* n token ids uniform in [0, vocab) from seed (malloc'd; asserts). */
int32_t *xf_test_random_tokens(int64_t n, int64_t vocab, uint64_t seed);
/* max |a - ref| / max |ref| in fp64 (max |a - ref| when ref is all 0); a NaN
 * difference gives NaN, so a tolerance check fails. */
double xf_test_rel_diff(const float *a, const float *ref, int64_t n);
/* X [N, d] with correlated columns (random mixing) of unequal scales: GPTQ
 * test inputs. malloc'd. */
float *xf_test_correlated_inputs(int N, int d, uint64_t seed);
/* H = 2/N X^T X in fp64 (malloc'd): the reference Hessian. */
double *xf_test_hessian(const float *X, int N, int d);
/* A malloc'd copy of x[0..n). */
float *xf_test_copy_f32(const float *x, size_t n);
/* True when both files can be read and hold the same bytes. */
bool xf_test_files_equal(const char *a, const char *b);

#endif
