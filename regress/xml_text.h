/* XML text for the reports (JUnit, SVG). */
#ifndef XF_REGRESS_XML_TEXT_H
#define XF_REGRESS_XML_TEXT_H

#include <stdio.h>

/* Prints s escaped for XML text and attributes; control characters XML 1.0
 * cannot carry become spaces. */
void xf_regress_xml_escaped(FILE *o, const char *s);

#endif
