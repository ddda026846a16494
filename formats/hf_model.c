/* Opening an HF model directory: config, tokenizer files and the
 * safetensors weights (single file or index + shards, cross-checked). */
#include "formats/hf_model.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "core/json_util.h"
#include "core/read_file.h"

#define INDEX_NAME "model.safetensors.index.json"
#define SINGLE_NAME "model.safetensors"

static bool ends_with(const char *s, const char *suffix)
{
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && strcmp(s + a - b, suffix) == 0;
}

/* "a/b/c.safetensors" -> dir "a/b", base "c.safetensors"; "c.safetensors" -> ".". */
static int split_path(const char *path, char **dir, const char **base)
{
    const char *slash = strrchr(path, '/');
    if (!slash) {
        *dir = strdup(".");
        *base = path;
    } else {
        size_t n = slash == path ? 1 : (size_t)(slash - path);
        *dir = strndup(path, n);
        *base = slash + 1;
    }
    return *dir ? 0 : -1;
}

/* Loads dir/name into *out if the file exists (NULL otherwise). */
static int load_optional_json(const char *dir, const char *name, json_t **out, xf_error *err)
{
    *out = NULL;
    char *p = xf_path_join(dir, name);
    if (!p)
        return xf_fail(err, "%s: out of memory", dir);
    int rc = 0;
    if (xf_path_exists(p)) {
        *out = xf_json_load_file(p, err);
        if (!*out)
            rc = -1;
    }
    free(p);
    return rc;
}

static int open_shard(xf_hf_model *m, const char *file, xf_error *err)
{
    char *p = xf_path_join(m->dir, file);
    if (!p)
        return xf_fail(err, "%s: out of memory", m->dir);
    int rc = xf_safetensors_open(&m->shards[m->n_shards], p, err);
    free(p);
    if (rc == 0)
        m->n_shards++;
    return rc;
}

/* Shard file names in an index must name files of the directory itself. */
static bool plain_file_name(const char *s)
{
    return *s && !strchr(s, '/') && strcmp(s, ".") != 0 && strcmp(s, "..") != 0;
}

/* Index of `file` among the distinct shard names, or -1. */
static long shard_index(const char **files, size_t n, const char *file)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(files[i], file) == 0)
            return (long)i;
    return -1;
}

/* Opens every distinct shard of the index's weight_map and checks both
 * directions: each mapped name is in its shard, each shard tensor is
 * mapped to that shard. */
static int open_index(xf_hf_model *m, const char *index_path, xf_error *err)
{
    json_t *index = xf_json_load_file(index_path, err);
    if (!index)
        return -1;
    int rc = -1;
    const char **files = NULL;
    const json_t *map = json_object_get(index, "weight_map");
    if (!json_is_object(map)) {
        xf_fail(err, "%s: missing object \"weight_map\"", index_path);
        goto out;
    }
    size_t n_entries = json_object_size(map);
    if (n_entries == 0) {
        xf_fail(err, "%s: empty weight_map", index_path);
        goto out;
    }
    files = malloc(n_entries * sizeof *files);
    if (!files) {
        xf_fail(err, "%s: out of memory", index_path);
        goto out;
    }
    size_t n_files = 0;
    const char *name;
    json_t *v;
    json_object_foreach((json_t *)map, name, v) {
        if (!json_is_string(v) || !plain_file_name(json_string_value(v))) {
            xf_fail(err, "%s: weight_map[\"%s\"] must be the file name of a shard in the same "
                         "directory",
                    index_path, name);
            goto out;
        }
        if (shard_index(files, n_files, json_string_value(v)) < 0)
            files[n_files++] = json_string_value(v);
    }
    m->shards = calloc(n_files, sizeof *m->shards);
    if (!m->shards) {
        xf_fail(err, "%s: out of memory", index_path);
        goto out;
    }
    for (size_t i = 0; i < n_files; i++)
        if (open_shard(m, files[i], err))
            goto out;

    json_object_foreach((json_t *)map, name, v) {
        long s = shard_index(files, n_files, json_string_value(v));
        if (!xf_safetensors_find(&m->shards[s], name)) {
            xf_fail(err, "%s: tensor \"%s\" is mapped to %s but that file does not contain it",
                    index_path, name, files[s]);
            goto out;
        }
    }
    for (size_t s = 0; s < n_files; s++) {
        for (size_t i = 0; i < m->shards[s].n_tensors; i++) {
            const char *tn = m->shards[s].tensors[i].name;
            const json_t *f = json_object_get(map, tn);
            if (!f) {
                xf_fail(err, "%s: tensor \"%s\" of %s is not listed in the weight_map",
                        index_path, tn, files[s]);
                goto out;
            }
            if (strcmp(json_string_value(f), files[s]) != 0) {
                xf_fail(err, "%s: tensor \"%s\" is stored in %s but mapped to %s", index_path, tn,
                        files[s], json_string_value(f));
                goto out;
            }
        }
    }
    rc = 0;
out:
    free(files);
    json_decref(index);
    return rc;
}

static int open_single(xf_hf_model *m, const char *file, xf_error *err)
{
    m->shards = calloc(1, sizeof *m->shards);
    if (!m->shards)
        return xf_fail(err, "%s: out of memory", m->dir);
    return open_shard(m, file, err);
}

/* Does the index list `file` as one of its shards? (Parse errors are left
 * for open_index to report.) */
static bool index_lists_shard(const char *index_path, const char *file)
{
    json_t *index = json_load_file(index_path, 0, NULL);
    bool found = false;
    const char *name;
    json_t *v;
    json_t *map = json_object_get(index, "weight_map");
    if (json_is_object(map))
        json_object_foreach(map, name, v) {
            if (json_is_string(v) && strcmp(json_string_value(v), file) == 0) {
                found = true;
                break;
            }
        }
    json_decref(index);
    return found;
}

static int union_tensors(xf_hf_model *m, xf_error *err)
{
    size_t total = 0;
    for (size_t s = 0; s < m->n_shards; s++)
        total += m->shards[s].n_tensors;
    if (total == 0)
        return xf_fail(err, "%s: the model has no tensors", m->dir);
    xf_tensor *all = malloc(total * sizeof *all);
    if (!all)
        return xf_fail(err, "%s: out of memory", m->dir);
    size_t k = 0;
    for (size_t s = 0; s < m->n_shards; s++)
        for (size_t i = 0; i < m->shards[s].n_tensors; i++)
            all[k++] = m->shards[s].tensors[i];
    int rc = xf_tensor_set_init(&m->tensors, all, total, m->dir, err);
    free(all);
    return rc;
}

static int open_weights(xf_hf_model *m, const char *file, xf_error *err)
{
    char *index_path = xf_path_join(m->dir, INDEX_NAME);
    if (!index_path)
        return xf_fail(err, "%s: out of memory", m->dir);
    bool has_index = xf_path_exists(index_path);
    int rc;
    if (file && !(has_index && index_lists_shard(index_path, file))) {
        rc = open_single(m, file, err);
    } else if (has_index) {
        rc = open_index(m, index_path, err);
    } else {
        char *single = xf_path_join(m->dir, SINGLE_NAME);
        if (!single) {
            free(index_path);
            return xf_fail(err, "%s: out of memory", m->dir);
        }
        bool has_single = xf_path_exists(single);
        free(single);
        if (has_single)
            rc = open_single(m, SINGLE_NAME, err);
        else
            rc = xf_fail(err,
                         "%s: no " SINGLE_NAME " or " INDEX_NAME " (pytorch_model.bin is not "
                         "supported: convert to safetensors)",
                         m->dir);
    }
    free(index_path);
    return rc;
}

int xf_hf_open(xf_hf_model *m, const char *path, xf_error *err)
{
    memset(m, 0, sizeof *m);
    const char *file = NULL; /* a .safetensors named by the caller */
    if (xf_path_is_dir(path)) {
        m->dir = strdup(path);
        if (!m->dir)
            return xf_fail(err, "%s: out of memory", path);
    } else if (!xf_path_exists(path)) {
        return xf_fail(err, "%s: no such file or directory", path);
    } else if (ends_with(path, ".safetensors")) {
        if (split_path(path, &m->dir, &file))
            return xf_fail(err, "%s: out of memory", path);
    } else {
        return xf_fail(err, "%s: not a model directory or a .safetensors file", path);
    }

    char *config_path = xf_path_join(m->dir, "config.json");
    if (!config_path) {
        xf_hf_close(m);
        return xf_fail(err, "%s: out of memory", path);
    }
    int rc = 0;
    if (!xf_path_exists(config_path)) {
        rc = xf_fail(err, "%s: no config.json", m->dir);
    } else {
        m->config = xf_json_load_file(config_path, err);
        if (!m->config)
            rc = -1;
        else if (!json_is_object(m->config))
            rc = xf_fail(err, "%s: not a JSON object", config_path);
    }
    free(config_path);
    if (rc == 0)
        rc = load_optional_json(m->dir, "tokenizer.json", &m->tokenizer, err);
    if (rc == 0)
        rc = load_optional_json(m->dir, "tokenizer_config.json", &m->tokenizer_config, err);
    if (rc == 0)
        rc = open_weights(m, file, err);
    if (rc == 0)
        rc = union_tensors(m, err);
    if (rc)
        xf_hf_close(m);
    return rc;
}

void xf_hf_close(xf_hf_model *m)
{
    xf_tensor_set_free(&m->tensors);
    for (size_t i = 0; i < m->n_shards; i++)
        xf_safetensors_close(&m->shards[i]);
    free(m->shards);
    json_decref(m->config);
    json_decref(m->tokenizer);
    json_decref(m->tokenizer_config);
    free(m->dir);
    memset(m, 0, sizeof *m);
}
