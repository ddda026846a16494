/* Small helpers over jansson (Debian libjansson-dev), the JSON library of
 * xfquant: reading config files with typed, error-reporting getters. */
#ifndef XF_CORE_JSON_UTIL_H
#define XF_CORE_JSON_UTIL_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "core/error.h"

/* Parses a whole file; errors name the file, line and column. */
json_t *xf_json_load_file(const char *path, xf_error *err);
json_t *xf_json_load_buffer(const char *buf, size_t len, const char *what, xf_error *err);

/* Getters: return 0 and set *out when the key is present with the right
 * type; when absent, set *out = dflt and return 0 if !required, else fail.
 * `what` names the file/object for the error message. */
int xf_json_get_int(const json_t *obj, const char *key, bool required, int64_t dflt,
                    int64_t *out, const char *what, xf_error *err);
int xf_json_get_double(const json_t *obj, const char *key, bool required, double dflt,
                       double *out, const char *what, xf_error *err);
int xf_json_get_bool(const json_t *obj, const char *key, bool required, bool dflt, bool *out,
                     const char *what, xf_error *err);
/* Borrowed pointer into obj, or dflt. */
int xf_json_get_string(const json_t *obj, const char *key, bool required, const char *dflt,
                       const char **out, const char *what, xf_error *err);

/* Deterministic serialization (sorted keys, compact); malloc'd. */
char *xf_json_dump_sorted(const json_t *j);

#endif
