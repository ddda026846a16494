/* Regression reports' SVG plot. */
#ifndef XF_REGRESS_PLOT_SVG_H
#define XF_REGRESS_PLOT_SVG_H

#include <stdio.h>

#include "regress/compare.h"

/* Prints the SVG of r into o; -1 when out of memory. */
int xf_regress_render_svg(FILE *o, const xf_regress_results *r);

#endif
