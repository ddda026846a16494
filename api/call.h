/* What every public entry point does around its work: thread counts and
 * the progress route set for the call and restored after it, and the
 * internal error turned into the caller's xf_status. */
#ifndef XF_API_CALL_H
#define XF_API_CALL_H

#include <stdio.h>

#include "api/api_status.h"
#include "core/error.h"
#include "core/progress.h"
#include "core/threads.h"
#include "include/xfquant.h"

typedef struct xf_api_call {
    xf_threads_saved threads;
    xf_progress_route route;
    xf_progress_event_fn event_fn; /* the caller's, for the call (NULL: none) */
    void *event_user;
} xf_api_call;

void xf_api_begin(xf_api_call *c, const xf_run_opts *run);
void xf_api_end(xf_api_call *c);

/* Like api_status.h's xf_api_fail, from a message or a format: st may be
 * NULL; returns -1 (for `return xf_api_fail_msg(...)`). */
int xf_api_fail_msg(xf_status *st, int code, const char *msg);
int xf_api_failf(xf_status *st, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* A growing string (open_memstream) for text reports. */
typedef struct xf_api_text {
    FILE *f;
    char *buf;
    size_t len;
} xf_api_text;

int xf_api_text_open(xf_api_text *t);
/* The text (caller frees), or NULL when out of memory; closes t. */
char *xf_api_text_take(xf_api_text *t);

#endif
