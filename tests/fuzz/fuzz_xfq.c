/* libFuzzer harness: an .xfq file opened as `xfquant info` opens it
 * (formats/xfq.h: header, metadata, table, names, data CRCs, packed
 * grids, outlier tables; then the summaries info prints and the config it
 * describes) and as every model command opens it (model/loader.h: config,
 * weight binding, online-transform check; the recipe's activation scheme
 * and online transforms; the embedded tokenizer, encoding one text), and
 * every accepted tensor dequantized.
 *
 * The CRCs are recomputed over the mutated input before it is written
 * (when the header's layout fields allow it), so that the fuzzer reaches
 * the checks behind them; the CRC comparisons themselves are exercised by
 * inputs whose layout the fix-up cannot follow. */
#include "calib/tokenizer.h"
#include "eval/model_scorer.h"
#include "formats/xfq.h"
#include "formats/xfq_check.h"
#include "formats/xfq_outliers.h"
#include "model/config.h"
#include "model/loader.h"
#include "sim/online.h"
#include "tests/fuzz/fuzz_tensors.h"
#include "tests/fuzz/fuzz_util.h"

/* Recomputes header and tensor CRCs in place where the layout is readable. */
static void fix_crcs(uint8_t *buf, size_t size)
{
    xfq_file_header h;
    if (size < sizeof h)
        return;
    memcpy(&h, buf, sizeof h);
    uint64_t table_bytes = (uint64_t)h.n_tensors * sizeof(xfq_tensor_record);
    if (h.meta_offset > size || h.meta_size > size - h.meta_offset || h.table_offset > size ||
        table_bytes > size - h.table_offset || h.names_size > size - h.table_offset - table_bytes)
        return;
    uint32_t crc = xfq_crc32(0, buf + h.meta_offset, (size_t)h.meta_size);
    crc = xfq_crc32(crc, buf + h.table_offset, (size_t)table_bytes);
    crc = xfq_crc32(crc, buf + h.table_offset + table_bytes, h.names_size);
    h.header_crc = crc;
    memcpy(buf, &h, sizeof h);
    if (h.data_offset > size)
        return;
    for (uint32_t i = 0; i < h.n_tensors; i++) {
        xfq_tensor_record r;
        uint8_t *rp = buf + h.table_offset + (size_t)i * sizeof r;
        memcpy(&r, rp, sizeof r);
        uint64_t data_size = size - h.data_offset;
        if (r.offset > data_size || r.nbytes > data_size - r.offset)
            continue;
        r.crc32 = xfq_crc32(0, buf + h.data_offset + r.offset, (size_t)r.nbytes);
        memcpy(rp, &r, sizeof r);
    }
    /* the table changed: the header CRC covers it */
    crc = xfq_crc32(0, buf + h.meta_offset, (size_t)h.meta_size);
    crc = xfq_crc32(crc, buf + h.table_offset, (size_t)table_bytes);
    crc = xfq_crc32(crc, buf + h.table_offset + table_bytes, h.names_size);
    h.header_crc = crc;
    memcpy(buf, &h, sizeof h);
}

/* What cli/cmd_info.c computes from an open file. */
static void info_checks(const xfq_file *f, const char *path)
{
    const xf_tensor_set *set = &f->tensors;
    for (size_t i = 0; i < set->n; i++) {
        const xf_tensor *t = &set->items[i];
        size_t wlen;
        if (xfq_outliers_parse_name(t->name, &wlen) == 0)
            (void)xf_tensor_set_find(set, t->name);
        if (xf_dtype_is_packed(t->dtype)) {
            xf_sparse_outliers ol = {0};
            xfq_outliers_find(set, t->name, &ol);
            (void)xfq_outliers_bytes(&ol);
            (void)xfq_outliers_nnz(&ol);
        }
        xf_fuzz_convert_tensor(t);
    }
    (void)xfq_packed_bits_per_weight(set);
    (void)xfq_all_bits_per_weight(set);
    const json_t *config = json_object_get(f->meta, "config");
    if (json_is_object(config)) {
        xf_model_config cfg;
        xf_error err = {0};
        if (xf_model_config_parse(&cfg, config, path, &err) != 0)
            xf_fuzz_check_error(&err, path);
    }
    char *s = json_dumps(json_object_get(f->meta, "recipe"), JSON_SORT_KEYS | JSON_COMPACT);
    free(s);
}

/* What the model commands do after xf_model_open. */
static void loader_checks(const xf_loaded_model *m)
{
    xf_error err = {0};
    xf_act_scheme s;
    if (xf_model_act_scheme(m, &s, &err) != 0)
        xf_fuzz_check_error(&err, m->path);
    xf_online_transforms o;
    const json_t *arr = json_object_get(json_object_get(m->xfq.meta, "recipe"), "online_transforms");
    if (xf_online_from_json(&o, arr, &m->cfg, m->path, &err) == 0)
        xf_online_free(&o);
    else
        xf_fuzz_check_error(&err, m->path);
    if (m->tokenizer_json) {
        xf_tokenizer *tok =
            xf_tokenizer_load(m->tokenizer_json, m->tokenizer_config_json, m->path, &err);
        if (tok) {
            int32_t *ids = NULL;
            size_t n = 0;
            if (xf_tokenizer_encode(tok, "Once upon a time", 16, true, &ids, &n, &err) != 0)
                xf_fuzz_check_error(&err, m->path);
            free(ids);
            xf_tokenizer_free(tok);
        } else
            xf_fuzz_check_error(&err, m->path);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t *buf = malloc(size ? size : 1);
    if (!buf)
        return 0;
    memcpy(buf, data, size);
    fix_crcs(buf, size);
    char path[512];
    int wrote = xf_fuzz_write_temp("xfq", ".xfq", buf, size, path, sizeof path);
    free(buf);
    if (wrote != 0)
        return 0;
    xfq_file f;
    xf_error err = {0};
    if (xfq_open(&f, path, 0, &err) == 0) {
        info_checks(&f, path);
        xfq_close(&f);
        xf_loaded_model m;
        if (xf_model_open(&m, path, &err) == 0) {
            loader_checks(&m);
            xf_model_close(&m);
        } else
            xf_fuzz_check_error(&err, path);
    } else
        xf_fuzz_check_error(&err, path);
    unlink(path);
    return 0;
}
