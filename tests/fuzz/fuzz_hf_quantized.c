/* libFuzzer harness: a quantized Hugging Face checkpoint directory (GPTQ
 * or compressed-tensors, formats/hf_quantized.h: gptq_read.c, ct_read.c)
 * opened as `xfquant info` opens it (xf_hf_open, then
 * xf_hf_quantized_open and its summary) and as the model commands open it
 * (model/loader.h: config, dequantized linears, weight binding), every
 * tensor of the resulting set converted to fp32.
 *
 * Input: a 4-byte little-endian length L, L bytes of config.json, the rest
 * model.safetensors; both are written into a per-process directory (tmpfs
 * when /dev/shm exists). No tokenizer is written: the readers under test
 * do not touch it. */
#include <sys/stat.h>

#include "formats/hf_model.h"
#include "formats/hf_quantized.h"
#include "model/loader.h"
#include "tests/fuzz/fuzz_tensors.h"
#include "tests/fuzz/fuzz_util.h"

#define HARNESS "hf_quantized"

static void walk_set(const xf_tensor_set *set)
{
    for (size_t i = 0; i < set->n; i++) {
        (void)xf_tensor_set_find(set, set->items[i].name);
        xf_fuzz_convert_tensor(&set->items[i]);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 4)
        return 0;
    uint32_t clen = (uint32_t)data[0] | (uint32_t)data[1] << 8 | (uint32_t)data[2] << 16 |
                    (uint32_t)data[3] << 24;
    data += 4;
    size -= 4;
    if (clen > size)
        clen = (uint32_t)size;
    /* the directory xf_fuzz_write_temp's names put the two files in */
    char dir[512], cfg_path[600], st_path[600];
    if (xf_fuzz_write_temp(HARNESS, "", NULL, 0, dir, sizeof dir) != 0)
        return 0;
    unlink(dir);
    if (mkdir(dir, 0700) != 0 && access(dir, W_OK) != 0)
        return 0;
    if (xf_fuzz_write_temp(HARNESS, "/config.json", data, clen, cfg_path, sizeof cfg_path) != 0 ||
        xf_fuzz_write_temp(HARNESS, "/model.safetensors", data + clen, size - clen, st_path,
                           sizeof st_path) != 0) {
        unlink(cfg_path);
        rmdir(dir);
        return 0;
    }

    xf_error err = {0};
    xf_hf_model hf;
    if (xf_hf_open(&hf, dir, &err) == 0) {
        xf_hf_quantized q;
        bool gpt2 = false;
        const char *mt = json_string_value(json_object_get(hf.config, "model_type"));
        gpt2 = mt && strcmp(mt, "gpt2") == 0;
        (void)xf_hf_quant_method(hf.config);
        if (xf_hf_quantized_open(&q, &hf, gpt2, &err) == 0) {
            char *s = json_dumps(q.info, JSON_SORT_KEYS | JSON_COMPACT);
            free(s);
            walk_set(&q.tensors);
            xf_hf_quantized_close(&q);
        } else
            xf_fuzz_check_error(&err, "xf_hf_quantized_open");
        xf_hf_close(&hf);
    } else
        xf_fuzz_check_error(&err, "xf_hf_open");

    xf_loaded_model m;
    if (xf_model_open(&m, dir, &err) == 0)
        xf_model_close(&m);
    else
        xf_fuzz_check_error(&err, "xf_model_open");

    unlink(cfg_path);
    unlink(st_path);
    rmdir(dir);
    return 0;
}
