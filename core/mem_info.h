/* What this process may and does use of the machine's memory (Linux
 * /proc). */
#ifndef XF_CORE_MEM_INFO_H
#define XF_CORE_MEM_INFO_H

#include <stdbool.h>
#include <stdint.h>

/* MemAvailable of /proc/meminfo in bytes (the kernel's estimate of what can
 * be allocated without swapping: free + reclaimable page cache); -1 when
 * unknown. */
int64_t xf_mem_available(void);

/* This process's peak and current resident set in bytes (VmHWM, VmRSS of
 * /proc/self/status; anonymous and file-backed pages together) and the
 * current anonymous part (RssAnon); -1 each when unknown. */
typedef struct xf_mem_usage {
    int64_t peak_rss, rss, rss_anon;
} xf_mem_usage;
void xf_mem_usage_read(xf_mem_usage *u);

#endif
