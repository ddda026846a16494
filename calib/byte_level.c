#include "calib/byte_level.h"

#include <stdbool.h>

#include "calib/utf8.h"

static bool printable(uint32_t b)
{
    return (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
}

uint32_t xf_byte_level_char(uint8_t b)
{
    if (printable(b))
        return b;
    /* Rank of b among the non-printable bytes: 0x00-0x20 (33 of them),
     * 0x7F-0xA0 (34), then 0xAD. */
    if (b <= 0x20)
        return 0x100u + b;
    if (b >= 0x7F && b <= 0xA0)
        return 0x100u + 33 + (uint32_t)(b - 0x7F);
    return 0x100u + 67; /* 0xAD */
}

int xf_byte_level_byte(uint32_t cp)
{
    if (cp <= 0xFF)
        return printable(cp) ? (int)cp : -1;
    if (cp < 0x100 + 33)
        return (int)(cp - 0x100);
    if (cp < 0x100 + 67)
        return (int)(0x7F + cp - 0x100 - 33);
    if (cp == 0x100 + 67)
        return 0xAD;
    return -1;
}

int xf_byte_level_encode(const char *s, size_t n, xf_tbuf *out)
{
    if (xf_tbuf_reserve(out, 2 * n) != 0)
        return -1;
    for (size_t i = 0; i < n; i++) {
        uint32_t cp = xf_byte_level_char((uint8_t)s[i]);
        out->n += xf_utf8_put(cp, out->p + out->n);
    }
    return 0;
}
