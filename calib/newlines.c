#include "calib/tokenizer.h"

size_t xf_text_universal_newlines(char *text, size_t len)
{
    size_t w = 0;
    for (size_t r = 0; r < len; r++) {
        if (text[r] == '\r') {
            text[w++] = '\n';
            if (r + 1 < len && text[r + 1] == '\n')
                r++;
        } else {
            text[w++] = text[r];
        }
    }
    if (w < len)
        text[w] = 0;
    return w;
}
