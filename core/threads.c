#include "core/threads.h"

#include <omp.h>
#include <unistd.h>

/* Declared by OpenBLAS; not in the cblas.h of every BLAS, so declared here. */
void openblas_set_num_threads(int num_threads);
int openblas_get_num_threads(void);

int xf_threads_available(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}

void xf_threads_set(int n)
{
    if (n <= 0)
        n = xf_threads_available();
    omp_set_num_threads(n);
    openblas_set_num_threads(n);
}

int xf_threads_get(void) { return omp_get_max_threads(); }

void xf_threads_push(int n, xf_threads_saved *saved)
{
    saved->omp = omp_get_max_threads();
    saved->blas = openblas_get_num_threads();
    xf_threads_set(n);
}

void xf_threads_push_blas(int n, xf_threads_saved *saved)
{
    saved->omp = omp_get_max_threads();
    saved->blas = openblas_get_num_threads();
    openblas_set_num_threads(n > 0 ? n : xf_threads_available());
}

void xf_threads_pop(const xf_threads_saved *saved)
{
    omp_set_num_threads(saved->omp);
    openblas_set_num_threads(saved->blas);
}
