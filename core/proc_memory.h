/* The process's memory as the kernel counts it: peak and current resident
 * set (Linux /proc/self/status VmHWM and VmRSS), for progress reports. */
#ifndef XF_CORE_PROC_MEMORY_H
#define XF_CORE_PROC_MEMORY_H

#include <stdint.h>

/* Bytes; -1 for a value the system does not report (no /proc, no field). */
void xf_proc_memory(int64_t *peak_rss_bytes, int64_t *rss_bytes);

#endif
