/* ggml_dequant_check FILE.gguf...: for every tensor of each file, ggml's
 * own fp32 conversion (ggml_get_type_traits(type)->to_float, libggml-base
 * of the llama.cpp build) against xfquant's (formats/ggml_dequant.h) on
 * the same bytes, and ggml's GGUF reader against xfquant's (type, offset,
 * size). Prints one line per file; exit 1 on any difference. Compiled by
 * interop_read.sh against the llama.cpp build (not part of the meson
 * build, which does not depend on llama.cpp). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ggml.h"
#include "gguf.h"

#include "formats/ggml_dequant.h"
#include "formats/gguf.h"

static int check_file(const char *path)
{
    struct ggml_context *meta = NULL;
    struct gguf_init_params gp = {.no_alloc = true, .ctx = &meta};
    struct gguf_context *g = gguf_init_from_file(path, gp);
    if (!g) {
        printf("%s: ggml's gguf_init_from_file refuses the file\n", path);
        return 1;
    }
    xf_gguf_file f;
    xf_error err = {0};
    if (xf_gguf_open(&f, path, &err) != 0) {
        printf("%s: xfquant: %s\n", path, err.msg);
        return 1;
    }
    int bad = 0;
    long long n_el = 0, n_diff = 0;
    int64_t nt = gguf_get_n_tensors(g);
    char types[512] = "";
    int count[64] = {0};
    if ((size_t)nt != f.n_tensors || gguf_get_data_offset(g) != f.data_offset) {
        printf("%s: ggml reads %lld tensors from %zu, xfquant %zu from %llu\n", path,
               (long long)nt, gguf_get_data_offset(g), f.n_tensors,
               (unsigned long long)f.data_offset);
        bad = 1;
    }
    for (int64_t i = 0; i < nt && !bad; i++) {
        const char *name = gguf_get_tensor_name(g, i);
        enum ggml_type type = gguf_get_tensor_type(g, i);
        const xf_gguf_tensor *t = xf_gguf_find_tensor(&f, name);
        struct ggml_tensor *gt = ggml_get_tensor(meta, name);
        if (!t || !gt || (uint32_t)type != (uint32_t)t->traits->type ||
            gguf_get_tensor_offset(g, i) != t->offset || gguf_get_tensor_size(g, i) != t->nbytes) {
            printf("%s: tensor %s: ggml and xfquant disagree on type/offset/size\n", path, name);
            bad = 1;
            break;
        }
        int64_t n = ggml_nelements(gt);
        float *a = malloc((size_t)n * sizeof *a), *b = malloc((size_t)n * sizeof *b);
        const struct ggml_type_traits *tr = ggml_get_type_traits(type);
        if (type == GGML_TYPE_F32)
            memcpy(a, t->data, (size_t)n * 4);
        else
            tr->to_float(t->data, a, n);
        if (xf_ggml_dequant(t->traits, t->data, b, n, name, &err) != 0) {
            printf("%s: %s\n", path, err.msg);
            bad = 1;
        }
        for (int64_t k = 0; k < n; k++)
            if (memcmp(&a[k], &b[k], 4) != 0)
                n_diff++;
        n_el += n;
        if (type < 64)
            count[type]++;
        free(a);
        free(b);
    }
    for (int ty = 0; ty < 64; ty++)
        if (count[ty]) {
            char part[64];
            snprintf(part, sizeof part, "%s%s x%d", types[0] ? ", " : "",
                     ggml_type_name((enum ggml_type)ty), count[ty]);
            strncat(types, part, sizeof types - strlen(types) - 1);
        }
    printf("%s: %lld tensors (%s), %lld elements, %lld differ from ggml's to_float\n", path,
           (long long)nt, types, n_el, n_diff);
    xf_gguf_close(&f);
    gguf_free(g);
    ggml_free(meta);
    return bad || n_diff ? 1 : 0;
}

int main(int argc, char **argv)
{
    int rc = 0;
    for (int i = 1; i < argc; i++)
        rc |= check_file(argv[i]);
    return rc;
}
