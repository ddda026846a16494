/* Memory figures from /proc (mem_info.h). */
#include "core/mem_info.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The "KEY:   N kB" line of a /proc file, in bytes; -1 when absent. */
static int64_t proc_kb_field(const char *path, const char *key)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    char line[256];
    const size_t klen = strlen(key);
    int64_t v = -1;
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, key, klen) == 0 && line[klen] == ':') {
            long long kb;
            if (sscanf(line + klen + 1, "%lld", &kb) == 1 && kb >= 0)
                v = (int64_t)kb * 1024;
            break;
        }
    }
    fclose(f);
    return v;
}

int64_t xf_mem_available(void) { return proc_kb_field("/proc/meminfo", "MemAvailable"); }

void xf_mem_usage_read(xf_mem_usage *u)
{
    u->peak_rss = proc_kb_field("/proc/self/status", "VmHWM");
    u->rss = proc_kb_field("/proc/self/status", "VmRSS");
    u->rss_anon = proc_kb_field("/proc/self/status", "RssAnon");
}
