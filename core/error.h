/* Error reporting: every fallible function takes an xf_error* and, on
 * failure, fills it with ONE line naming the file/object and the problem,
 * then returns -1 (or NULL). The CLI prints that line and exits non-zero.
 * A NULL xf_error* is allowed: the message is then dropped. */
#ifndef XF_CORE_ERROR_H
#define XF_CORE_ERROR_H

#include <stdarg.h>

#define XF_ERROR_MSG_MAX 1024

typedef struct xf_error {
    char msg[XF_ERROR_MSG_MAX];
} xf_error;

/* Formats the message into err (newlines are replaced by spaces so the
 * message stays one line) and returns -1, so callers can write
 * `return xf_fail(err, "%s: truncated", path);`. */
int xf_fail(xf_error *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int xf_vfail(xf_error *err, const char *fmt, va_list ap);

/* Prepends "prefix: " to an existing message (adds context on the way up). */
int xf_fail_prefix(xf_error *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

void xf_error_clear(xf_error *err);

#endif
