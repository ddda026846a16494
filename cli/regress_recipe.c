/* Bridge (until the recipe option table parses a case's flags inside the
 * library): the library's regress runner reads rtn/gptq cases' flags with
 * this hook, which is the CLI's own parser (cli/quant_args.h), so a suite
 * recipe means exactly what the CLI flags mean. api/regress.c declares it
 * weak: a program without it gets "no recipe parser given" for those cases. */
#include <string.h>

#include "cli/cli.h"
#include "cli/quant_args.h"

int xf_api_quant_argv_parse(int argc, char **argv, xf_quant_options *o);

int xf_api_quant_argv_parse(int argc, char **argv, xf_quant_options *o)
{
    xf_quant_cli x;
    xf_quant_method method = !strcmp(argv[0], "gptq") ? XF_METHOD_GPTQ : XF_METHOD_RTN;
    int rc = xf_quant_args_parse(method, argc, argv, o, &x);
    return rc != 0 || x.help ? -1 : 0;
}
