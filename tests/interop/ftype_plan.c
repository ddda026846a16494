/* ftype_plan, for tests/interop/gguf_ftype.sh:
 *   ftype_plan plan IN.gguf FTYPE [imatrix]
 *     the type export/gguf_ftype.h plans for each tensor of IN (an F16/F32
 *     GGUF, as llama-quantize's input), one "NAME TYPE" line each, then
 *     "file_type N" (xf_gguf_ftype_llama_id) and "data_bytes N" (what the
 *     tensors take in a file llama-quantize writes: each padded to the
 *     alignment); exit 1 with the plan's one-line error on stderr when the
 *     plan refuses IN.
 *   ftype_plan types OUT.gguf
 *     the same lines read from a GGUF file (llama-quantize's output):
 *     each tensor's type, general.file_type, and the file's size minus the
 *     data section's offset.
 * Types are printed as ggml names ("q4_K", "f16"). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "export/gguf_ftype.h"
#include "formats/ggml_types.h"
#include "formats/gguf.h"

static uint64_t pad(uint64_t n, uint64_t a)
{
    return (n + a - 1) / a * a;
}

static int get_int(const xf_gguf_file *f, const char *arch, const char *key, bool required,
                   int *out, xf_error *err)
{
    char k[128];
    uint64_t v;
    snprintf(k, sizeof k, "%s.%s", arch, key);
    if (xf_gguf_get_uint(f, k, required, 0, &v, err) != 0)
        return -1;
    *out = (int)v;
    return 0;
}

static int plan(const char *path, const char *ft_name, bool imatrix)
{
    xf_gguf_file f;
    xf_error err = {{0}};
    xf_gguf_ftype ft;
    if (xf_gguf_ftype_from_name(ft_name, &ft) != 0) {
        fprintf(stderr, "ftype_plan: unknown file type %s\n", ft_name);
        return 2;
    }
    if (xf_gguf_open(&f, path, &err) != 0) {
        fprintf(stderr, "%s\n", err.msg);
        return 2;
    }
    int rc = 2;
    xf_gguf_str a;
    char arch[64] = "";
    xf_gguf_model_desc m = {.imatrix = imatrix};
    xf_gguf_tensor_desc *t = calloc(f.n_tensors + 1, sizeof *t);
    uint32_t *types = calloc(f.n_tensors + 1, sizeof *types);
    if (!t || !types)
        goto out;
    if (xf_gguf_get_str(&f, "general.architecture", true, &a, &err) != 0)
        goto fail;
    snprintf(arch, sizeof arch, "%.*s", (int)a.len, a.ptr);
    if (xf_gguf_arch_from_name(arch, &m.arch) != 0) {
        fprintf(stderr, "%s: architecture %s is not planned\n", path, arch);
        goto out;
    }
    if (get_int(&f, arch, "block_count", true, &m.n_layer, &err) != 0 ||
        get_int(&f, arch, "attention.head_count", true, &m.n_head, &err) != 0 ||
        get_int(&f, arch, "attention.head_count_kv", false, &m.n_head_kv, &err) != 0)
        goto fail;
    for (size_t i = 0; i < f.n_tensors; i++) {
        const xf_gguf_tensor *g = &f.tensors[i];
        t[i] = (xf_gguf_tensor_desc){.name = g->name, .ndim = (int)g->n_dims,
                                     .type = g->traits->type};
        memcpy(t[i].ne, g->ne, sizeof t[i].ne);
    }
    if (xf_gguf_ftype_plan(ft, &m, t, f.n_tensors, types, &err) != 0) {
        rc = 1;
        goto fail;
    }
    uint64_t bytes = 0;
    for (size_t i = 0; i < f.n_tensors; i++) {
        const xf_gguf_tensor *g = &f.tensors[i];
        const xf_ggml_type_traits *tt = xf_ggml_traits(types[i]);
        const size_t row = xf_ggml_row_bytes(tt, g->ne[0]);
        if (!row) {
            fprintf(stderr, "%s: planned type %u for %s has no row size\n", path, types[i],
                    g->name);
            goto out;
        }
        bytes += pad((uint64_t)row * (uint64_t)(g->ne[1] * g->ne[2] * g->ne[3]), f.alignment);
        printf("%s %s\n", g->name, tt->name);
    }
    printf("file_type %u\ndata_bytes %llu\n", xf_gguf_ftype_llama_id(ft),
           (unsigned long long)bytes);
    rc = 0;
    goto out;
fail:
    fprintf(stderr, "%s\n", err.msg);
out:
    free(t);
    free(types);
    xf_gguf_close(&f);
    return rc;
}

static int types(const char *path)
{
    xf_gguf_file f;
    xf_error err = {{0}};
    struct stat st;
    uint64_t ft;
    if (stat(path, &st) != 0 || xf_gguf_open(&f, path, &err) != 0) {
        fprintf(stderr, "%s: %s\n", path, err.msg[0] ? err.msg : "cannot stat");
        return 2;
    }
    if (xf_gguf_get_uint(&f, "general.file_type", true, 0, &ft, &err) != 0) {
        fprintf(stderr, "%s\n", err.msg);
        xf_gguf_close(&f);
        return 2;
    }
    for (size_t i = 0; i < f.n_tensors; i++)
        printf("%s %s\n", f.tensors[i].name, f.tensors[i].traits->name);
    printf("file_type %llu\ndata_bytes %llu\n", (unsigned long long)ft,
           (unsigned long long)((uint64_t)st.st_size - f.data_offset));
    xf_gguf_close(&f);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc >= 4 && argc <= 5 && !strcmp(argv[1], "plan") &&
        (argc == 4 || !strcmp(argv[4], "imatrix")))
        return plan(argv[2], argv[3], argc == 5);
    if (argc == 3 && !strcmp(argv[1], "types"))
        return types(argv[2]);
    fprintf(stderr, "usage: ftype_plan plan IN.gguf FTYPE [imatrix] | ftype_plan types OUT.gguf\n");
    return 2;
}
