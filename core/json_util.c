#include "core/json_util.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/limits.h"
#include "core/read_file.h"

/* Read with xf_read_file (read(2)), not json_load_file (stdio inside
 * jansson), so that a failing read is reported with its errno rather than as
 * a JSON syntax error at the point where the read stopped. */
json_t *xf_json_load_file(const char *path, xf_error *err)
{
    /* jansson's tree costs several times the text: refuse absurd sizes first */
    struct stat st;
    if (stat(path, &st) == 0 && S_ISREG(st.st_mode) &&
        (uint64_t)st.st_size > XF_MAX_JSON_FILE_BYTES) {
        xf_fail(err, "%s: JSON file of %lld bytes exceeds the limit of %u bytes", path,
                (long long)st.st_size, XF_MAX_JSON_FILE_BYTES);
        return NULL;
    }
    char *text;
    size_t len;
    if (xf_read_file(path, &text, &len, err) != 0)
        return NULL;
    if (len > XF_MAX_JSON_FILE_BYTES) { /* grew after the stat, or not a regular file */
        free(text);
        xf_fail(err, "%s: JSON file of %zu bytes exceeds the limit of %u bytes", path, len,
                XF_MAX_JSON_FILE_BYTES);
        return NULL;
    }
    json_t *j = xf_json_load_buffer(text, len, path, err);
    free(text);
    return j;
}

json_t *xf_json_load_buffer(const char *buf, size_t len, const char *what, xf_error *err)
{
    json_error_t je;
    json_t *j = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &je);
    if (!j)
        xf_fail(err, "%s: invalid JSON at line %d column %d: %s", what, je.line, je.column,
                je.text);
    return j;
}

int xf_json_get_int(const json_t *obj, const char *key, bool required, int64_t dflt,
                    int64_t *out, const char *what, xf_error *err)
{
    json_t *v = json_object_get(obj, key);
    if (!v || json_is_null(v)) {
        if (required)
            return xf_fail(err, "%s: missing integer field \"%s\"", what, key);
        *out = dflt;
        return 0;
    }
    if (json_is_integer(v)) {
        *out = (int64_t)json_integer_value(v);
        return 0;
    }
    /* Some configs write integers as 4096.0 */
    if (json_is_real(v)) {
        double d = json_real_value(v);
        if (d == floor(d) && fabs(d) < 9.0e15) {
            *out = (int64_t)d;
            return 0;
        }
    }
    return xf_fail(err, "%s: field \"%s\" must be an integer", what, key);
}

int xf_json_get_double(const json_t *obj, const char *key, bool required, double dflt,
                       double *out, const char *what, xf_error *err)
{
    json_t *v = json_object_get(obj, key);
    if (!v || json_is_null(v)) {
        if (required)
            return xf_fail(err, "%s: missing number field \"%s\"", what, key);
        *out = dflt;
        return 0;
    }
    if (!json_is_number(v))
        return xf_fail(err, "%s: field \"%s\" must be a number", what, key);
    *out = json_number_value(v);
    return 0;
}

int xf_json_get_bool(const json_t *obj, const char *key, bool required, bool dflt, bool *out,
                     const char *what, xf_error *err)
{
    json_t *v = json_object_get(obj, key);
    if (!v || json_is_null(v)) {
        if (required)
            return xf_fail(err, "%s: missing boolean field \"%s\"", what, key);
        *out = dflt;
        return 0;
    }
    if (!json_is_boolean(v))
        return xf_fail(err, "%s: field \"%s\" must be true or false", what, key);
    *out = json_is_true(v);
    return 0;
}

int xf_json_get_string(const json_t *obj, const char *key, bool required, const char *dflt,
                       const char **out, const char *what, xf_error *err)
{
    json_t *v = json_object_get(obj, key);
    if (!v || json_is_null(v)) {
        if (required)
            return xf_fail(err, "%s: missing string field \"%s\"", what, key);
        *out = dflt;
        return 0;
    }
    if (!json_is_string(v))
        return xf_fail(err, "%s: field \"%s\" must be a string", what, key);
    *out = json_string_value(v);
    return 0;
}

char *xf_json_dump_sorted(const json_t *j)
{
    return json_dumps(j, JSON_SORT_KEYS | JSON_COMPACT | JSON_ENSURE_ASCII | JSON_REAL_PRECISION(17));
}
