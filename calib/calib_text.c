#include "calib/calib_text.h"

#include <dirent.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "calib/tokenizer.h"
#include "core/read_file.h"
#include "core/sha256.h"

const char *xf_calib_format_name(xf_calib_format f)
{
    switch (f) {
    case XF_CALIB_TEXT: return "text";
    case XF_CALIB_JSONL: return "jsonl";
    case XF_CALIB_DIR: return "dir";
    default: return "auto";
    }
}

static int ends_with(const char *s, const char *suffix)
{
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && strcmp(s + a - b, suffix) == 0;
}

/* A growable byte buffer for joining documents. */
typedef struct joiner {
    char *buf;
    size_t len, cap;
    size_t docs;
} joiner;

static int join_add(joiner *j, const char *s, size_t n)
{
    size_t sep = j->docs ? 2 : 0;
    if (j->len + sep + n + 1 > j->cap) {
        size_t cap = j->cap ? j->cap : 1 << 16;
        while (cap < j->len + sep + n + 1)
            cap *= 2;
        char *nb = realloc(j->buf, cap);
        if (!nb)
            return -1;
        j->buf = nb;
        j->cap = cap;
    }
    if (sep) {
        memcpy(j->buf + j->len, "\n\n", 2);
        j->len += 2;
    }
    memcpy(j->buf + j->len, s, n);
    j->len += n;
    j->buf[j->len] = '\0';
    j->docs++;
    return 0;
}

static int read_jsonl(xf_calib_text *ct, const char *path, const char *field, xf_error *err)
{
    char *data;
    size_t len;
    if (xf_read_file(path, &data, &len, err) != 0)
        return -1;
    xf_sha256_hex(data, len, ct->sha256);
    joiner j = {0};
    size_t line_no = 0;
    char *p = data, *end = data + len;
    int rc = 0;
    while (p < end) {
        char *nl = memchr(p, '\n', (size_t)(end - p));
        char *line_end = nl ? nl : end;
        line_no++;
        char *q = p;
        while (q < line_end && (*q == ' ' || *q == '\t' || *q == '\r'))
            q++;
        if (q < line_end) {
            json_error_t je;
            json_t *rec = json_loadb(p, (size_t)(line_end - p), 0, &je);
            if (!rec) {
                rc = xf_fail(err, "%s: line %zu is not valid JSON: %s", path, line_no, je.text);
                break;
            }
            json_t *v = json_object_get(rec, field);
            if (!json_is_string(v)) {
                json_decref(rec);
                rc = xf_fail(err, "%s: line %zu has no string field \"%s\"", path, line_no, field);
                break;
            }
            size_t n = json_string_length(v);
            if (n == 0)
                ct->n_skipped++;
            else if (join_add(&j, json_string_value(v), n) != 0) {
                json_decref(rec);
                rc = xf_fail(err, "%s: out of memory", path);
                break;
            }
            json_decref(rec);
        }
        p = line_end + (nl ? 1 : 0);
    }
    free(data);
    if (rc == 0 && j.docs == 0)
        rc = xf_fail(err, "%s: no non-empty \"%s\" records", path, field);
    if (rc != 0) {
        free(j.buf);
        return -1;
    }
    ct->text = j.buf;
    ct->len = j.len;
    ct->n_documents = j.docs;
    return 0;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int read_dir(xf_calib_text *ct, const char *path, xf_error *err)
{
    DIR *d = opendir(path);
    if (!d)
        return xf_fail(err, "%s: cannot open directory", path);
    char **names = NULL;
    size_t n = 0, cap = 0;
    struct dirent *e;
    int rc = 0;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.' || !ends_with(e->d_name, ".txt"))
            continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 64;
            char **nn = realloc(names, cap * sizeof *names);
            if (!nn) {
                rc = xf_fail(err, "%s: out of memory", path);
                break;
            }
            names = nn;
        }
        names[n] = strdup(e->d_name);
        if (!names[n]) {
            rc = xf_fail(err, "%s: out of memory", path);
            break;
        }
        n++;
    }
    closedir(d);
    if (rc == 0 && n == 0)
        rc = xf_fail(err, "%s: directory has no .txt files", path);
    joiner j = {0};
    if (rc == 0) {
        qsort(names, n, sizeof *names, cmp_str);
        for (size_t i = 0; i < n && rc == 0; i++) {
            char *full = xf_path_join(path, names[i]);
            char *data = NULL;
            size_t len = 0;
            if (!full)
                rc = xf_fail(err, "%s: out of memory", path);
            else if (xf_read_file(full, &data, &len, err) != 0)
                rc = -1;
            else if (len == 0)
                ct->n_skipped++;
            else if (join_add(&j, data, len) != 0)
                rc = xf_fail(err, "%s: out of memory", path);
            free(data);
            free(full);
        }
    }
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
    if (rc == 0 && j.docs == 0)
        rc = xf_fail(err, "%s: all .txt files are empty", path);
    if (rc != 0) {
        free(j.buf);
        return -1;
    }
    ct->text = j.buf;
    ct->len = j.len;
    ct->n_documents = j.docs;
    xf_sha256_hex(j.buf, j.len, ct->sha256);
    return 0;
}

int xf_calib_text_read(xf_calib_text *ct, const char *path, xf_calib_format format,
                       const char *field, xf_error *err)
{
    memset(ct, 0, sizeof *ct);
    if (format == XF_CALIB_AUTO) {
        if (xf_path_is_dir(path))
            format = XF_CALIB_DIR;
        else if (ends_with(path, ".jsonl") || ends_with(path, ".ndjson") || field)
            format = XF_CALIB_JSONL;
        else
            format = XF_CALIB_TEXT;
    }
    ct->format = format;
    int rc;
    /* sha256 is of the source bytes; the text itself is then read like
     * Python's text mode, as the GPTQ reference reads its calibration data */
    switch (format) {
    case XF_CALIB_DIR: rc = read_dir(ct, path, err); break;
    case XF_CALIB_JSONL: rc = read_jsonl(ct, path, field ? field : "text", err); break;
    default:
        rc = xf_read_file(path, &ct->text, &ct->len, err);
        if (rc == 0 && ct->len == 0) {
            free(ct->text);
            ct->text = NULL;
            rc = xf_fail(err, "%s: the calibration file is empty", path);
        }
        if (rc == 0) {
            ct->n_documents = 1;
            xf_sha256_hex(ct->text, ct->len, ct->sha256);
        }
        break;
    }
    if (rc == 0)
        ct->len = xf_text_universal_newlines(ct->text, ct->len);
    return rc;
}

void xf_calib_text_free(xf_calib_text *ct)
{
    free(ct->text);
    memset(ct, 0, sizeof *ct);
}
