/* llama.cpp's tools as child processes of a regression case. */
#include "regress/llamacpp.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/log.h"
#include "core/read_file.h"
#include "eval/text_tokens.h"
#include "formats/gguf.h"

extern char **environ;

static const char *const tool_names[] = {"llama-perplexity", "llama-quantize", "llama-imatrix",
                                         NULL};

/* The last non-empty line of a log, at most cap-1 bytes of its end. */
static void log_tail(const char *log_path, char *out, size_t cap)
{
    out[0] = 0;
    char *text;
    size_t len;
    xf_error ignored = {0};
    if (xf_read_file(log_path, &text, &len, &ignored) != 0)
        return;
    while (len > 0 && (text[len - 1] == '\n' || text[len - 1] == '\r' || text[len - 1] == ' '))
        len--;
    size_t start = len;
    while (start > 0 && text[start - 1] != '\n')
        start--;
    if (len - start >= cap)
        start = len - (cap - 1);
    memcpy(out, text + start, len - start);
    out[len - start] = 0;
    free(text);
}

static const char *base_name(const char *path)
{
    const char *s = strrchr(path, '/');
    return s ? s + 1 : path;
}

/* Spawns argv with stdout into out_path and stderr into err_path (the
 * same file when equal); the child's status in *status (waitpid's). */
static int spawn_wait(char *const argv[], const char *cwd, const char *out_path,
                      const char *err_path, int *status, xf_error *err)
{
    posix_spawn_file_actions_t fa;
    if (posix_spawn_file_actions_init(&fa) != 0)
        return xf_fail(err, "%s: cannot set up the child process", argv[0]);
    int rc = cwd ? posix_spawn_file_actions_addchdir_np(&fa, cwd) : 0;
    if (rc == 0)
        rc = posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    if (rc == 0)
        rc = posix_spawn_file_actions_addopen(&fa, 1, out_path, O_WRONLY | O_CREAT | O_TRUNC,
                                              0644);
    if (rc == 0)
        rc = strcmp(out_path, err_path)
                 ? posix_spawn_file_actions_addopen(&fa, 2, err_path,
                                                    O_WRONLY | O_CREAT | O_TRUNC, 0644)
                 : posix_spawn_file_actions_adddup2(&fa, 1, 2);
    pid_t pid;
    if (rc == 0)
        rc = posix_spawn(&pid, argv[0], &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    if (rc != 0)
        return xf_fail(err, "%s: cannot run it: %s", argv[0], strerror(rc));
    while (waitpid(pid, status, 0) < 0)
        if (errno != EINTR)
            return xf_fail(err, "%s: waitpid: %s", argv[0], strerror(errno));
    return 0;
}

int xf_llamacpp_spawn(char *const argv[], const char *cwd, const char *log_path, xf_error *err)
{
    int status;
    if (spawn_wait(argv, cwd, log_path, log_path, &status, err) != 0)
        return -1;
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
        return 0;
    char tail[256];
    log_tail(log_path, tail, sizeof tail);
    if (WIFSIGNALED(status))
        return xf_fail(err, "%s was killed by signal %d: %s", base_name(argv[0]), WTERMSIG(status),
                       tail[0] ? tail : "(empty log)");
    return xf_fail(err, "%s exited with status %d: %s", base_name(argv[0]), WEXITSTATUS(status),
                   tail[0] ? tail : "(empty log)");
}

/* Every tool is an executable file in dir; else why names the first missing. */
static bool tools_in(const char *dir, char *why, size_t cap)
{
    for (const char *const *n = tool_names; *n; n++) {
        char *p = xf_path_join(dir, *n);
        bool ok = p && access(p, X_OK) == 0;
        free(p);
        if (!ok) {
            snprintf(why, cap, "%s/%s is missing", dir, *n);
            return false;
        }
    }
    return true;
}

static int not_found(xf_llamacpp_tools *t, xf_error *why)
{
    t->found = false;
    return xf_fail(why, "%s", t->why);
}

int xf_llamacpp_find(xf_llamacpp_tools *t, const char *build_script, const char *workdir,
                     xf_error *why)
{
    if (t->looked)
        return t->found ? 0 : xf_fail(why, "%s", t->why);
    t->looked = true;
    const char *th = getenv("XF_LLAMACPP_THREADS");
    char *end;
    long n = th && *th ? strtol(th, &end, 10) : 2;
    t->threads = th && *th && (*end || n < 1 || n > 4096) ? 2 : (int)n;
    const char *env = getenv("XF_LLAMACPP_BIN");
    if (env && *env) {
        char miss[400];
        if (strlen(env) >= sizeof t->bin || !tools_in(env, miss, sizeof miss)) {
            snprintf(t->why, sizeof t->why, "llama.cpp tools not found: XF_LLAMACPP_BIN: %.400s",
                     strlen(env) >= sizeof t->bin ? "path too long" : miss);
            return not_found(t, why);
        }
        snprintf(t->bin, sizeof t->bin, "%s", env);
        t->found = true;
        return 0;
    }
    if (!build_script)
        build_script = XF_LLAMACPP_BUILD_SCRIPT;
    if (access(build_script, X_OK) != 0) {
        snprintf(t->why, sizeof t->why,
                 "llama.cpp tools not found: no XF_LLAMACPP_BIN and no %.400s", build_script);
        return not_found(t, why);
    }
    char *out = xf_path_join(workdir, "llamacpp-build.out");
    char *errp = xf_path_join(workdir, "llamacpp-build.log");
    char *script = strdup(build_script);
    char *argv[] = {script, NULL};
    int status = -1;
    xf_error e = {0};
    int rc = out && errp && script ? spawn_wait(argv, NULL, out, errp, &status, &e) : -1;
    char *text = NULL;
    size_t len = 0;
    if (rc == 0 && WIFEXITED(status) && WEXITSTATUS(status) == 0 &&
        xf_read_file(out, &text, &len, &e) == 0) {
        while (len > 0 && (text[len - 1] == '\n' || text[len - 1] == ' '))
            text[--len] = 0;
        char *line = strrchr(text, '\n');
        line = line ? line + 1 : text;
        char miss[400];
        if (*line && strlen(line) < sizeof t->bin && tools_in(line, miss, sizeof miss)) {
            snprintf(t->bin, sizeof t->bin, "%s", line);
            t->found = true;
        } else {
            snprintf(t->why, sizeof t->why,
                     "llama.cpp tools not found: %.200s printed '%.200s'%s%.200s", build_script,
                     line, *line ? ": " : "", *line ? miss : "");
        }
    } else {
        char tail[200] = "";
        if (errp)
            log_tail(errp, tail, sizeof tail);
        snprintf(t->why, sizeof t->why, "llama.cpp tools not built: %.200s %.200s%s%.200s",
                 build_script, rc != 0 ? e.msg : "failed",
                 rc == 0 && WIFEXITED(status) ? (tail[0] ? ": " : "") : "", tail);
    }
    if (out)
        unlink(out);
    if (errp)
        unlink(errp);
    free(text);
    free(out);
    free(errp);
    free(script);
    return t->found ? 0 : not_found(t, why);
}

int xf_text_to_lf(const char *in, int half, const char *out, xf_error *err)
{
    char *text;
    size_t len;
    if (xf_read_file(in, &text, &len, err) != 0)
        return -1;
    size_t off = 0, n = len; /* the half's bytes, cut where xfquant's evaluator cuts */
    if (half && xf_text_half_range(text, len, half, &off, &n) != 0) {
        free(text);
        return xf_fail(err, "%s: no line break at or after the middle of the text: it has no halves",
                       in);
    }
    size_t k = 0;
    for (size_t i = off; i < off + n; i++)
        if (text[i] != '\r')
            text[k++] = text[i];
    FILE *f = fopen(out, "wb");
    int rc = 0;
    if (!f || fwrite(text, 1, k, f) != k)
        rc = xf_fail(err, "%s: cannot write: %s", out, strerror(errno));
    if (f && fclose(f) != 0 && rc == 0)
        rc = xf_fail(err, "%s: cannot write: %s", out, strerror(errno));
    free(text);
    return rc;
}

/* A path under bin / workdir (malloc'd; NULL when out of memory). */
static char *tool(const xf_llamacpp_tools *t, const char *name)
{
    return xf_path_join(t->bin, name);
}

static void fmt_i64(char *buf, size_t cap, int64_t v)
{
    snprintf(buf, cap, "%" PRId64, v);
}

/* The last "Final estimate: PPL = x" of a log; -1 when there is none. */
static int final_estimate(const char *log_path, double *ppl)
{
    char *text;
    size_t len;
    xf_error ignored = {0};
    if (xf_read_file(log_path, &text, &len, &ignored) != 0)
        return -1;
    static const char key[] = "Final estimate: PPL = ";
    const char *last = NULL;
    for (const char *p = text; (p = strstr(p, key)); p += sizeof key - 1)
        last = p + sizeof key - 1;
    /* the final line lost (see xf_llamacpp_perplexity): the running value
     * printed after the last chunk, "[N]ppl" with N the announced chunk
     * count, is the same number (the same nll / count, same 4 decimals) */
    static const char over[] = "calculating perplexity over ";
    const char *o = strstr(text, over);
    char tag[32];
    if (!last && o) {
        long n = strtol(o + sizeof over - 1, NULL, 10);
        snprintf(tag, sizeof tag, "[%ld]", n);
        for (const char *p = text; n > 0 && (p = strstr(p, tag)); p += strlen(tag))
            last = p + strlen(tag);
    }
    int rc = -1;
    if (last) {
        char *end;
        double v = strtod(last, &end);
        if (end != last && v > 0) {
            *ppl = v;
            rc = 0;
        }
    }
    free(text);
    return rc;
}

int xf_llamacpp_perplexity(const xf_llamacpp_tools *t, const char *gguf, const char *text,
                           int64_t ctx, int64_t chunks, const char *workdir, double *ppl,
                           xf_error *err)
{
    char c[24], th[24], ch[24];
    fmt_i64(c, sizeof c, ctx);
    fmt_i64(th, sizeof th, t->threads);
    fmt_i64(ch, sizeof ch, chunks);
    char *exe = tool(t, "llama-perplexity");
    char *log = xf_path_join(workdir, "llama-perplexity.log");
    /* -nr (no weight repacking): this llama.cpp build crashes in its AMX
     * repacked matmuls on quantized files. -fa off: the CPU flash
     * attention computes in F16 and moves even an F32 file's PPL by 1e-4,
     * more than Q8_0's loss on these models; the fp16 reference must be the
     * model's own PPL. */
    char *argv[] = {exe,  "-m",  (char *)gguf, "-f",  (char *)text, "-c",        c,
                    "-b", c,     "-nr",        "-fa", "off",        "-t",        th,
                    chunks > 0 ? "--chunks" : NULL,   ch,           NULL};
    int rc = -1;
    if (!exe || !log) {
        xf_fail(err, "out of memory");
        goto out;
    }
    /* llama-perplexity has been seen to die without a result on this
     * project's CPUs (a segfault in ggml's CPU backend, also on files its
     * own llama-quantize made), and it sometimes exits 0 without its final
     * line (its asynchronous logger loses lines at exit; measured 1 run in
     * ~30 on an idle machine, most runs under heavy load): the last chunk's
     * running value stands in for it (final_estimate), and up to
     * LLAMACPP_TRIES runs, each retry said in the log. */
    enum { LLAMACPP_TRIES = 4 };
    for (int attempt = 1; attempt <= LLAMACPP_TRIES && rc != 0; attempt++) {
        xf_error e = {0};
        if (xf_llamacpp_spawn(argv, workdir, log, &e) == 0 && final_estimate(log, ppl) == 0) {
            rc = 0;
        } else if (attempt == LLAMACPP_TRIES) {
            if (e.msg[0])
                xf_fail(err, "%s: %s", gguf, e.msg);
            else {
                char tail[200];
                log_tail(log, tail, sizeof tail);
                xf_fail(err, "%s: llama-perplexity printed no final estimate: %s", gguf, tail);
            }
        } else {
            xf_log_info("llama-perplexity on %s gave no result (%s); running it once more", gguf,
                        e.msg[0] ? e.msg : "no final estimate");
        }
    }
out:
    free(exe);
    free(log);
    return rc;
}

int xf_llamacpp_imatrix(const xf_llamacpp_tools *t, const char *gguf, const char *text,
                        int64_t seqlen, int64_t nsamples, const char *out, const char *workdir,
                        xf_error *err)
{
    char c[24], th[24], ch[24];
    fmt_i64(c, sizeof c, seqlen);
    fmt_i64(th, sizeof th, t->threads);
    fmt_i64(ch, sizeof ch, nsamples);
    char *exe = tool(t, "llama-imatrix");
    char *log = xf_path_join(workdir, "llama-imatrix.log");
    char *argv[] = {exe, "-m", (char *)gguf, "-f", (char *)text, "-o", (char *)out, "-c", c,
                    "-b", c, "-t", th, nsamples > 0 ? "--chunks" : NULL, ch, NULL};
    int rc = exe && log ? xf_llamacpp_spawn(argv, workdir, log, err) : xf_fail(err, "out of memory");
    free(exe);
    free(log);
    return rc;
}

int xf_llamacpp_quantize(const xf_llamacpp_tools *t, const char *in, const char *out,
                         const char *ftype, const char *imatrix, char *const *tensor_type,
                         int n_tensor_type, const char *workdir, xf_error *err)
{
    char th[24];
    fmt_i64(th, sizeof th, t->threads);
    char *exe = tool(t, "llama-quantize");
    char *log = xf_path_join(workdir, "llama-quantize.log");
    char **argv = calloc((size_t)(2 * n_tensor_type + 10), sizeof *argv);
    int rc;
    if (!exe || !log || !argv) {
        rc = xf_fail(err, "out of memory");
    } else {
        int k = 0;
        argv[k++] = exe;
        if (imatrix) {
            argv[k++] = "--imatrix";
            argv[k++] = (char *)imatrix;
        }
        for (int i = 0; i < n_tensor_type; i++) {
            argv[k++] = "--tensor-type";
            argv[k++] = tensor_type[i];
        }
        argv[k++] = (char *)in;
        argv[k++] = (char *)out;
        argv[k++] = (char *)ftype;
        argv[k++] = th;
        argv[k] = NULL;
        rc = xf_llamacpp_spawn(argv, workdir, log, err);
    }
    free(argv);
    free(exe);
    free(log);
    return rc;
}

int xf_gguf_weight_bits(const char *path, double *bits_per_weight, double *file_bytes,
                        xf_error *err)
{
    xf_gguf_file f;
    if (xf_gguf_open(&f, path, err) != 0)
        return -1;
    double bytes = 0, n = 0;
    for (size_t i = 0; i < f.n_tensors; i++) {
        const xf_gguf_tensor *t = &f.tensors[i];
        if (t->n_dims != 2)
            continue;
        bytes += (double)t->nbytes;
        n += (double)t->ne[0] * (double)t->ne[1];
    }
    xf_gguf_close(&f);
    if (n == 0)
        return xf_fail(err, "%s: no 2-D tensor (no weights to count)", path);
    struct stat st;
    if (stat(path, &st) != 0)
        return xf_fail(err, "%s: %s", path, strerror(errno));
    *bits_per_weight = 8.0 * bytes / n;
    *file_bytes = (double)st.st_size;
    return 0;
}
