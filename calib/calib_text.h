/* Calibration text readers: a plain text file (used whole, like the
 * WikiText-2 train split in the GPTQ reference), JSON Lines (one record per
 * line, the text in field "text" or --calib-field NAME) or a directory of
 * .txt files (sorted by name). Records and files are joined with "\n\n",
 * the separator the reference uses for WikiText-2, into one string that is
 * tokenized once. Like Python's text mode (and so the reference), CRLF
 * and lone CR become LF; a UTF-8 BOM is kept. */
#ifndef XF_CALIB_CALIB_TEXT_H
#define XF_CALIB_CALIB_TEXT_H

#include <stddef.h>

#include "core/error.h"

typedef enum xf_calib_format {
    XF_CALIB_AUTO = 0, /* directory -> DIR; *.jsonl / *.ndjson -> JSONL; else TEXT */
    XF_CALIB_TEXT,
    XF_CALIB_JSONL,
    XF_CALIB_DIR,
} xf_calib_format;

typedef struct xf_calib_text {
    char *text;          /* joined text, NUL-terminated */
    size_t len;
    xf_calib_format format;
    size_t n_documents;  /* records / files / 1 */
    size_t n_skipped;    /* empty records skipped */
    char sha256[65];     /* of the source file (TEXT/JSONL) or of the joined text (DIR) */
} xf_calib_text;

/* field: JSONL field name (NULL: "text"). Fails on empty input, invalid
 * JSON lines (naming the line), missing/non-string fields, a directory
 * without .txt files. */
int xf_calib_text_read(xf_calib_text *ct, const char *path, xf_calib_format format,
                       const char *field, xf_error *err);
void xf_calib_text_free(xf_calib_text *ct);
const char *xf_calib_format_name(xf_calib_format f);

#endif
