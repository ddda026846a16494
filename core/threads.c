#include "core/threads.h"

#include <omp.h>
#include <unistd.h>

/* Declared by OpenBLAS; not in the cblas.h of every BLAS, so declared here. */
void openblas_set_num_threads(int num_threads);

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
