/* xf_status from an internal xf_error (the api/ files share it). */
#ifndef XF_API_STATUS_H
#define XF_API_STATUS_H

#include <stdio.h>

#include "core/error.h"
#include "include/xfquant.h"

/* Sets *st (may be NULL) to code with e's message; returns -1. */
static inline int xf_api_fail(xf_status *st, int code, const xf_error *e)
{
    if (st) {
        st->code = code;
        snprintf(st->message, sizeof st->message, "%s", e->msg);
    }
    return -1;
}

static inline void xf_api_ok(xf_status *st)
{
    if (st) {
        st->code = XF_OK;
        st->message[0] = '\0';
    }
}

#endif
