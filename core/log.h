/* The logger: the only global mutable state in xfquant (its verbosity). */
#ifndef XF_CORE_LOG_H
#define XF_CORE_LOG_H

typedef enum { XF_LOG_QUIET = 0, XF_LOG_WARN = 1, XF_LOG_INFO = 2, XF_LOG_DEBUG = 3 } xf_log_level;

void xf_log_set_level(xf_log_level level);
xf_log_level xf_log_get_level(void);

void xf_log_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void xf_log_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void xf_log_debug(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
