/* tok_ids MODEL_DIR TEXT: the token ids xfquant's tokenizer gives TEXT (read
 * in text mode, special tokens added, as `xfquant ppl` encodes it), one per
 * line — for the interop suite to compare with llama-tokenize on the GGUF
 * export of the same model. */
#include <stdio.h>
#include <stdlib.h>

#include "calib/tokenizer.h"
#include "core/json_util.h"
#include "core/read_file.h"

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: tok_ids MODEL_DIR TEXT\n");
        return 2;
    }
    xf_error err = {0};
    char *tp = xf_path_join(argv[1], "tokenizer.json");
    char *cp = xf_path_join(argv[1], "tokenizer_config.json");
    json_t *tj = tp ? xf_json_load_file(tp, &err) : NULL;
    json_t *tc = cp && xf_path_exists(cp) ? xf_json_load_file(cp, &err) : NULL;
    xf_tokenizer *tok = tj ? xf_tokenizer_load(tj, tc, argv[1], &err) : NULL;
    char *text = NULL;
    size_t n = 0;
    int32_t *ids = NULL;
    size_t k = 0;
    int rc = 1;
    if (tok && xf_read_file(argv[2], &text, &n, &err) == 0) {
        n = xf_text_universal_newlines(text, n);
        if (xf_tokenizer_encode(tok, text, n, true, &ids, &k, &err) == 0) {
            for (size_t i = 0; i < k; i++)
                printf("%d\n", ids[i]);
            rc = 0;
        }
    }
    if (rc)
        fprintf(stderr, "tok_ids: %s\n", err.msg);
    free(ids);
    free(text);
    xf_tokenizer_free(tok);
    json_decref(tj);
    json_decref(tc);
    free(tp);
    free(cp);
    return rc;
}
