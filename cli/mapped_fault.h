/* The CLI's SIGBUS handler: a mapped input that shrinks or fails to read
 * while in use becomes a one-line error naming the file (exit 1) instead of
 * a crash. See mapped_fault.c for why a signal handler and how it finds the
 * file. */
#ifndef XF_CLI_MAPPED_FAULT_H
#define XF_CLI_MAPPED_FAULT_H

#include <stdbool.h>
#include <stdint.h>

/* Installs the handler (process-wide signal disposition; main() calls it). */
void xf_cli_catch_mapped_faults(void);

/* Parses one /proc/self/maps line (NUL-terminated, no newline): true when it
 * maps a file and contains addr; then *path points into line and
 * *file_offset is addr's byte offset in that file. Exposed for tests. */
bool xf_maps_line_find(char *line, uint64_t addr, const char **path, uint64_t *file_offset);

#endif
