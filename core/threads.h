/* Thread count for OpenMP loops and OpenBLAS. OpenMP (GCC's libgomp) is
 * xfquant's threading library: loop-parallel kernels need nothing more.
 * Results depend only on inputs, seed and the thread count. */
#ifndef XF_CORE_THREADS_H
#define XF_CORE_THREADS_H

/* Number of online cores. */
int xf_threads_available(void);
/* Sets both OpenMP's and OpenBLAS's thread counts; n <= 0 means all cores. */
void xf_threads_set(int n);
int xf_threads_get(void);

#endif
