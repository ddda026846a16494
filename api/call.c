#include "api/call.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

void xf_api_begin(xf_api_call *c, const xf_run_opts *run)
{
    xf_threads_push(run ? run->threads : 0, &c->threads);
    xf_progress_route_push(run ? run->progress : NULL, run ? run->progress_user : NULL, &c->route);
}

void xf_api_end(xf_api_call *c)
{
    xf_progress_route_pop(&c->route);
    xf_threads_pop(&c->threads);
}

int xf_api_fail_msg(xf_status *st, int code, const char *msg)
{
    if (st) {
        st->code = code;
        snprintf(st->message, sizeof st->message, "%s", msg && *msg ? msg : "failed");
    }
    return -1;
}

int xf_api_failf(xf_status *st, int code, const char *fmt, ...)
{
    char msg[sizeof ((xf_status *)0)->message];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return xf_api_fail_msg(st, code, msg);
}

int xf_api_text_open(xf_api_text *t)
{
    t->buf = NULL;
    t->len = 0;
    t->f = open_memstream(&t->buf, &t->len);
    return t->f ? 0 : -1;
}

char *xf_api_text_take(xf_api_text *t)
{
    int bad = ferror(t->f);
    if (fclose(t->f) != 0 || bad) {
        free(t->buf);
        return NULL;
    }
    return t->buf;
}
