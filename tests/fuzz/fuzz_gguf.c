/* libFuzzer harness: a GGUF file opened as `xfquant info` opens it
 * (formats/gguf.h: header, every key/value read through the typed getters,
 * tensor infos, offsets; every tensor's blocks converted to fp32 by
 * formats/ggml_dequant.c, the config and tokenizer equivalents of
 * model/gguf_config.c and model/gguf_vocab.c) and as every model command
 * opens it (model/loader.h on a .gguf: config parse, tensors renamed,
 * Q/K rows unpermuted, weight binding; the tokenizer it yields loaded and
 * encoding / decoding a short text).
 *
 * Work per input is bounded: tensors are converted only while the fp32
 * total stays under XF_FUZZ_GGUF_MAX_FLOATS, and the loader runs only on
 * files whose tensors dequantize to at most that many floats (a real
 * refusal of big models is not the harness's job; one exec must stay
 * milliseconds). */
#include "calib/tokenizer.h"
#include "formats/ggml_dequant.h"
#include "formats/gguf.h"
#include "model/config.h"
#include "model/gguf_model.h"
#include "model/loader.h"
#include "tests/fuzz/fuzz_util.h"

/* fp32 elements the harness converts per input at most (16 MiB). */
#define XF_FUZZ_GGUF_MAX_FLOATS (4 << 20)

/* Every key read back through the getter its type calls for (and one
 * getter of another type, which must refuse in one line). */
static void walk_kvs(const xf_gguf_file *f)
{
    xf_error err = {0};
    for (size_t i = 0; i < f->n_kv; i++) {
        const xf_gguf_kv *kv = &f->kvs[i];
        uint64_t u;
        double d;
        bool b;
        xf_gguf_str s;
        const xf_gguf_kv *arr;
        if (xf_gguf_get_uint(f, kv->key, true, 0, &u, &err) != 0)
            xf_fuzz_check_error(&err, "xf_gguf_get_uint");
        if (xf_gguf_get_float(f, kv->key, true, 0, &d, &err) != 0)
            xf_fuzz_check_error(&err, "xf_gguf_get_float");
        if (xf_gguf_get_bool(f, kv->key, true, false, &b, &err) != 0)
            xf_fuzz_check_error(&err, "xf_gguf_get_bool");
        if (xf_gguf_get_str(f, kv->key, true, &s, &err) != 0)
            xf_fuzz_check_error(&err, "xf_gguf_get_str");
        if (xf_gguf_get_array(f, kv->key, true, kv->elem, &arr, &err) != 0)
            xf_fuzz_check_error(&err, "xf_gguf_get_array");
        else if (arr->n > 0 && (arr->elem == XF_GGUF_I32 || arr->elem == XF_GGUF_F32)) {
            (void)xf_gguf_arr_i32(arr, arr->n - 1);
            (void)xf_gguf_arr_f32(arr, 0);
        }
        (void)xf_gguf_vtype_name(kv->type);
    }
}

/* Every tensor's blocks to fp32 (from an aligned copy, as the model
 * loader does for unaligned files); returns the fp32 elements of all
 * tensors (saturating), converted or not. */
static uint64_t walk_tensors(const xf_gguf_file *f)
{
    uint64_t total = 0;
    for (size_t i = 0; i < f->n_tensors; i++) {
        const xf_gguf_tensor *t = &f->tensors[i];
        (void)xf_gguf_find_tensor(f, t->name);
        (void)xf_ggml_bits_per_weight(t->traits);
        int64_t params = 1; /* as xfquant info counts them: outermost dim first */
        for (uint32_t d = t->n_dims; d-- > 0;)
            params *= t->ne[d];
        (void)params;
        uint64_t n = (uint64_t)(t->nbytes / t->traits->type_size) * (uint64_t)t->traits->block_size;
        total = total + n < total ? UINT64_MAX : total + n;
        if (n == 0 || total > XF_FUZZ_GGUF_MAX_FLOATS)
            continue;
        void *src = malloc(t->nbytes);
        float *dst = malloc((size_t)n * sizeof *dst);
        xf_error err = {0};
        if (src && dst) {
            memcpy(src, t->data, t->nbytes);
            if (xf_ggml_dequant(t->traits, src, dst, (int64_t)n, t->name, &err) != 0)
                xf_fuzz_check_error(&err, "xf_ggml_dequant");
        }
        free(src);
        free(dst);
    }
    return total;
}

/* What `xfquant info` derives from the hyper-parameters and vocabulary. */
static void walk_model_json(const xf_gguf_file *f, const char *path)
{
    xf_error err = {0};
    json_t *config = xf_gguf_config_json(f, &err);
    if (!config) {
        xf_fuzz_check_error(&err, "xf_gguf_config_json");
        return;
    }
    xf_model_config cfg;
    if (xf_model_config_parse(&cfg, config, path, &err) != 0)
        xf_fuzz_check_error(&err, "xf_model_config_parse");
    json_t *tok = NULL, *tok_config = NULL;
    int64_t rows = json_integer_value(json_object_get(config, "vocab_size"));
    if (xf_gguf_tokenizer_json(f, rows, &tok, &tok_config, &err) != 0)
        xf_fuzz_check_error(&err, "xf_gguf_tokenizer_json");
    json_decref(tok);
    json_decref(tok_config);
    json_decref(config);
}

static void use_tokenizer(const xf_loaded_model *m)
{
    xf_error err = {0};
    xf_tokenizer *tok = xf_tokenizer_load(m->tokenizer_json, m->tokenizer_config_json, m->path, &err);
    if (!tok) {
        xf_fuzz_check_error(&err, "xf_tokenizer_load");
        return;
    }
    static const char text[] = "Once upon a time, 42 caf\xc3\xa9s\n";
    int32_t *ids = NULL;
    size_t n = 0;
    if (xf_tokenizer_encode(tok, text, sizeof text - 1, true, &ids, &n, &err) != 0)
        xf_fuzz_check_error(&err, "xf_tokenizer_encode");
    else {
        char *out = NULL;
        if (xf_tokenizer_decode(tok, ids, n, true, &out, NULL, &err) != 0)
            xf_fuzz_check_error(&err, "xf_tokenizer_decode");
        free(out);
    }
    free(ids);
    (void)xf_tokenizer_bos_id(tok);
    (void)xf_tokenizer_eos_id(tok);
    xf_tokenizer_free(tok);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char path[512];
    if (xf_fuzz_write_temp("gguf", ".gguf", data, size, path, sizeof path) != 0)
        return 0;
    (void)xf_path_is_gguf(path);
    xf_gguf_file f;
    xf_error err = {0};
    uint64_t floats = UINT64_MAX;
    if (xf_gguf_open(&f, path, &err) == 0) {
        walk_kvs(&f);
        floats = walk_tensors(&f);
        walk_model_json(&f, path);
        xf_gguf_close(&f);
    } else
        xf_fuzz_check_error(&err, "xf_gguf_open");
    if (floats <= XF_FUZZ_GGUF_MAX_FLOATS) {
        xf_loaded_model m;
        if (xf_model_open(&m, path, &err) == 0) {
            if (m.tokenizer_json)
                use_tokenizer(&m);
            xf_model_close(&m);
        } else
            xf_fuzz_check_error(&err, "xf_model_open");
    }
    unlink(path);
    return 0;
}
