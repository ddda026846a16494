#include "cli/cli.h"

int xf_cli_status_exit(const char *cmd, const xf_status *st)
{
    if (st->code == XF_USAGE)
        return xf_usage_error(cmd, "%s", st->message);
    return xf_failure(st->message);
}
