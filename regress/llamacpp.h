/* llama.cpp's own tools in a regression case (docs/regress.md, "GGUF
 * cases"): llama-perplexity scores a GGUF file, llama-imatrix and
 * llama-quantize make one. Each tool runs as a child process
 * (posix_spawn), its stdout and stderr in a log file of the case's
 * temporary directory; a failure names the tool, its exit status and the
 * last line of its log. Also the two numbers a GGUF case reports about its
 * file: bits per weight and bytes. */
#ifndef XF_REGRESS_LLAMACPP_H
#define XF_REGRESS_LLAMACPP_H

#include <stdbool.h>
#include <stdint.h>

#include "core/error.h"

/* The tools of one run, found once. */
typedef struct xf_llamacpp_tools {
    bool looked;     /* xf_llamacpp_find ran (found or not) */
    bool found;
    char bin[2048];  /* the directory holding llama-perplexity, llama-quantize, llama-imatrix */
    char why[1024];   /* why not found: the SKIP reason of every GGUF case */
    int threads;     /* -t of every tool: $XF_LLAMACPP_THREADS, default 2 */
} xf_llamacpp_tools;

/* The build script's default path, relative to the repository root. */
#define XF_LLAMACPP_BUILD_SCRIPT "../shared/tools/llamacpp-build.sh"

/* Finds the tools once (later calls return what the first found): the
 * directory $XF_LLAMACPP_BIN, else the one build_script prints on stdout
 * (run with its stdout and stderr in files under workdir). 0 when every
 * tool is there; -1 with why = the reason (a SKIP, not an error: the
 * machine has no llama.cpp). */
int xf_llamacpp_find(xf_llamacpp_tools *t, const char *build_script, const char *workdir,
                     xf_error *why);

/* Runs argv (argv[0]: the program's path) in directory cwd (NULL: this
 * one) with stdin /dev/null and stdout + stderr into log_path; 0 when it
 * exits 0, else -1 with "NAME exited with status N (or: was killed by
 * signal N): LAST LOG LINE". */
int xf_llamacpp_spawn(char *const argv[], const char *cwd, const char *log_path, xf_error *err);

/* Copies text file in (or its half 1 or 2, cut as eval/text_tokens.h
 * cuts it; 0: all of it) to out without any '\r' (`tr -d '\r'`): llama.cpp
 * tokenizes a CR as a character, xfquant's text reader does not. */
int xf_text_to_lf(const char *in, int half, const char *out, xf_error *err);

/* The tools below run in workdir, and their file arguments are names
 * relative to it: llama-quantize records the imatrix file's name and
 * llama-imatrix the calibration file's in the files they write, so
 * absolute temporary paths would make the same case's file differ in size
 * from run to run. */

/* `llama-perplexity -m GGUF -f TEXT -c CTX -b CTX -nr -fa off -t T
 * [--chunks N]` (chunks 0: all); *ppl = its "Final estimate: PPL = x".
 * One retry when a run gives no estimate (see the .c for why). */
int xf_llamacpp_perplexity(const xf_llamacpp_tools *t, const char *gguf, const char *text,
                           int64_t ctx, int64_t chunks, const char *workdir, double *ppl,
                           xf_error *err);

/* `llama-imatrix -m GGUF -f TEXT -o OUT -c SEQLEN -b SEQLEN -t T
 * [--chunks N]` (nsamples 0: the whole text). */
int xf_llamacpp_imatrix(const xf_llamacpp_tools *t, const char *gguf, const char *text,
                        int64_t seqlen, int64_t nsamples, const char *out, const char *workdir,
                        xf_error *err);

/* `llama-quantize [--imatrix F] [--tensor-type P=T]... IN OUT FTYPE T`. */
int xf_llamacpp_quantize(const xf_llamacpp_tools *t, const char *in, const char *out,
                         const char *ftype, const char *imatrix, char *const *tensor_type,
                         int n_tensor_type, const char *workdir, xf_error *err);

/* Bits per weight of a GGUF file: 8 x the bytes of its 2-D tensors / their
 * element count (every weight matrix, quantized or kept in float:
 * embedding, output head, linears); *file_bytes: the file's size. */
int xf_gguf_weight_bits(const char *path, double *bits_per_weight, double *file_bytes,
                        xf_error *err);

#endif
