/* Whole-file reads into a NUL-terminated heap buffer. */
#ifndef XF_CORE_READ_FILE_H
#define XF_CORE_READ_FILE_H

#include <stddef.h>

#include "core/error.h"

/* *data is malloc'd, NUL-terminated; *len excludes the terminator. */
int xf_read_file(const char *path, char **data, size_t *len, xf_error *err);
int xf_path_is_dir(const char *path);
int xf_path_exists(const char *path);
/* Returns malloc'd "dir/name". */
char *xf_path_join(const char *dir, const char *name);

#endif
