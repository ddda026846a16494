/* Thread count for OpenMP loops and OpenBLAS. OpenMP (GCC's libgomp) is
 * xfquant's threading library: loop-parallel kernels need nothing more.
 * Results depend only on inputs and seed, not on the thread count: the
 * products that would otherwise take OpenBLAS's threading go through
 * core/gemm_tiled.h. */
#ifndef XF_CORE_THREADS_H
#define XF_CORE_THREADS_H

/* Number of online cores. */
int xf_threads_available(void);
/* Sets both OpenMP's and OpenBLAS's thread counts; n <= 0 means all cores. */
void xf_threads_set(int n);
int xf_threads_get(void);

/* The counts in force before xf_threads_push, put back by xf_threads_pop:
 * a library call changes them for its own duration only. */
typedef struct xf_threads_saved {
    int omp, blas;
} xf_threads_saved;

void xf_threads_push(int n, xf_threads_saved *saved);
/* OpenBLAS alone (the GPTQ sweep runs OpenMP threads that each call BLAS
 * and wants BLAS single-threaded meanwhile); xf_threads_pop restores it. */
void xf_threads_push_blas(int n, xf_threads_saved *saved);
void xf_threads_pop(const xf_threads_saved *saved);

#endif
