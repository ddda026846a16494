/* The logger: the only global mutable state in xfquant (its verbosity and
 * its sink). The sink is stderr ("xfquant: warning: ...") unless a library
 * user installs a callback (include/xfquant.h, xf_set_log). */
#ifndef XF_CORE_LOG_H
#define XF_CORE_LOG_H

typedef enum { XF_LOG_QUIET = 0, XF_LOG_WARN = 1, XF_LOG_INFO = 2, XF_LOG_DEBUG = 3 } xf_log_level;

/* message: one line, no prefix and no trailing newline */
typedef void (*xf_log_sink)(void *user, xf_log_level level, const char *message);

void xf_log_set_level(xf_log_level level);
xf_log_level xf_log_get_level(void);
/* fn NULL: back to stderr */
void xf_log_set_sink(xf_log_sink fn, void *user);

void xf_log_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void xf_log_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void xf_log_debug(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
