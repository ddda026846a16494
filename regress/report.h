/* Outputs of a regression run, all rendered from xf_regress_results after
 * xf_regress_compare:
 *  - TABLE: the terminal table (case, metric, expected, got, delta, band,
 *    verdict; then relations and a closing "result:" line);
 *  - JSON: the same data for machines (`--json`);
 *  - JUNIT: JUnit XML, one <testsuite>, one <testcase> per selected case and
 *    relation with <failure>/<skipped> children (`--junit FILE`);
 *  - MARKDOWN: tables for a report (`--report FILE`);
 *  - SVG: bits per weight vs perplexity, one <path> per method (`--plot`).
 * Only selected cases (and relations touching one) appear. Output is
 * deterministic (no timestamps). */
#ifndef XF_REGRESS_REPORT_H
#define XF_REGRESS_REPORT_H

#include "core/error.h"
#include "regress/compare.h"

typedef enum xf_regress_format {
    XF_REGRESS_TABLE = 0,
    XF_REGRESS_JSON,
    XF_REGRESS_JUNIT,
    XF_REGRESS_MARKDOWN,
    XF_REGRESS_SVG
} xf_regress_format;

/* The text of one output (malloc'd, NUL-terminated); NULL when out of memory. */
char *xf_regress_render(const xf_regress_results *r, xf_regress_format fmt);

/* Renders and writes it to path through core/atomic_file.h. */
int xf_regress_write(const xf_regress_results *r, xf_regress_format fmt, const char *path,
                     xf_error *err);

#endif
