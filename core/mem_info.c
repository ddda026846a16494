/* Memory figures from /proc (mem_info.h). */
#include "core/mem_info.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The "KEY:   N kB" lines of a /proc file, in bytes, read in one pass (one
 * snapshot: the kernel prints VmHWM as at least VmRSS within one read);
 * -1 for each key absent. */
static void proc_kb_fields(const char *path, const char *const *keys, int64_t *const *out, int n)
{
    for (int i = 0; i < n; i++)
        *out[i] = -1;
    FILE *f = fopen(path, "r");
    if (!f)
        return;
    char line[256];
    while (fgets(line, sizeof line, f)) {
        for (int i = 0; i < n; i++) {
            const size_t klen = strlen(keys[i]);
            long long kb;
            if (strncmp(line, keys[i], klen) == 0 && line[klen] == ':' &&
                sscanf(line + klen + 1, "%lld", &kb) == 1 && kb >= 0)
                *out[i] = (int64_t)kb * 1024;
        }
    }
    fclose(f);
}

int64_t xf_mem_available(void)
{
    int64_t v;
    const char *const keys[1] = {"MemAvailable"};
    int64_t *const out[1] = {&v};
    proc_kb_fields("/proc/meminfo", keys, out, 1);
    return v;
}

void xf_mem_usage_read(xf_mem_usage *u)
{
    const char *const keys[3] = {"VmHWM", "VmRSS", "RssAnon"};
    int64_t *const out[3] = {&u->peak_rss, &u->rss, &u->rss_anon};
    proc_kb_fields("/proc/self/status", keys, out, 3);
}
