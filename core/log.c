#include "core/log.h"

#include <stdarg.h>
#include <stdio.h>

/* The one process-wide setting (ARCHITECTURE.md): verbosity and sink. */
static xf_log_level g_level = XF_LOG_WARN;
static xf_log_sink g_sink;
static void *g_sink_user;

void xf_log_set_level(xf_log_level level) { g_level = level; }
xf_log_level xf_log_get_level(void) { return g_level; }

void xf_log_set_sink(xf_log_sink fn, void *user)
{
    g_sink = fn;
    g_sink_user = fn ? user : NULL;
}

static void emit(xf_log_level level, const char *tag, const char *fmt, va_list ap)
{
    if (level > g_level)
        return;
    if (g_sink) {
        char line[2048]; /* longer messages are cut: a log line, not a data channel */
        vsnprintf(line, sizeof line, fmt, ap);
        g_sink(g_sink_user, level, line);
        return;
    }
    fprintf(stderr, "xfquant: %s", tag);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
}

#define XF_LOG_FN(fn, level, tag)            \
    void fn(const char *fmt, ...)            \
    {                                        \
        va_list ap;                          \
        va_start(ap, fmt);                   \
        emit(level, tag, fmt, ap);           \
        va_end(ap);                          \
    }

XF_LOG_FN(xf_log_warn, XF_LOG_WARN, "warning: ")
XF_LOG_FN(xf_log_info, XF_LOG_INFO, "")
XF_LOG_FN(xf_log_debug, XF_LOG_DEBUG, "debug: ")
