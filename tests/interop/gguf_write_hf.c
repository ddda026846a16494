/* gguf_write_hf HF_DIR OUT.gguf f32|f16: the interop-read suite's GGUF of a
 * shared model, written by the tests' own writer (tests/support/
 * gguf_from_hf.h; llama.cpp's Python converter needs numpy, which the test
 * machines lack), tokenizer included. */
#include <stdio.h>
#include <string.h>

#include "tests/support/gguf_from_hf.h"

int main(int argc, char **argv)
{
    if (argc != 4 || (strcmp(argv[3], "f32") != 0 && strcmp(argv[3], "f16") != 0)) {
        fprintf(stderr, "usage: gguf_write_hf HF_DIR OUT.gguf f32|f16\n");
        return 2;
    }
    xf_gguf_from_hf_opts o = {.matrix_type = strcmp(argv[3], "f16") == 0 ? 1 : 0,
                              .tokenizer = true};
    return xf_gguf_from_hf(argv[1], argv[2], &o) == 0 ? 0 : 1;
}
