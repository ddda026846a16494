/* Progress of long loops (layers, windows, tensors). Where it goes is
 * decided per thread: a library call routes it to its caller's callback
 * (or nowhere) for the call's duration (xf_progress_route_push/pop);
 * code run outside such a call keeps the one-line display on stderr, only
 * when stderr is a TTY (silent in pipes, logs and CI). */
#ifndef XF_CORE_PROGRESS_H
#define XF_CORE_PROGRESS_H

#include <stdbool.h>
#include <stdint.h>

/* stage: "ppl: window", "gptq: layer 3" ...; done of total units. At the
 * end of a loop (finished or not) it is called once with done = total = -1. */
typedef void (*xf_progress_sink)(void *user, const char *stage, int64_t done, int64_t total);

typedef struct xf_progress {
    bool enabled;
    double t_start;
    char label[64];
    xf_progress_sink sink; /* NULL: the TTY line */
    void *sink_user;
} xf_progress;

/* The calling thread's route before a push, for the matching pop. */
typedef struct xf_progress_route {
    bool routed;
    xf_progress_sink sink;
    void *user;
} xf_progress_route;

/* From now until xf_progress_route_pop(prev), progress started on this
 * thread goes to sink (NULL: nowhere). */
void xf_progress_route_push(xf_progress_sink sink, void *user, xf_progress_route *prev);
void xf_progress_route_pop(const xf_progress_route *prev);

double xf_now_seconds(void);
void xf_progress_init(xf_progress *p, const char *label);
/* done/total units, `tokens` processed so far (for tokens/s), extra text. */
void xf_progress_update(xf_progress *p, int64_t done, int64_t total, int64_t tokens,
                        const char *extra);
void xf_progress_finish(xf_progress *p);

#endif
