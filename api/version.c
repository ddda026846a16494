/* xf_version and the log settings. */
#include "api/call.h"
#include "core/log.h"

_Static_assert(XF_LEVEL_QUIET == (int)XF_LOG_QUIET && XF_LEVEL_WARN == (int)XF_LOG_WARN &&
                   XF_LEVEL_INFO == (int)XF_LOG_INFO && XF_LEVEL_DEBUG == (int)XF_LOG_DEBUG,
               "public log levels are core/log.h's");

XF_API const char *xf_version(void) { return XF_VERSION; }

/* The user's callback behind core/log.h's sink: the level as a plain int. */
typedef struct log_route {
    xf_log_fn fn;
    void *user;
} log_route;

static log_route g_route; /* part of the logger's one global setting */

static void route_line(void *user, xf_log_level level, const char *message)
{
    const log_route *r = user;
    r->fn(r->user, (int)level, message);
}

XF_API void xf_set_log(xf_log_fn fn, void *user, int level)
{
    if (level < XF_LEVEL_QUIET)
        level = XF_LEVEL_QUIET;
    if (level > XF_LEVEL_DEBUG)
        level = XF_LEVEL_DEBUG;
    xf_log_set_level((xf_log_level)level);
    if (!fn) {
        xf_log_set_sink(NULL, NULL);
        return;
    }
    g_route = (log_route){fn, user};
    xf_log_set_sink(route_line, &g_route);
}
