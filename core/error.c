#include "core/error.h"

#include <stdio.h>
#include <string.h>

static void one_line(char *s)
{
    for (; *s; s++)
        if (*s == '\n' || *s == '\r')
            *s = ' ';
}

int xf_vfail(xf_error *err, const char *fmt, va_list ap)
{
    if (err) {
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        one_line(err->msg);
    }
    return -1;
}

int xf_fail(xf_error *err, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    xf_vfail(err, fmt, ap);
    va_end(ap);
    return -1;
}

int xf_fail_prefix(xf_error *err, const char *fmt, ...)
{
    if (!err)
        return -1;
    char prefix[XF_ERROR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    char joined[2 * XF_ERROR_MSG_MAX + 2];
    size_t pl = strnlen(prefix, sizeof prefix), ol = strnlen(err->msg, sizeof err->msg);
    memcpy(joined, prefix, pl);
    joined[pl] = ':';
    joined[pl + 1] = ' ';
    memcpy(joined + pl + 2, err->msg, ol);
    joined[pl + 2 + ol] = '\0';
    size_t n = pl + 2 + ol < sizeof err->msg ? pl + 2 + ol : sizeof err->msg - 1;
    memcpy(err->msg, joined, n);
    err->msg[n] = '\0';
    one_line(err->msg);
    return -1;
}

void xf_error_clear(xf_error *err)
{
    if (err)
        err->msg[0] = '\0';
}
