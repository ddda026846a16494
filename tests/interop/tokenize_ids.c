/* tokenize_ids MODEL TEXT: the token ids xfquant's evaluator gives TEXT
 * (read as a text file: CRLF -> LF, BOS as the model's tokenizer adds it),
 * one per line, with MODEL an HF directory, a .xfq or a GGUF. */
#include <stdio.h>
#include <stdlib.h>

#include "calib/tokenizer.h"
#include "core/read_file.h"
#include "model/loader.h"

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: tokenize_ids MODEL TEXT\n");
        return 2;
    }
    xf_error err = {0};
    xf_loaded_model m;
    if (xf_model_open(&m, argv[1], &err) != 0) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    xf_tokenizer *tok = m.tokenizer_json ? xf_tokenizer_load(m.tokenizer_json,
                                                             m.tokenizer_config_json, argv[1], &err)
                                         : NULL;
    char *text;
    size_t len;
    int32_t *ids;
    size_t n;
    if (!tok || xf_read_file(argv[2], &text, &len, &err) != 0) {
        fprintf(stderr, "%s\n", tok ? err.msg : "no tokenizer");
        return 1;
    }
    len = xf_text_universal_newlines(text, len);
    if (xf_tokenizer_encode(tok, text, len, true, &ids, &n, &err) != 0) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    for (size_t i = 0; i < n; i++)
        printf("%d\n", ids[i]);
    free(ids);
    free(text);
    xf_tokenizer_free(tok);
    xf_model_close(&m);
    return 0;
}
