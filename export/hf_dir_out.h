/* A new Hugging Face model directory written atomically: every file goes
 * into a temp directory beside the destination (".DEST.tmp.HOST-PID.XXXXXX",
 * see core/atomic_file.h; a killed writer's is swept by the next begin), and
 * commit fsyncs it, renames it to DEST and fsyncs the parent, so DEST
 * appears complete or not at all. abort removes the temp directory. */
#ifndef XF_EXPORT_HF_DIR_OUT_H
#define XF_EXPORT_HF_DIR_OUT_H

#include <jansson.h>
#include <stdbool.h>

#include "core/error.h"

typedef struct xf_hf_dir_out {
    char *final_dir;
    char *tmp_dir;
} xf_hf_dir_out;

/* Fails when `dir` already exists (an export never replaces a directory)
 * or its parent is missing. */
int xf_hf_dir_out_check(const char *dir, xf_error *err);
int xf_hf_dir_out_begin(xf_hf_dir_out *d, const char *dir, xf_error *err);
/* The path of `name` inside the temp directory (malloc'd), NULL when out of memory. */
char *xf_hf_dir_out_path(const xf_hf_dir_out *d, const char *name);
/* JSON file `name` (sorted keys, 2-space indent, trailing newline), written atomically. */
int xf_hf_dir_out_json(const xf_hf_dir_out *d, const char *name, const json_t *j, xf_error *err);
/* Copies the regular file `src` to `name` (atomically). */
int xf_hf_dir_out_copy(const xf_hf_dir_out *d, const char *src, const char *name,
                       xf_error *err);
int xf_hf_dir_out_commit(xf_hf_dir_out *d, xf_error *err);
/* Removes the temp directory (if any) and frees; safe after commit. */
void xf_hf_dir_out_abort(xf_hf_dir_out *d);

#endif
