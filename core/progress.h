/* Progress of long loops (layers, windows, tensors). Where it goes is
 * decided per thread: a library call routes it to its caller's callbacks
 * (or nowhere) for the call's duration (xf_progress_route_push/pop);
 * code run outside such a call keeps the one-line display on stderr, only
 * when stderr is a TTY (silent in pipes, logs and CI).
 *
 * Two kinds of callback: the simple sink (stage text, done, total) and the
 * event sink (xf_progress_info: the same updates with elapsed time, ETA,
 * throughput, solve times and memory; api/ passes them on as the public
 * xf_progress_event). A loop reports through xf_progress_update (plain
 * counts) or xf_progress_emit (an event it filled itself, as the GPTQ loop
 * does: pipeline/gptq_progress.h). */
#ifndef XF_CORE_PROGRESS_H
#define XF_CORE_PROGRESS_H

#include <stdbool.h>
#include <stdint.h>

/* stage: "ppl: window", "gptq: layer q_proj" ...; done of total units. At
 * the end of a loop (finished or not) it is called once with done = total
 * = -1. */
typedef void (*xf_progress_sink)(void *user, const char *stage, int64_t done, int64_t total);

typedef enum xf_progress_kind {
    XF_PEV_START = 0, /* the loop began (sent before its first other event) */
    XF_PEV_UPDATE,    /* done/total moved (loops without blocks) */
    XF_PEV_BLOCK,     /* a decoder block finished */
    XF_PEV_INPUT,     /* one linear input's readers solved */
    XF_PEV_END        /* the loop ended (finished or not) */
} xf_progress_kind;

/* One event; a value the loop does not know is -1 (strings: NULL). The
 * times are seconds; forward_s, hessian_s and solve_s are running totals
 * of the loop, input_*_s those of one linear input (XF_PEV_INPUT). */
typedef struct xf_progress_info {
    xf_progress_kind kind;
    const char *stage;  /* the loop's label, set by xf_progress_emit */
    const char *input;  /* XF_PEV_INPUT: "qkv", "o", "mlp", "down", "lm_head" */
    const char *detail; /* free text after the stage: the input's first reader
                           ("q_proj"), a tensor, "ppl 12.3"; NULL: none */
    int64_t done, total;
    int64_t block, n_blocks;
    double elapsed_s;   /* since the loop's xf_progress_init; set by xf_progress_emit */
    double eta_s;
    int64_t tokens;     /* tokens through the forward pass so far */
    double tokens_per_s, gflop_per_s;
    double forward_s, hessian_s, solve_s;
    double input_forward_s, input_hessian_s, input_solve_s;
    int64_t peak_rss_bytes, rss_bytes; /* set by xf_progress_emit (core/mem_info.h) */
} xf_progress_info;

typedef void (*xf_progress_event_sink)(void *user, const xf_progress_info *ev);

typedef struct xf_progress {
    bool enabled;
    bool started; /* the START event went out */
    int64_t done, total; /* of the last event, for the END event */
    double t_start;
    char label[64];
    xf_progress_sink sink; /* sink and event sink NULL: the TTY line */
    void *sink_user;
    xf_progress_event_sink event_sink;
    void *event_user;
} xf_progress;

/* The calling thread's route before a push, for the matching pop. */
typedef struct xf_progress_route {
    bool routed;
    xf_progress_sink sink;
    void *user;
    xf_progress_event_sink event_sink;
    void *event_user;
} xf_progress_route;

/* From now until xf_progress_route_pop(prev), progress started on this
 * thread goes to sink and event_sink (both NULL: nowhere). */
void xf_progress_route_push(xf_progress_sink sink, void *user, xf_progress_event_sink event_sink,
                            void *event_user, xf_progress_route *prev);
void xf_progress_route_pop(const xf_progress_route *prev);

double xf_now_seconds(void);
void xf_progress_init(xf_progress *p, const char *label);
/* An event with every field unknown (-1, NULL) but kind. */
xf_progress_info xf_progress_info_blank(xf_progress_kind kind);
/* done/total units, `tokens` processed so far (for tokens/s; 0: none),
 * extra text. ETA: the elapsed time per unit done times the units left. */
void xf_progress_update(xf_progress *p, int64_t done, int64_t total, int64_t tokens,
                        const char *extra);
/* ev as filled by the loop; stage, elapsed time and memory are added here.
 * A START event goes out first if none did. */
void xf_progress_emit(xf_progress *p, const xf_progress_info *ev);
/* The END event (with ev's totals when ev is not NULL) or the plain end. */
void xf_progress_finish_with(xf_progress *p, const xf_progress_info *ev);
void xf_progress_finish(xf_progress *p);

#endif
