/* XML text for the reports (JUnit, SVG). */
#include "regress/xml_text.h"

void xf_regress_xml_escaped(FILE *o, const char *s)
{
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        switch (c) {
        case '&': fputs("&amp;", o); break;
        case '<': fputs("&lt;", o); break;
        case '>': fputs("&gt;", o); break;
        case '"': fputs("&quot;", o); break;
        case '\'': fputs("&apos;", o); break;
        default: fputc(c < 0x20 && c != '\t' && c != '\n' && c != '\r' ? ' ' : c, o);
        }
    }
}
