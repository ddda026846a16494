#include "eval/text_tokens.h"

#include <stdlib.h>
#include <string.h>

#include "core/read_file.h"
#include "core/sha256.h"
#include "core/utf8.h"

int xf_text_tokens_load(xf_text_tokens *tt, const char *path, const xf_tokenizer *tok,
                        bool binary_ok, xf_error *err)
{
    memset(tt, 0, sizeof *tt);
    char *text;
    size_t len;
    if (xf_read_file(path, &text, &len, err) != 0)
        return -1;
    if (len == 0) {
        free(text);
        return xf_fail(err, "%s: the text file is empty", path);
    }
    const size_t bad = binary_ok ? len : xf_utf8_scan(text, len, false);
    if (bad < len) {
        xf_fail(err, "%s: not a UTF-8 text file (%s at byte %zu); --text-binary-ok scores it anyway",
                path, text[bad] == 0 ? "NUL byte" : "invalid UTF-8", bad);
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
        return xf_fail(err, "%s: the text encodes to no tokens", path);
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
