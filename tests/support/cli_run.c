#include "tests/support/cli_run.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "core/read_file.h"

const char *xf_cli_bin(void)
{
    const char *b = getenv("XFQUANT_BIN");
    return b && *b ? b : "build/cli/xfquant";
}

xf_cli_result xf_cli_run(const char *scratch_dir, const char *fmt, ...)
{
    char args[4096], cmd[16384], o[4200], e[4200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(args, sizeof args, fmt, ap);
    va_end(ap);
    snprintf(o, sizeof o, "%s/stdout", scratch_dir);
    snprintf(e, sizeof e, "%s/stderr", scratch_dir);
    snprintf(cmd, sizeof cmd, "%s %s >%s 2>%s </dev/null", xf_cli_bin(), args, o, e);
    int st = system(cmd);
    xf_cli_result r = {WIFEXITED(st) ? WEXITSTATUS(st) : 128, NULL, NULL};
    size_t n;
    if (xf_read_file(o, &r.out, &n, NULL) != 0)
        r.out = strdup("");
    if (xf_read_file(e, &r.err, &n, NULL) != 0)
        r.err = strdup("");
    return r;
}

void xf_cli_result_free(xf_cli_result *r)
{
    free(r->out);
    free(r->err);
    r->out = r->err = NULL;
}

int xf_cli_count_lines(const char *s)
{
    int n = 0;
    for (; *s; s++)
        n += *s == '\n';
    return n;
}
