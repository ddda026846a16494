/* The job's ranks (dist.h): MPI when built with it (XF_HAVE_MPI) and
 * launched by a launcher, else one rank. */
#include "core/dist.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/progress.h"

#ifdef XF_HAVE_MPI
#include <mpi.h>
#endif

bool xf_dist_built(void)
{
#ifdef XF_HAVE_MPI
    return true;
#else
    return false;
#endif
}

double xf_dist_cpu_seconds(void)
{
    struct timespec ts;
    if (clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts) != 0)
        return 0.0;
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int xf_dist_launched_size(void)
{
    /* Open MPI's mpirun, PMI launchers (MPICH's Hydra, srun --mpi=pmi2),
     * an srun step (any --mpi): the world size */
    static const char *const vars[] = {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE",
                                       "SLURM_STEP_NUM_TASKS"};
    for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++) {
        const char *v = getenv(vars[i]);
        if (!v || !*v)
            continue;
        char *end;
        long n = strtol(v, &end, 10);
        if (*end == '\0' && n >= 1 && n <= INT32_MAX)
            return (int)n;
    }
    /* a PMIx server (srun --mpi=pmix, prterun) names the rank, not the
     * size: MPI_Comm_size tells */
    const char *r = getenv("PMIX_RANK");
    return r && *r ? 1 : 0;
}

int xf_dist_open(xf_dist *d, xf_error *err)
{
    memset(d, 0, sizeof *d);
    d->size = 1;
    const int launched = xf_dist_launched_size();
#ifdef XF_HAVE_MPI
    if (launched == 0)
        return 0;
    int done = 0, inited = 0;
    MPI_Finalized(&done);
    if (done)
        return xf_fail(err, "MPI was finalized already in this process: one distributed job "
                            "per process");
    MPI_Initialized(&inited);
    if (!inited) {
        if (MPI_Init(NULL, NULL) != MPI_SUCCESS)
            return xf_fail(err, "MPI_Init failed");
        d->mpi = true;
    }
    /* errors come back as codes, turned into one-line messages */
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    MPI_Comm_rank(MPI_COMM_WORLD, &d->rank);
    MPI_Comm_size(MPI_COMM_WORLD, &d->size);
    return 0;
#else
    if (launched > 1)
        return xf_fail(err, "launched as one of %d ranks, but this xfquant was built without "
                            "MPI (meson setup -Dmpi=enabled; docs/distributed.md)",
                       launched);
    return 0;
#endif
}

void xf_dist_close(xf_dist *d)
{
#ifdef XF_HAVE_MPI
    if (d->mpi)
        MPI_Finalize();
#endif
    memset(d, 0, sizeof *d);
    d->size = 1;
}

#ifdef XF_HAVE_MPI
/* Pieces of at most 1 GiB: MPI counts are int. */
#define PIECE ((size_t)1 << 30)

static int mpi_failed(xf_error *err, const char *what, int code)
{
    char s[MPI_MAX_ERROR_STRING];
    int n = 0;
    MPI_Error_string(code, s, &n);
    return xf_fail(err, "MPI %s failed: %.*s", what, n, s);
}
#endif

int xf_dist_agree(xf_dist *d, int rc, xf_error *err)
{
    if (d->size == 1)
        return rc != 0 ? -1 : 0;
#ifdef XF_HAVE_MPI
    const double t0 = xf_now_seconds(), c0 = xf_dist_cpu_seconds();
    int mine = rc != 0 ? d->rank : d->size, first = d->size;
    int e = MPI_Allreduce(&mine, &first, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
    if (e == MPI_SUCCESS && first < d->size) {
        xf_error msg = {{0}};
        if (d->rank == first && err)
            msg = *err;
        e = MPI_Bcast(msg.msg, XF_ERROR_MSG_MAX, MPI_CHAR, first, MPI_COMM_WORLD);
        msg.msg[XF_ERROR_MSG_MAX - 1] = '\0';
        if (e == MPI_SUCCESS && d->rank != first) {
            xf_fail(err, "%s", msg.msg);
            if (first != 0)
                xf_fail_prefix(err, "rank %d", first);
        } else if (e == MPI_SUCCESS && first != 0) {
            xf_fail_prefix(err, "rank %d", first);
        }
    }
    d->wait_s += xf_now_seconds() - t0;
    d->mpi_cpu_s += xf_dist_cpu_seconds() - c0;
    if (e != MPI_SUCCESS)
        return mpi_failed(err, "agreement", e);
    return first < d->size ? -1 : 0;
#else
    (void)err;
    return rc != 0 ? -1 : 0;
#endif
}

int xf_dist_send(xf_dist *d, int peer, const void *buf, size_t bytes, xf_error *err)
{
    if (peer < 0 || peer >= d->size || peer == d->rank)
        return xf_fail(err, "no rank %d to exchange with (rank %d of %d)", peer, d->rank,
                       d->size);
#ifdef XF_HAVE_MPI
    const double t0 = xf_now_seconds(), c0 = xf_dist_cpu_seconds();
    const char *p = buf;
    for (size_t off = 0; off < bytes; off += PIECE) {
        const size_t n = bytes - off < PIECE ? bytes - off : PIECE;
        int e = MPI_Send(p + off, (int)n, MPI_BYTE, peer, 0, MPI_COMM_WORLD);
        if (e != MPI_SUCCESS)
            return mpi_failed(err, "send", e);
    }
    d->bytes_sent += (int64_t)bytes;
    d->comm_s += xf_now_seconds() - t0;
    d->mpi_cpu_s += xf_dist_cpu_seconds() - c0;
    return 0;
#else
    (void)buf, (void)bytes;
    return 0;
#endif
}

int xf_dist_recv(xf_dist *d, int peer, void *buf, size_t bytes, xf_error *err)
{
    if (peer < 0 || peer >= d->size || peer == d->rank)
        return xf_fail(err, "no rank %d to exchange with (rank %d of %d)", peer, d->rank,
                       d->size);
#ifdef XF_HAVE_MPI
    const double t0 = xf_now_seconds(), c0 = xf_dist_cpu_seconds();
    char *p = buf;
    for (size_t off = 0; off < bytes; off += PIECE) {
        const size_t n = bytes - off < PIECE ? bytes - off : PIECE;
        int e = MPI_Recv(p + off, (int)n, MPI_BYTE, peer, 0, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
        if (e != MPI_SUCCESS)
            return mpi_failed(err, "receive", e);
    }
    d->bytes_recv += (int64_t)bytes;
    d->comm_s += xf_now_seconds() - t0;
    d->mpi_cpu_s += xf_dist_cpu_seconds() - c0;
    return 0;
#else
    (void)buf, (void)bytes;
    return 0;
#endif
}

int xf_dist_bcast(xf_dist *d, int root, void *buf, size_t bytes, xf_error *err)
{
    if (d->size == 1)
        return 0;
#ifdef XF_HAVE_MPI
    const double t0 = xf_now_seconds(), c0 = xf_dist_cpu_seconds();
    char *p = buf;
    for (size_t off = 0; off < bytes; off += PIECE) {
        const size_t n = bytes - off < PIECE ? bytes - off : PIECE;
        int e = MPI_Bcast(p + off, (int)n, MPI_BYTE, root, MPI_COMM_WORLD);
        if (e != MPI_SUCCESS)
            return mpi_failed(err, "broadcast", e);
    }
    if (d->rank == root)
        d->bytes_sent += (int64_t)bytes;
    else
        d->bytes_recv += (int64_t)bytes;
    d->comm_s += xf_now_seconds() - t0;
    d->mpi_cpu_s += xf_dist_cpu_seconds() - c0;
    return 0;
#else
    (void)root, (void)buf, (void)bytes, (void)err;
    return 0;
#endif
}

int xf_dist_sum_i64(xf_dist *d, int64_t *v, xf_error *err)
{
    if (d->size == 1)
        return 0;
#ifdef XF_HAVE_MPI
    const double t0 = xf_now_seconds(), c0 = xf_dist_cpu_seconds();
    int64_t in = *v;
    int e = MPI_Allreduce(&in, v, 1, MPI_INT64_T, MPI_SUM, MPI_COMM_WORLD);
    d->comm_s += xf_now_seconds() - t0;
    d->mpi_cpu_s += xf_dist_cpu_seconds() - c0;
    return e == MPI_SUCCESS ? 0 : mpi_failed(err, "sum", e);
#else
    (void)v, (void)err;
    return 0;
#endif
}

int xf_dist_max_f64(xf_dist *d, double *v, xf_error *err)
{
    if (d->size == 1)
        return 0;
#ifdef XF_HAVE_MPI
    const double t0 = xf_now_seconds(), c0 = xf_dist_cpu_seconds();
    double in = *v;
    int e = MPI_Allreduce(&in, v, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
    d->comm_s += xf_now_seconds() - t0;
    d->mpi_cpu_s += xf_dist_cpu_seconds() - c0;
    return e == MPI_SUCCESS ? 0 : mpi_failed(err, "maximum", e);
#else
    (void)v, (void)err;
    return 0;
#endif
}

int xf_dist_barrier(xf_dist *d, xf_error *err)
{
    if (d->size == 1)
        return 0;
#ifdef XF_HAVE_MPI
    const double t0 = xf_now_seconds(), c0 = xf_dist_cpu_seconds();
    int e = MPI_Barrier(MPI_COMM_WORLD);
    d->wait_s += xf_now_seconds() - t0;
    d->mpi_cpu_s += xf_dist_cpu_seconds() - c0;
    return e == MPI_SUCCESS ? 0 : mpi_failed(err, "barrier", e);
#else
    (void)err;
    return 0;
#endif
}

void xf_dist_abort(xf_dist *d, int code)
{
#ifdef XF_HAVE_MPI
    if (d->size > 1)
        MPI_Abort(MPI_COMM_WORLD, code);
#endif
    (void)d;
    exit(code);
}
