/* GPTQ checkpoints (gptq_checkpoint.h). */
#include "pipeline/gptq_checkpoint.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/log.h"
#include "core/sha256.h"
#include "formats/xfq.h"
#include "pipeline/recipe_options.h"

#define CHECKPOINT_VERSION 1
#define STREAM_FILE "stream.xfq"
#define STREAM_Q "stream.q"
#define STREAM_FP "stream.fp"
/* the first bytes of each tensor that enter the fingerprint: enough to
 * tell two checkpoints' models apart without reading gigabytes */
#define SAMPLE_BYTES 64

/* A growing byte string: what the fingerprint hashes. */
typedef struct bytes {
    unsigned char *p;
    size_t n, cap;
    bool oom;
} bytes;

static void put(bytes *b, const void *data, size_t n)
{
    if (b->oom)
        return;
    if (b->n + n > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->n + n)
            cap *= 2;
        unsigned char *np = realloc(b->p, cap);
        if (!np) {
            b->oom = true;
            return;
        }
        b->p = np;
        b->cap = cap;
    }
    memcpy(b->p + b->n, data, n);
    b->n += n;
}

static void put_json(bytes *b, const json_t *j)
{
    char *s = j ? json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY) : NULL;
    if (!s) {
        b->oom = b->oom || j != NULL;
        return;
    }
    put(b, s, strlen(s) + 1);
    free(s);
}

static int fingerprint(const xf_loaded_model *m, const xf_quant_options *o,
                       const xf_calib_set *cs, char hex[65], xf_error *err)
{
    bytes b = {0};
    static const char tag[] = "xfquant gptq checkpoint v1";
    put(&b, tag, sizeof tag);
    json_t *opts = xf_quant_options_to_json(o);
    put_json(&b, opts);
    json_decref(opts);
    put_json(&b, m->config_json);
    for (size_t i = 0; i < m->tensors->n; i++) {
        const xf_tensor *t = &m->tensors->items[i];
        put(&b, t->name, strlen(t->name) + 1);
        const int64_t head[3] = {(int64_t)t->dtype, t->ndim, (int64_t)t->nbytes};
        put(&b, head, sizeof head);
        put(&b, t->shape, (size_t)t->ndim * sizeof t->shape[0]);
        put(&b, t->data, t->nbytes < SAMPLE_BYTES ? t->nbytes : SAMPLE_BYTES);
    }
    const int64_t shape[2] = {cs->nsamples, cs->seqlen};
    put(&b, shape, sizeof shape);
    put(&b, cs->tokens, (size_t)(cs->nsamples * cs->seqlen) * sizeof *cs->tokens);
    if (b.oom) {
        free(b.p);
        return xf_fail(err, "%s: out of memory for the checkpoint fingerprint", m->path);
    }
    xf_sha256_hex(b.p, b.n, hex);
    free(b.p);
    return 0;
}

int xf_gptq_checkpoint_init(xf_gptq_checkpoint *c, const char *dir, const xf_loaded_model *m,
                            const xf_quant_options *o, const xf_calib_set *cs, xf_error *err)
{
    memset(c, 0, sizeof *c);
    if (mkdir(dir, 0777) != 0 && errno != EEXIST)
        return xf_fail(err, "%s: cannot create the checkpoint directory: %s", dir,
                       strerror(errno));
    struct stat st;
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode))
        return xf_fail(err, "%s: exists and is not a directory (the checkpoint goes there)", dir);
    if (!(c->dir = strdup(dir)))
        return xf_fail(err, "%s: out of memory", dir);
    if (fingerprint(m, o, cs, c->fingerprint, err) != 0) {
        xf_gptq_checkpoint_free(c);
        return -1;
    }
    return 0;
}

void xf_gptq_checkpoint_free(xf_gptq_checkpoint *c)
{
    free(c->dir);
    memset(c, 0, sizeof *c);
}

/* DIR/NAME, malloc'd (NULL: out of memory). */
static char *path_in(const char *dir, const char *name)
{
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = malloc(n);
    if (p)
        snprintf(p, n, "%s/%s", dir, name);
    return p;
}

static char *block_path(const char *dir, int block)
{
    char name[32];
    snprintf(name, sizeof name, "block-%05d.xfq", block);
    return path_in(dir, name);
}

bool xf_gptq_checkpoint_present(const char *dir)
{
    char *p = path_in(dir, STREAM_FILE);
    bool yes = p && access(p, F_OK) == 0;
    free(p);
    return yes;
}

static json_t *meta_for(const xf_gptq_checkpoint *c, const char *key, int value)
{
    json_t *ck = json_pack("{s:i, s:s, s:i}", "version", CHECKPOINT_VERSION, "fingerprint",
                           c->fingerprint, key, value);
    return ck ? json_pack("{s:o}", "checkpoint", ck) : NULL;
}

static int save_block(const xf_gptq_checkpoint *c, int block, const xf_quant_collector *col,
                      size_t first, xf_error *err)
{
    size_t cap = 4 * (col->n - first) + 1, n = 0;
    xfq_write_tensor *list = calloc(cap, sizeof *list);
    json_t *meta = meta_for(c, "block", block), *stats = json_object();
    char *path = block_path(c->dir, block);
    int rc = 0;
    if (!list || !meta || !stats || !path) {
        rc = xf_fail(err, "%s: out of memory", c->dir);
        goto out;
    }
    for (size_t i = first; i < col->n; i++) {
        const xf_qweight_packed *p = &col->items[i];
        list[n++] = p->tensor;
        for (int k = 0; k < p->n_side; k++)
            list[n++] = p->side[k];
        json_t *s = json_object_get(col->stats, p->name);
        if (s)
            json_object_set(stats, p->name, s);
    }
    json_object_set(meta, "tensor_stats", stats);
    rc = xfq_write(path, meta, list, n, err);
out:
    free(list);
    free(path);
    json_decref(meta);
    json_decref(stats);
    return rc;
}

/* Hidden states [ns, T, hidden] as one F32 tensor. */
static xfq_write_tensor states_tensor(const float *h, int64_t ns, int64_t T, int64_t hidden,
                                      const char *name)
{
    xfq_write_tensor t = {.name = name, .dtype = XF_DTYPE_F32, .ndim = 3};
    t.shape[0] = ns;
    t.shape[1] = T;
    t.shape[2] = hidden;
    t.data = h;
    t.nbytes = (size_t)(ns * T * hidden) * sizeof(float);
    return t;
}

int xf_gptq_checkpoint_save_states(const xf_gptq_checkpoint *c, int block,
                                   const xf_quant_collector *col, size_t first, const float *hq,
                                   const float *hfp, int64_t ns, int64_t T, int64_t hidden,
                                   xf_error *err)
{
    if (save_block(c, block, col, first, err) != 0)
        return -1;
    xfq_write_tensor t[2] = {states_tensor(hq, ns, T, hidden, STREAM_Q)};
    if (hfp)
        t[1] = states_tensor(hfp, ns, T, hidden, STREAM_FP);
    json_t *meta = meta_for(c, "next_block", block + 1);
    char *path = path_in(c->dir, STREAM_FILE);
    int rc = meta && path ? xfq_write(path, meta, t, hfp ? 2 : 1, err)
                          : xf_fail(err, "%s: out of memory", c->dir);
    json_decref(meta);
    free(path);
    return rc;
}

int xf_gptq_checkpoint_save(const xf_gptq_checkpoint *c, int block, const xf_quant_collector *col,
                            size_t first, const xf_block_stream *q, const xf_block_stream *fp,
                            xf_error *err)
{
    int rc = xf_gptq_checkpoint_save_states(c, block, col, first, xf_block_stream_hidden(q, 0),
                                            fp ? xf_block_stream_hidden(fp, 0) : NULL, q->ns,
                                            q->T, q->hidden, err);
    /* writing read every page of a spilled stream: let them go again */
    xf_state_buffer_release(&q->h_buf, 0, (size_t)(q->ns * q->T * q->hidden));
    if (fp)
        xf_state_buffer_release(&fp->h_buf, 0, (size_t)(fp->ns * fp->T * fp->hidden));
    return rc;
}

/* Opens one checkpoint file and checks that it belongs to this run. */
static int open_checked(const xf_gptq_checkpoint *c, const char *path, const char *key,
                        xfq_file *f, int *value, xf_error *err)
{
    if (xfq_open(f, path, 0, err) != 0)
        return -1;
    json_t *ck = json_object_get(f->meta, "checkpoint");
    const char *fp = json_string_value(json_object_get(ck, "fingerprint"));
    json_t *v = json_object_get(ck, key);
    int rc = 0;
    if (json_integer_value(json_object_get(ck, "version")) != CHECKPOINT_VERSION ||
        !json_is_integer(v))
        rc = xf_fail(err, "%s: not an xfquant gptq checkpoint of version %d", path,
                     CHECKPOINT_VERSION);
    else if (!fp || strcmp(fp, c->fingerprint) != 0)
        rc = xf_fail(err, "%s: checkpoint of a different run (the model, the recipe or the "
                          "calibration text differ); remove %s or run without --resume",
                     path, c->dir);
    else
        *value = (int)json_integer_value(v);
    if (rc != 0)
        xfq_close(f);
    return rc;
}

static int load_block(const xf_gptq_checkpoint *c, int block, xf_quant_collector *col,
                      xf_error *err)
{
    char *path = block_path(c->dir, block);
    if (!path)
        return xf_fail(err, "%s: out of memory", c->dir);
    xfq_file f;
    int got = -1;
    int rc = open_checked(c, path, "block", &f, &got, err);
    if (rc == 0 && got != block) {
        rc = xf_fail(err, "%s: holds block %d, not %d", path, got, block);
        xfq_close(&f);
    }
    if (rc != 0) {
        free(path);
        return -1;
    }
    json_t *stats = json_object_get(f.meta, "tensor_stats");
    for (size_t i = 0; i < f.tensors.n && rc == 0; i++) {
        const xf_tensor *t = &f.tensors.items[i];
        size_t wlen;
        if (xfq_outliers_parse_name(t->name, &wlen) >= 0)
            continue; /* a side table: copied with its weight */
        xf_sparse_outliers so;
        xfq_outliers_find(&f.tensors, t->name, &so);
        json_t *s = json_object_get(stats, t->name);
        rc = xf_quant_collector_add_copy(col, t, &so, s ? json_deep_copy(s) : NULL, err);
    }
    xfq_close(&f);
    free(path);
    return rc;
}

/* The hidden states `name` [ns, T, hidden] of f: into dst, or (dst
 * NULL) into stream bs restored at block next. */
static int restore_states(const xfq_file *f, const char *path, const char *name, int64_t ns,
                          int64_t T, int64_t hidden, float *dst, xf_block_stream *bs, int next,
                          xf_error *err)
{
    const xf_tensor *t = xf_tensor_set_find(&f->tensors, name);
    if (!t || t->dtype != XF_DTYPE_F32 || t->ndim != 3 || t->shape[0] != ns || t->shape[1] != T ||
        t->shape[2] != hidden)
        return xf_fail(err, "%s: no F32 tensor %s [%lld, %lld, %lld]", path, name, (long long)ns,
                       (long long)T, (long long)hidden);
    if (!dst)
        return xf_block_stream_restore(bs, next, t->data, err);
    memcpy(dst, t->data, (size_t)(ns * T * hidden) * sizeof *dst);
    return 0;
}

/* The checkpoint's next block and states (into streams or arrays), then
 * its blocks' tensors into col. */
static int load(const xf_gptq_checkpoint *c, xf_quant_collector *col, xf_block_stream *q,
                xf_block_stream *fp, float *hq, float *hfp, int64_t ns, int64_t T, int64_t hidden,
                int64_t n_layers, int *next, xf_error *err)
{
    char *path = path_in(c->dir, STREAM_FILE);
    if (!path)
        return xf_fail(err, "%s: out of memory", c->dir);
    xfq_file f;
    int rc = open_checked(c, path, "next_block", &f, next, err);
    if (rc != 0) {
        free(path);
        return -1;
    }
    if (*next < 1 || *next > n_layers)
        rc = xf_fail(err, "%s: next block %d is not in 1..%lld", path, *next,
                     (long long)n_layers);
    if (rc == 0)
        rc = restore_states(&f, path, STREAM_Q, ns, T, hidden, hq, q, *next, err);
    if (rc == 0 && (fp || hfp))
        rc = restore_states(&f, path, STREAM_FP, ns, T, hidden, hfp, fp, *next, err);
    xfq_close(&f);
    free(path);
    for (int l = 0; l < *next && rc == 0; l++)
        rc = load_block(c, l, col, err);
    return rc;
}

int xf_gptq_checkpoint_load(const xf_gptq_checkpoint *c, xf_quant_collector *col,
                            xf_block_stream *q, xf_block_stream *fp, int *next, xf_error *err)
{
    return load(c, col, q, fp, NULL, NULL, q->ns, q->T, q->hidden, q->ws.cfg.n_layers, next,
                err);
}

int xf_gptq_checkpoint_load_states(const xf_gptq_checkpoint *c, xf_quant_collector *col,
                                   float *hq, float *hfp, int64_t ns, int64_t T, int64_t hidden,
                                   int64_t n_layers, int *next, xf_error *err)
{
    return load(c, col, NULL, NULL, hq, hfp, ns, T, hidden, n_layers, next, err);
}

/* The names a checkpoint directory may hold: its files and their temps
 * (".NAME.tmp.*", core/atomic_file.h). */
static bool is_checkpoint_file(const char *name)
{
    if (name[0] == '.')
        name++;
    return strncmp(name, STREAM_FILE, strlen(STREAM_FILE)) == 0 ||
           strncmp(name, "block-", 6) == 0;
}

int xf_gptq_checkpoint_remove(const char *dir, xf_error *err)
{
    DIR *d = opendir(dir);
    if (!d)
        return errno == ENOENT ? 0 : xf_fail(err, "%s: %s", dir, strerror(errno));
    struct dirent *e;
    int rc = 0;
    while ((e = readdir(d)) && rc == 0) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..") || !is_checkpoint_file(e->d_name))
            continue;
        char *p = path_in(dir, e->d_name);
        if (!p || unlink(p) != 0)
            rc = xf_fail(err, "%s: cannot remove %s", dir, e->d_name);
        free(p);
    }
    closedir(d);
    if (rc == 0 && rmdir(dir) != 0)
        xf_log_warn("%s: left in place (%s)", dir, strerror(errno));
    return rc;
}
