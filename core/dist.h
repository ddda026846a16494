/* The job's ranks: the one place xfquant talks to MPI (docs/distributed.md).
 *
 * A process started by an MPI launcher (mpirun, srun: the launcher's
 * environment names a world size or a PMIx rank) in an MPI build (-Dmpi) joins the job
 * with MPI_Init; any other process is rank 0 of 1 and never calls MPI, so
 * plain runs, the tests, sanitizers and LD_PRELOAD shims see no MPI at
 * all. A build without MPI started by a launcher with more than one rank
 * refuses to run (every rank would write the whole output).
 *
 * Every operation below is collective over the ranks named in its comment;
 * a rank-local failure is made collective with xf_dist_agree before the
 * next exchange, so no rank waits for a partner that gave up. Transfers
 * are split into pieces MPI's int counts can hold. With one rank every
 * operation is a no-op (or a local copy). The handle counts the bytes it
 * moved and the seconds it spent waiting in MPI (bench/, the summary). */
#ifndef XF_CORE_DIST_H
#define XF_CORE_DIST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/error.h"

typedef struct xf_dist {
    int rank, size;
    bool mpi;           /* this handle called MPI_Init (and will finalize) */
    int64_t bytes_sent; /* payload bytes this rank sent (point to point and broadcast roots) */
    int64_t bytes_recv; /* payload bytes this rank received */
    double comm_s;      /* seconds in transfers (sends, receives, broadcasts, sums) */
    double wait_s;      /* seconds in agreements and barriers: waiting for the slowest rank */
    double mpi_cpu_s;   /* CPU seconds of this process inside those calls (MPI polls while
                           it waits): the rest of its CPU time is its own work */
} xf_dist;

/* CPU seconds of this process so far (all its threads). */
double xf_dist_cpu_seconds(void);

/* Whether this binary was built with MPI. */
bool xf_dist_built(void);

/* The world size a launcher announced in the environment (Open MPI's
 * OMPI_COMM_WORLD_SIZE, PMI_SIZE, an srun step's SLURM_STEP_NUM_TASKS; 1
 * for a PMIx server's PMIX_RANK alone, which names no size); 0 when not
 * launched by one (a plain shell of a Slurm allocation included). */
int xf_dist_launched_size(void);

/* Joins the job (MPI_Init) when launched by an MPI launcher, else rank 0
 * of 1. Fails when launched with several ranks without MPI support, or
 * when MPI was finalized already in this process (MPI cannot start twice). */
int xf_dist_open(xf_dist *d, xf_error *err);
/* Leaves the job (MPI_Finalize) if xf_dist_open joined it. */
void xf_dist_close(xf_dist *d);

/* All ranks: rc of every rank combined. Returns 0 when every rank
 * succeeded; else -1 on every rank, with err holding the message of the
 * lowest failing rank (prefixed "rank R: " on the others). */
int xf_dist_agree(xf_dist *d, int rc, xf_error *err);

/* Point to point: `bytes` bytes to / from rank `peer`. */
int xf_dist_send(xf_dist *d, int peer, const void *buf, size_t bytes, xf_error *err);
int xf_dist_recv(xf_dist *d, int peer, void *buf, size_t bytes, xf_error *err);
/* All ranks: root's `bytes` bytes into everyone's buf. */
int xf_dist_bcast(xf_dist *d, int root, void *buf, size_t bytes, xf_error *err);
/* All ranks: *v becomes the sum over ranks (integers: exact, any order). */
int xf_dist_sum_i64(xf_dist *d, int64_t *v, xf_error *err);
/* All ranks: *v becomes the maximum over ranks. */
int xf_dist_max_f64(xf_dist *d, double *v, xf_error *err);
/* All ranks: wait for each other. */
int xf_dist_barrier(xf_dist *d, xf_error *err);

/* Ends every rank of the job at once (MPI_Abort), for a failure that
 * cannot be agreed on; a single process exits. Does not return. */
void xf_dist_abort(xf_dist *d, int code) __attribute__((noreturn));

#endif
