/* Unicode for the tokenizers: the White_Space property (strict UTF-8
 * decoding itself is core/utf8.h). */
#ifndef XF_CALIB_UTF8_H
#define XF_CALIB_UTF8_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/utf8.h" /* xf_utf8_char, xf_utf8_put */

/* Unicode White_Space (what Rust's char::is_whitespace tests). */
bool xf_unicode_is_space(uint32_t cp);

#endif
