#include "eval/text_tokens.h"

#include <stdlib.h>
#include <string.h>

#include "core/read_file.h"
#include "core/sha256.h"
#include "core/utf8.h"

int xf_text_half_range(const char *text, size_t len, int half, size_t *off, size_t *n)
{
    const char *lf = len ? memchr(text + len / 2, '\n', len - len / 2) : NULL;
    if (!lf)
        return -1;
    size_t cut = (size_t)(lf - text) + 1;
    *off = half == 2 ? cut : 0;
    *n = half == 2 ? len - cut : cut;
    return 0;
}

int xf_text_tokens_load(xf_text_tokens *tt, const char *path, const xf_tokenizer *tok,
                        bool binary_ok, xf_error *err)
{
    return xf_text_tokens_load_half(tt, path, tok, binary_ok, 0, err);
}

int xf_text_tokens_load_half(xf_text_tokens *tt, const char *path, const xf_tokenizer *tok,
                             bool binary_ok, int half, xf_error *err)
{
    memset(tt, 0, sizeof *tt);
    if (half < 0 || half > 2)
        return xf_fail(err, "%s: text half must be 1 or 2, not %d", path, half);
    char *text;
    size_t len;
    if (xf_read_file(path, &text, &len, err) != 0)
        return -1;
    if (len == 0) {
        free(text);
        return xf_fail(err, "%s: the text file is empty", path);
    }
    size_t base = 0; /* of the half, in the file: error offsets are the file's */
    if (half) {
        size_t off, n;
        if (xf_text_half_range(text, len, half, &off, &n) != 0) {
            free(text);
            return xf_fail(err, "%s: no line break at or after the middle of the text: it has no halves",
                           path);
        }
        if (n == 0) {
            free(text);
            return xf_fail(err, "%s: half %d of the text is empty", path, half);
        }
        memmove(text, text + off, n);
        len = n;
        base = off;
    }
    const size_t bad = binary_ok ? len : xf_utf8_scan(text, len, false);
    if (bad < len) {
        xf_fail(err, "%s: not a UTF-8 text file (%s at byte %zu); --text-binary-ok scores it anyway",
                path, text[bad] == 0 ? "NUL byte" : "invalid UTF-8", base + bad);
        free(text);
        return -1;
    }
    xf_sha256_hex(text, len, tt->sha256); /* of the file's bytes */
    /* Read like Python's text mode (what the reference evaluations do):
     * CRLF and lone CR become LF; a UTF-8 BOM is kept. */
    len = xf_text_universal_newlines(text, len);
    tt->text_bytes = len;
    int rc = xf_tokenizer_encode(tok, text, len, true, &tt->ids, &tt->n, err);
    free(text);
    if (rc != 0)
        return xf_fail_prefix(err, "%s", path);
    size_t content = tt->n - (xf_tokenizer_adds_bos(tok) && tt->n > 0 ? 1 : 0);
    if (content == 0) {
        xf_text_tokens_free(tt);
        return xf_fail(err, "%s: the text%s encodes to no tokens", path,
                       half == 1 ? " (half 1)" : half == 2 ? " (half 2)" : "");
    }
    return 0;
}

void xf_text_tokens_free(xf_text_tokens *tt)
{
    free(tt->ids);
    memset(tt, 0, sizeof *tt);
}

int32_t xf_llamacpp_chunk_bos(const xf_tokenizer *tok)
{
    return xf_tokenizer_adds_bos(tok) ? xf_tokenizer_bos_id(tok) : -1;
}

xf_tokenizer *xf_model_tokenizer(const xf_loaded_model *m, xf_error *err)
{
    if (!m->tokenizer_json) {
        xf_fail(err, "%s: no tokenizer.json (an HF directory needs tokenizer.json; an .xfq embeds it)",
                m->path);
        return NULL;
    }
    return xf_tokenizer_load(m->tokenizer_json, m->tokenizer_config_json, m->path, err);
}
