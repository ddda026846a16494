/* SIGBUS from a mapped input file: one line naming the file, exit 1.
 *
 * Inputs are read through mmap (core/mapped_file.c). When a mapped file is
 * truncated by someone else while xfquant runs, or the disk cannot deliver a
 * page (EIO), the kernel raises SIGBUS at the first touch of the missing page,
 * wherever in the code that happens. Checking every access is impossible, so
 * the CLI turns the signal into the usual one-line failure.
 *
 * Which file: the handler reads /proc/self/maps (open/read/close/write are
 * async-signal-safe) and finds the mapping that holds si_addr. This needs no
 * registry of mappings, so no global state beyond the signal disposition. A
 * SIGBUS outside any file mapping is a bug, not an input problem: it is
 * reported and re-raised with the default action (core dump). */
#include "cli/mapped_fault.h"

#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"

static void put(const char *s)
{
    size_t n = strlen(s);
    while (n > 0) {
        ssize_t w = write(STDERR_FILENO, s, n);
        if (w <= 0)
            return;
        s += w;
        n -= (size_t)w;
    }
}

static void put_u64(uint64_t v, int base)
{
    char buf[32];
    int i = sizeof buf - 1;
    buf[i] = '\0';
    do {
        buf[--i] = "0123456789abcdef"[v % (uint64_t)base];
        v /= (uint64_t)base;
    } while (v > 0 && i > 0);
    if (base == 16)
        put("0x");
    put(buf + i);
}

static const char *parse_hex(const char *s, uint64_t *v)
{
    *v = 0;
    const char *start = s;
    for (;; s++) {
        int d = *s >= '0' && *s <= '9'   ? *s - '0'
                : *s >= 'a' && *s <= 'f' ? *s - 'a' + 10
                : *s >= 'A' && *s <= 'F' ? *s - 'A' + 10
                                         : -1;
        if (d < 0)
            return s == start ? NULL : s;
        *v = *v * 16 + (uint64_t)d;
    }
}

static const char *skip_field(const char *s)
{
    while (*s && *s != ' ')
        s++;
    while (*s == ' ')
        s++;
    return s;
}

/* One line of /proc/self/maps: "start-end perms offset dev inode   path".
 * True when it maps a file and holds addr; path points into line. */
bool xf_maps_line_find(char *line, uint64_t addr, const char **path, uint64_t *file_offset)
{
    uint64_t start, end, off;
    const char *s = parse_hex(line, &start);
    if (!s || *s != '-')
        return false;
    s = parse_hex(s + 1, &end);
    if (!s || *s != ' ' || addr < start || addr >= end)
        return false;
    s = skip_field(s + 1);         /* perms */
    s = parse_hex(s, &off);
    if (!s || *s != ' ')
        return false;
    s = skip_field(skip_field(s + 1)); /* dev, inode */
    if (*s != '/')
        return false;                  /* anonymous, [heap], [stack], ... */
    *path = s;
    *file_offset = off + (addr - start);
    return true;
}

static void on_sigbus(int sig, siginfo_t *si, void *ctx)
{
    (void)ctx;
    uint64_t addr = (uint64_t)(uintptr_t)si->si_addr;
    const char *path = NULL;
    uint64_t offset = 0;
    char line[4400]; /* a maps line: addresses, flags and a path up to PATH_MAX */
    size_t ll = 0;
    int fd = open("/proc/self/maps", O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        char chunk[1024];
        ssize_t r;
        while (!path && (r = read(fd, chunk, sizeof chunk)) > 0) {
            for (ssize_t i = 0; i < r && !path; i++) {
                if (chunk[i] != '\n') {
                    if (ll < sizeof line - 1)
                        line[ll++] = chunk[i];
                    continue;
                }
                line[ll] = '\0';
                ll = 0;
                xf_maps_line_find(line, addr, &path, &offset);
            }
        }
        close(fd);
    }
    if (path) {
        put("xfquant: ");
        put(path);
        put(": input file was truncated or could not be read while mapped (SIGBUS at byte ");
        put_u64(offset, 10);
        put(")\n");
        _exit(XF_EXIT_FAIL);
    }
    put("xfquant: SIGBUS at address ");
    put_u64(addr, 16);
    put(", outside any mapped file (a bug)\n");
    signal(sig, SIG_DFL);
    raise(sig);
}

void xf_cli_catch_mapped_faults(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_sigbus;
    sa.sa_flags = SA_SIGINFO;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGBUS, &sa, NULL);
}
