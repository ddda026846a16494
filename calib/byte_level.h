/* GPT-2's byte-level alphabet: every byte is shown as a printable character
 * (bytes_to_unicode): the printable bytes 0x21-0x7E, 0xA1-0xAC and
 * 0xAE-0xFF stand for themselves, the 68 others, in increasing order, for
 * U+0100, U+0101, ... U+0143. */
#ifndef XF_CALIB_BYTE_LEVEL_H
#define XF_CALIB_BYTE_LEVEL_H

#include <stddef.h>
#include <stdint.h>

#include "calib/tok_buffers.h"

/* GPT-2's pre-tokenization regex (ByteLevel with use_regex true). */
#define XF_GPT2_PATTERN                                                                  \
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+"

uint32_t xf_byte_level_char(uint8_t byte);
/* The byte a character stands for, or -1 if it is not in the alphabet. */
int xf_byte_level_byte(uint32_t cp);
/* Appends the byte-level characters (UTF-8) of s[0..n) to out; 0 / -1 (OOM). */
int xf_byte_level_encode(const char *s, size_t n, xf_tbuf *out);

#endif
