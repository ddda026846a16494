#include "core/proc_memory.h"

#include <stdio.h>
#include <string.h>

/* "VmHWM:    123456 kB" -> bytes; -1 when the line does not parse. */
static int64_t kib_field(const char *line, const char *key)
{
    size_t n = strlen(key);
    if (strncmp(line, key, n) != 0)
        return -2; /* not this field */
    long long kib;
    char unit[8];
    if (sscanf(line + n, " %lld %7s", &kib, unit) != 2 || strcmp(unit, "kB") != 0 || kib < 0)
        return -1;
    return (int64_t)kib * 1024;
}

void xf_proc_memory(int64_t *peak_rss_bytes, int64_t *rss_bytes)
{
    *peak_rss_bytes = -1;
    *rss_bytes = -1;
    FILE *f = fopen("/proc/self/status", "re");
    if (!f)
        return;
    char line[256];
    while (fgets(line, sizeof line, f)) {
        int64_t v;
        if ((v = kib_field(line, "VmHWM:")) != -2)
            *peak_rss_bytes = v;
        else if ((v = kib_field(line, "VmRSS:")) != -2)
            *rss_bytes = v;
    }
    fclose(f);
}
