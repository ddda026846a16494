/* Regression reports' SVG plot and the XML escaping the reports share. */
#ifndef XF_REGRESS_PLOT_SVG_H
#define XF_REGRESS_PLOT_SVG_H

#include <stdio.h>

#include "regress/compare.h"

/* XML text/attribute escaping; control characters XML 1.0 cannot carry
 * become spaces. */
void xf_regress_xml_escaped(FILE *o, const char *s);

/* Prints the SVG of r into o; -1 when out of memory. */
int xf_regress_render_svg(FILE *o, const xf_regress_results *r);

#endif
