/* Fault injection (suite 'faults', docs/faults.md): the xfquant binary run
 * under the fail_io LD_PRELOAD shim (tests/faults/fail_io.c), which makes
 * chosen I/O calls on chosen files fail with ENOSPC/EIO or kills the process
 * at a chosen call.
 *
 * For every writing command and fault: exit != 0, one error line naming the
 * file and the errno, the previous file of that name byte-identical, no temp
 * file left. Killed at any write call: the final name holds the previous or
 * the complete new file, and the next run removes the dead writer's temp.
 * Reads: EIO through read(2), and a mapped input truncated under the reader
 * (SIGBUS), give one line and exit 1. Each check prints the matrix row it
 * measured ("MATRIX | op | fault | outcome"), which docs/faults.md quotes.
 *
 * Needs XF_FAIL_IO_LIB (the shim, set by tests/faults/meson.build); the
 * gptq/regress/tokenizer rows need ../shared (stories260K) and SKIP without. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <dirent.h>

#include "cli/mapped_fault.h"
#include "core/read_file.h"
#include "tests/support/cli_run.h"
#include "tests/support/random_model.h"
#include "tests/support/random_tokenizer.h"
#include "tests/support/test_util.h"

static char *g_root;           /* everything of this run */
static char g_scratch[1024];   /* captured stdout/stderr (never under a faulted path) */
static char g_out[1024];       /* outputs: the faulted directory */
static char g_in[1024];        /* inputs */
static char g_model[1024];     /* random llama written by setup */
static char g_prev[1024];      /* a valid .xfq (8-bit) standing for "the previous file" */
static char g_ref[1024];       /* what rtn writes to out/new.xfq when nothing fails */
static char g_new[2048];       /* out/new.xfq: the destination of the write tests */
static const char *g_shim;

/* The rtn command the write tests run. One thread: the output is the same
 * with any count, and on a shared 2-core machine OpenMP's start-up costs
 * more than the tiny model's work (the kill loop runs it ~700 times). */
#define RTN4 "rtn", "--bits", "4", "--group", "32", "--threads", "1"

typedef struct {
    int code;  /* exit status, or -1 when killed */
    int sig;   /* the signal that killed it, else 0 */
    char *err; /* stderr */
} run_res;

static void run_free(run_res *r)
{
    free(r->err);
    r->err = NULL;
}

/* xfquant ARGS... (NULL-terminated), with the shim preloaded and `env`
 * ("K=V" strings, NULL-terminated) set when env is not NULL. stdout goes to
 * `out_path` (NULL: the scratch file). */
static run_res run_xf(const char *const *env, const char *out_path, ...)
{
    const char *argv[64];
    int argc = 0;
    argv[argc++] = xf_cli_bin();
    va_list ap;
    va_start(ap, out_path);
    const char *a;
    while ((a = va_arg(ap, const char *)) != NULL && argc < 63)
        argv[argc++] = a;
    va_end(ap);
    argv[argc] = NULL;
    char so[2048], se[2048];
    snprintf(so, sizeof so, "%s/stdout", g_scratch);
    snprintf(se, sizeof se, "%s/stderr", g_scratch);
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        unsetenv("CI"); /* regress --update refuses to run under CI */
        const char *vars[] = {"XF_FAULT_OPS", "XF_FAULT_AT", "XF_FAULT_AFTER", "XF_FAULT_ERRNO",
                              "XF_FAULT_KILL_AT", "XF_FAULT_KILL_PARTIAL", "XF_FAULT_PATH",
                              "XF_FAULT_COUNT_FILE", "XF_FAULT_TRUNCATE_MAPPED", "LD_PRELOAD"};
        for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++)
            unsetenv(vars[i]);
        if (env) {
            setenv("LD_PRELOAD", g_shim, 1);
            for (const char *const *e = env; *e; e++)
                putenv(strdup(*e));
        }
        int in = open("/dev/null", O_RDONLY);
        int o = open(out_path ? out_path : so, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        int e = open(se, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (in < 0 || o < 0 || e < 0)
            _exit(126);
        dup2(in, 0);
        dup2(o, 1);
        dup2(e, 2);
        execv(argv[0], (char *const *)argv);
        _exit(127);
    }
    int st;
    while (waitpid(pid, &st, 0) < 0)
        assert_int_equal(errno, EINTR);
    run_res r = {WIFEXITED(st) ? WEXITSTATUS(st) : -1, WIFSIGNALED(st) ? WTERMSIG(st) : 0, NULL};
    size_t n;
    if (xf_read_file(se, &r.err, &n, NULL) != 0)
        r.err = strdup("");
    return r;
}

/* Lines of stderr that are errors ("xfquant: ..."); the first one in *line. */
static int error_lines(const char *err, const char **line)
{
    int n = 0;
    *line = NULL;
    for (const char *p = err; p && *p;) {
        if (strncmp(p, "xfquant: ", 9) == 0 || strncmp(p, "xfquant ", 8) == 0) {
            if (!*line)
                *line = p;
            n++;
        }
        const char *nl = strchr(p, '\n');
        p = nl ? nl + 1 : NULL;
    }
    return n;
}

/* Exactly one error line, naming `name` and containing `what`. */
static void assert_one_error(const run_res *r, const char *name, const char *what)
{
    const char *line;
    int n = error_lines(r->err, &line);
    if (n != 1 || !strstr(line, name) || (what && !strstr(line, what)))
        fail_msg("expected one error line naming %s with '%s', got %d line(s):\n%s", name,
                 what ? what : "", n, r->err);
    const char *nl = strchr(line, '\n');
    /* the one line itself holds both (not two lines that each hold one) */
    size_t len = nl ? (size_t)(nl - line) : strlen(line);
    char *one = strndup(line, len);
    assert_non_null(strstr(one, name));
    if (what)
        assert_non_null(strstr(one, what));
    free(one);
}

static void copy_file(const char *from, const char *to)
{
    char *data;
    size_t n;
    assert_int_equal(xf_read_file(from, &data, &n, NULL), 0);
    FILE *fp = fopen(to, "wb");
    assert_non_null(fp);
    assert_int_equal(fwrite(data, 1, n, fp), n);
    assert_int_equal(fclose(fp), 0);
    free(data);
}

/* Entries of g_out other than `keep` (a name, or NULL): temp files. */
static int out_others(const char *keep)
{
    DIR *d = opendir(g_out);
    assert_non_null(d);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..") && (!keep || strcmp(e->d_name, keep)))
            n++;
    closedir(d);
    return n;
}

static void clear_out(void)
{
    xf_test_rmtree(g_out);
    assert_int_equal(mkdir(g_out, 0755), 0);
}

static long read_count(const char *path)
{
    char *s;
    size_t n;
    assert_int_equal(xf_read_file(path, &s, &n, NULL), 0);
    long v = atol(s);
    free(s);
    return v;
}

static int setup(void **state)
{
    (void)state;
    g_shim = getenv("XF_FAIL_IO_LIB");
    g_root = xf_test_tmpdir();
    if (!g_root)
        return -1;
    snprintf(g_scratch, sizeof g_scratch, "%s/scratch", g_root);
    snprintf(g_out, sizeof g_out, "%s/out", g_root);
    snprintf(g_in, sizeof g_in, "%s/in", g_root);
    snprintf(g_model, sizeof g_model, "%s/in/rnd", g_root);
    snprintf(g_prev, sizeof g_prev, "%s/prev.xfq", g_root);
    snprintf(g_ref, sizeof g_ref, "%s/ref.xfq", g_root);
    snprintf(g_new, sizeof g_new, "%s/new.xfq", g_out);
    if (mkdir(g_scratch, 0755) || mkdir(g_out, 0755) || mkdir(g_in, 0755))
        return -1;
    /* 4 layers: ~170 write calls for an .xfq, the range the kill loop sweeps */
    xf_random_model_spec s = {.family = "llama", .hidden = 32, .intermediate = 64, .layers = 4,
                              .heads = 4, .kv_heads = 2, .vocab = 64, .max_pos = 32,
                              .f16 = true, .seed = 11};
    char *dir = xf_random_model_write(g_model, &s);
    if (!dir)
        return -1;
    free(dir);
    /* the provenance records the command line, so ref is made under the same
     * output name the tests write to, then moved aside */
    run_res r = run_xf(NULL, NULL, "rtn", "--bits", "8", "--threads", "1", g_model, g_new, NULL);
    int ok = r.code == 0 && rename(g_new, g_prev) == 0;
    run_free(&r);
    r = run_xf(NULL, NULL, RTN4, g_model, g_new, NULL);
    ok = ok && r.code == 0 && rename(g_new, g_ref) == 0;
    run_free(&r);
    return ok ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    xf_test_rmtree(g_root);
    free(g_root);
    return 0;
}

#define REQUIRE_SHIM()                                                                     \
    do {                                                                                   \
        if (!g_shim || !*g_shim) {                                                         \
            print_message("SKIP: XF_FAIL_IO_LIB not set (the fail_io shim is built only "  \
                          "with gcc/clang on Linux)\n");                                   \
            skip();                                                                        \
        }                                                                                  \
    } while (0)

static const char *errno_name(int e)
{
    return e == ENOSPC ? "ENOSPC" : e == EINTR ? "EINTR" : "EIO";
}

/* How many calls of `ops` on files under `needle` one clean run makes. */
static long count_calls(const char *ops, const char *needle, const char *const *args, int nargs)
{
    char e_ops[128], e_path[2048], e_count[3072], count_file[2048];
    snprintf(count_file, sizeof count_file, "%s/count", g_scratch);
    snprintf(e_ops, sizeof e_ops, "XF_FAULT_OPS=%s", ops);
    snprintf(e_path, sizeof e_path, "XF_FAULT_PATH=%s", needle);
    snprintf(e_count, sizeof e_count, "XF_FAULT_COUNT_FILE=%s", count_file);
    const char *env[] = {e_ops, e_path, e_count, NULL};
    assert_true(nargs <= 20);
    const char *a[21] = {0};
    for (int i = 0; i < nargs; i++)
        a[i] = args[i];
    run_res r = run_xf(env, NULL, a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7], a[8], a[9],
                       a[10], a[11], a[12], a[13], a[14], a[15], a[16], a[17], a[18], a[19], NULL);
    if (r.code != 0)
        fail_msg("clean run under the shim failed: %s", r.err);
    run_free(&r);
    return read_count(count_file);
}

typedef enum {
    EXPECT_KEPT,     /* exit 1, one line naming the file + errno, previous file intact */
    EXPECT_NEW_FAIL, /* exit 1, new file complete (the fault came after the rename) */
    EXPECT_NEW_OK    /* exit 0, new file complete (a fault that cannot affect the data) */
} expectation;

/* One write-fault case of rtn into g_new (previous file present when
 * `with_prev`): runs it and checks the expectation. */
static void rtn_fault_case(const char *op, int err_no, const char *mode, long k, bool with_prev,
                           expectation want)
{
    clear_out();
    if (with_prev)
        copy_file(g_prev, g_new);
    char e_ops[64], e_k[64], e_errno[64], e_path[3072];
    snprintf(e_ops, sizeof e_ops, "XF_FAULT_OPS=%s", op);
    snprintf(e_k, sizeof e_k, "XF_FAULT_%s=%ld", mode, k);
    snprintf(e_errno, sizeof e_errno, "XF_FAULT_ERRNO=%s", errno_name(err_no));
    snprintf(e_path, sizeof e_path, "XF_FAULT_PATH=%s", g_out);
    const char *env[] = {e_ops, e_k, e_errno, e_path, NULL};
    run_res r = run_xf(env, NULL, RTN4, g_model, g_new, NULL);
    switch (want) {
    case EXPECT_KEPT:
        if (r.code != 1)
            fail_msg("rtn, %s %s=%ld %s: exit %d, stderr: %s", op, mode, k, errno_name(err_no),
                     r.code, r.err);
        assert_one_error(&r, g_new, strerror(err_no));
        if (with_prev)
            assert_true(xf_test_files_equal(g_new, g_prev));
        else
            assert_false(xf_path_exists(g_new));
        break;
    case EXPECT_NEW_FAIL:
        assert_int_equal(r.code, 1);
        assert_one_error(&r, g_new, strerror(err_no));
        assert_true(xf_test_files_equal(g_new, g_ref));
        break;
    case EXPECT_NEW_OK:
        if (r.code != 0)
            fail_msg("rtn, %s %s=%ld: exit %d: %s", op, mode, k, r.code, r.err);
        assert_true(xf_test_files_equal(g_new, g_ref));
        break;
    }
    assert_int_equal(out_others("new.xfq"), 0); /* no temp file */
    run_free(&r);
}

/* rtn → .xfq with every call atomic_file makes failing, at the first, a
 * middle and the last call, and a full disk from the middle on. */
static void test_rtn_write_faults(void **state)
{
    (void)state;
    REQUIRE_SHIM();
    const char *args[] = {RTN4, g_model, g_new};
    long n_write = count_calls("write", g_out, args, 9);
    long n_fsync = count_calls("fsync", g_out, args, 9);
    long n_close = count_calls("close", g_out, args, 9);
    long n_rename = count_calls("rename", g_out, args, 9);
    /* atomic_file's calls: data writes; fsync of the file and of the
     * directory; close of the file and of the directory; one rename */
    assert_true(n_write > 100);
    assert_int_equal(n_fsync, 2);
    assert_int_equal(n_close, 2);
    assert_int_equal(n_rename, 1);
    /* calls the writers do not make: counted to show they stay unused */
    assert_int_equal(count_calls("pwrite,fdatasync,ftruncate,fallocate,renameat", g_out, args, 9), 0);
    clear_out();
    const int errs[] = {ENOSPC, EIO};
    for (int ei = 0; ei < 2; ei++) {
        int e = errs[ei];
        const long ks[] = {1, 2, n_write / 2, n_write - 1, n_write};
        for (int i = 0; i < 5; i++)
            rtn_fault_case("write", e, "AT", ks[i], true, EXPECT_KEPT);
        rtn_fault_case("write", e, "AFTER", n_write / 2, true, EXPECT_KEPT);
        rtn_fault_case("write", e, "AFTER", 0, false, EXPECT_KEPT);
        print_message("MATRIX | rtn → .xfq | write %s (call 1, 2, n/2, n-1, n of %ld; every call "
                      "after n/2; every call) | exit 1, one line naming the file and the errno, "
                      "previous file byte-identical (absent stays absent), no temp |\n",
                      errno_name(e), n_write);
        rtn_fault_case("fsync", e, "AT", 1, true, EXPECT_KEPT);
        rtn_fault_case("fsync", e, "AT", 1, false, EXPECT_KEPT);
        print_message("MATRIX | rtn → .xfq | fsync of the temp file %s | exit 1, one line, "
                      "previous file byte-identical, no temp |\n", errno_name(e));
        rtn_fault_case("fsync", e, "AT", 2, true, EXPECT_NEW_FAIL);
        print_message("MATRIX | rtn → .xfq | fsync of the directory %s (after the rename) | exit 1, "
                      "one line (\"written, but the fsync of its directory failed\"), the new file "
                      "complete under the final name, no temp |\n", errno_name(e));
        rtn_fault_case("close", e, "AT", 1, true, EXPECT_KEPT);
        print_message("MATRIX | rtn → .xfq | close of the temp file %s | exit 1, one line, "
                      "previous file byte-identical, no temp |\n", errno_name(e));
        rtn_fault_case("close", e, "AT", 2, true, EXPECT_NEW_OK);
        print_message("MATRIX | rtn → .xfq | close of the directory fd %s | exit 0, new file "
                      "complete (a read-only fd: nothing to lose) |\n", errno_name(e));
        rtn_fault_case("rename", e, "AT", 1, true, EXPECT_KEPT);
        rtn_fault_case("rename", e, "AT", 1, false, EXPECT_KEPT);
        print_message("MATRIX | rtn → .xfq | rename %s | exit 1, one line, previous file "
                      "byte-identical, no temp |\n", errno_name(e));
    }
    /* an interrupted call is not a failure: the write is retried, and a close
     * that reports EINTR has still closed (Linux) after the data was fsynced */
    rtn_fault_case("write", EINTR, "AT", n_write / 2, true, EXPECT_NEW_OK);
    rtn_fault_case("close", EINTR, "AT", 1, true, EXPECT_NEW_OK);
    print_message("MATRIX | rtn → .xfq | write EINTR (call n/2); close of the temp file EINTR | "
                  "exit 0, new file complete, no temp |\n");
}

/* A writing command given as argv (NULL-terminated) with one fault on files
 * whose path contains `needle`; `dest` must then hold `prev_bytes_of`. */
static run_res fault_run(const char *ops, const char *mode, long k, int err_no, const char *needle,
                         const char *const *argv)
{
    char e_ops[64], e_k[64], e_errno[64], e_path[3072];
    snprintf(e_ops, sizeof e_ops, "XF_FAULT_OPS=%s", ops);
    snprintf(e_k, sizeof e_k, "XF_FAULT_%s=%ld", mode, k);
    snprintf(e_errno, sizeof e_errno, "XF_FAULT_ERRNO=%s", errno_name(err_no));
    snprintf(e_path, sizeof e_path, "XF_FAULT_PATH=%s", needle);
    const char *env[] = {e_ops, e_k, e_errno, e_path, NULL};
    const char *a[18] = {0};
    for (int i = 0; i < 17 && argv[i]; i++)
        a[i] = argv[i];
    return run_xf(env, NULL, a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7], a[8], a[9], a[10],
                  a[11], a[12], a[13], a[14], a[15], a[16], NULL);
}

/* gptq → .xfq on stories260K: the same writer behind a different command. */
static void test_gptq_write_faults(void **state)
{
    (void)state;
    REQUIRE_SHIM();
    XF_TEST_REQUIRE_SHARED(model_s, "models/stories260K");
    char model[1024];
    snprintf(model, sizeof model, "%s", model_s);
    XF_TEST_REQUIRE_SHARED(calib, "data/tinystories/calib.txt");
    char calib_path[1024];
    snprintf(calib_path, sizeof calib_path, "%s", calib);
    /* --no-checkpoint: the output's own write; a failed run keeps a
     * checkpoint it made (OUT.ckpt/, for --resume: tests/faults/resume.sh) */
    const char *argv[] = {"gptq", "--bits", "3", "--group", "32", "--nsamples", "4", "--seqlen",
                          "64", "--threads", "1", "--no-checkpoint", "--calib", calib_path, model,
                          g_new, NULL};
    struct {
        const char *op, *mode;
        long k;
        int e;
    } cases[] = {{"write", "AT", 40, ENOSPC}, {"write", "AFTER", 0, EIO}, {"fsync", "AT", 1, EIO},
                 {"close", "AT", 1, EIO},     {"rename", "AT", 1, ENOSPC}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        clear_out();
        copy_file(g_prev, g_new);
        run_res r = fault_run(cases[i].op, cases[i].mode, cases[i].k, cases[i].e, g_out, argv);
        if (r.code != 1)
            fail_msg("gptq with %s %s=%ld: exit %d: %s", cases[i].op, cases[i].mode, cases[i].k,
                     r.code, r.err);
        assert_one_error(&r, g_new, strerror(cases[i].e));
        assert_true(xf_test_files_equal(g_new, g_prev));
        assert_int_equal(out_others("new.xfq"), 0);
        run_free(&r);
        print_message("MATRIX | gptq → .xfq | %s %s %s=%ld | exit 1, one line, previous file "
                      "byte-identical, no temp |\n", cases[i].op, errno_name(cases[i].e),
                      cases[i].mode, cases[i].k);
    }
}

/* regress: its reports (--junit, --report, --plot), --update of the suite
 * file, and the temporary .xfq each quantized case writes into TMPDIR. */
static void test_regress_write_faults(void **state)
{
    (void)state;
    REQUIRE_SHIM();
    XF_TEST_REQUIRE_SHARED(model_s, "models/stories260K");
    char model[1024];
    snprintf(model, sizeof model, "%s", model_s);
    XF_TEST_REQUIRE_SHARED(text_s, "data/tinystories/eval.txt");
    char *text;
    size_t tn;
    assert_int_equal(xf_read_file(text_s, &text, &tn, NULL), 0);
    free(xf_test_write_file(g_in, "eval.txt", text, tn > 3000 ? 3000 : tn));
    free(text);
    char suite_text[4 * 1024 + 1024];
    snprintf(suite_text, sizeof suite_text,
             "{\"cases\": [\n"
             " {\"id\": \"fp16\", \"model\": \"%s\", \"recipe\": {\"method\": \"fp16\"},\n"
             "  \"eval\": {\"text\": \"%s/eval.txt\", \"protocol\": \"gptq\", \"seqlen\": 64}, "
             "\"expect\": {}},\n"
             " {\"id\": \"rtn-w4\", \"model\": \"%s\", \"recipe\": {\"method\": \"rtn\", \"bits\": 4, "
             "\"group\": 32},\n"
             "  \"eval\": {\"text\": \"%s/eval.txt\", \"protocol\": \"gptq\", \"seqlen\": 64}, "
             "\"expect\": {\"ppl\": {\"value\": 5.0, \"rel_floor\": 0.9, \"rel_ceiling\": 9}}}\n"
             "]}\n",
             model, g_in, model, g_in);
    char suite_orig[2048], suite[2048], tmpdir[2048], e_tmp[3072];
    snprintf(suite_orig, sizeof suite_orig, "%s/suite.orig.json", g_root);
    snprintf(suite, sizeof suite, "%s/suite.json", g_out);
    snprintf(tmpdir, sizeof tmpdir, "%s/regtmp", g_root);
    assert_int_equal(mkdir(tmpdir, 0755), 0);
    snprintf(e_tmp, sizeof e_tmp, "TMPDIR=%s", tmpdir);
    FILE *fp = fopen(suite_orig, "w");
    assert_non_null(fp);
    fputs(suite_text, fp);
    assert_int_equal(fclose(fp), 0);

    const char *kinds[] = {"--junit", "--report", "--plot"};
    const char *names[] = {"junit.xml", "report.md", "plot.svg"};
    for (int i = 0; i < 3; i++) {
        const char *ops[] = {"write", "rename"};
        for (int o = 0; o < 2; o++) {
            clear_out();
            copy_file(suite_orig, suite);
            char dest[2048];
            snprintf(dest, sizeof dest, "%s/%s", g_out, names[i]);
            free(xf_test_write_file(g_out, names[i], "previous\n", 9));
            const char *argv[] = {"regress", suite, "--threads", "1", kinds[i], dest, NULL};
            int e = o == 0 ? ENOSPC : EIO;
            run_res r = fault_run(ops[o], "AT", 1, e, names[i], argv);
            assert_int_equal(r.code, 1);
            assert_one_error(&r, dest, strerror(e));
            char *got;
            size_t n;
            assert_int_equal(xf_read_file(dest, &got, &n, NULL), 0);
            assert_int_equal(n, 9);
            assert_memory_equal(got, "previous\n", 9);
            free(got);
            assert_int_equal(out_others(NULL), 2); /* the suite and the previous report */
            run_free(&r);
            print_message("MATRIX | regress %s | %s %s | exit 1, one line, previous report "
                          "byte-identical, no temp |\n", kinds[i], ops[o], errno_name(e));
        }
    }
    /* --update: the suite file itself is rewritten */
    const char *ops[] = {"write", "fsync", "rename"};
    for (int o = 0; o < 3; o++) {
        clear_out();
        copy_file(suite_orig, suite);
        const char *argv[] = {"regress", suite, "--threads", "1", "--update", NULL};
        run_res r = fault_run(ops[o], "AT", 1, ENOSPC, "suite.json", argv);
        assert_int_equal(r.code, 1);
        assert_one_error(&r, suite, strerror(ENOSPC));
        assert_true(xf_test_files_equal(suite, suite_orig));
        assert_int_equal(out_others("suite.json"), 0);
        run_free(&r);
        print_message("MATRIX | regress --update (suite file) | %s ENOSPC | exit 1, one line, "
                      "suite file byte-identical, no temp |\n", ops[o]);
    }
    /* the quantized case's temporary .xfq in TMPDIR: the disk is full */
    clear_out();
    copy_file(suite_orig, suite);
    {
        const char *env[] = {"XF_FAULT_OPS=write", "XF_FAULT_AFTER=0", "XF_FAULT_ERRNO=ENOSPC",
                             NULL, NULL, NULL};
        char e_path[3072];
        snprintf(e_path, sizeof e_path, "XF_FAULT_PATH=%s", tmpdir);
        env[3] = e_path;
        env[4] = e_tmp;
        run_res r = run_xf(env, NULL, "regress", suite, "--threads", "1", NULL);
        char so[2048];
        snprintf(so, sizeof so, "%s/stdout", g_scratch);
        char *out;
        size_t n;
        assert_int_equal(xf_read_file(so, &out, &n, NULL), 0);
        assert_int_equal(r.code, 1);
        /* the case fails with the write error; the fp16 case still passes */
        if (!strstr(r.err, strerror(ENOSPC)) && !strstr(out, strerror(ENOSPC)))
            fail_msg("regress with a full TMPDIR: no ENOSPC reported:\n%s\n%s", out, r.err);
        assert_non_null(strstr(out, "FAIL"));
        free(out);
        assert_int_equal(xf_test_dir_entries(tmpdir), 0);
        run_free(&r);
        print_message("MATRIX | regress, a case's temporary .xfq in TMPDIR | write ENOSPC (every "
                      "call) | exit 1, the case FAILs with the errno, TMPDIR left empty |\n");
    }
    /* killed while writing that temporary .xfq (at the 1st, 20th, 60th
     * write) and after it (at its rename): the leftovers are swept by the
     * next run */
    const long kills[] = {1, 20, 60, -1};
    for (int i = 0; i < 4; i++) {
        char e_k[64], e_path[3072];
        snprintf(e_k, sizeof e_k, "XF_FAULT_KILL_AT=%ld", kills[i] > 0 ? kills[i] : 1);
        snprintf(e_path, sizeof e_path, "XF_FAULT_PATH=%s", tmpdir);
        const char *env[] = {kills[i] > 0 ? "XF_FAULT_OPS=write" : "XF_FAULT_OPS=rename",
                             "XF_FAULT_KILL_PARTIAL=1", e_k, e_path, e_tmp, NULL};
        run_res r = run_xf(env, NULL, "regress", suite, "--threads", "1", NULL);
        assert_int_equal(r.sig, SIGKILL);
        run_free(&r);
        assert_int_equal(xf_test_dir_entries(tmpdir), 1); /* the dead run's temp */
        const char *env2[] = {e_tmp, NULL};
        r = run_xf(env2, NULL, "regress", suite, "--threads", "1", NULL); /* shim loaded, idle */
        assert_int_equal(r.code, 0);
        run_free(&r);
        assert_int_equal(xf_test_dir_entries(tmpdir), 0);
    }
    print_message("MATRIX | regress, a case's temporary .xfq in TMPDIR | SIGKILL at the 1st, 20th "
                  "and 60th write and at the rename | the dead run's file stays in TMPDIR; the "
                  "next regress run removes it (and passes) |\n");
}

/* SIGKILL at every counted call of writing an .xfq (before the call, and in
 * the middle of a write): the final name holds the previous file or the
 * complete new one, and the next run leaves exactly the complete file. */
static void test_kill_loop(void **state)
{
    (void)state;
    REQUIRE_SHIM();
    const char *args[] = {RTN4, g_model, g_new};
    const char *ops = "write,fsync,close,rename";
    long n = count_calls(ops, g_out, args, 9);
    assert_true(n > 100);
    /* ref loads with every CRC checked (info opens .xfq with CRCs) */
    run_res r = run_xf(NULL, NULL, "info", g_ref, NULL);
    assert_int_equal(r.code, 0);
    run_free(&r);
    int points = 0, kept = 0, complete = 0, temps_left = 0, absent = 0;
    for (int with_prev = 1; with_prev >= 0; with_prev--) {
        for (long k = 1; k <= n; k++) {
            for (int partial = 0; partial < 2; partial++) {
                clear_out();
                if (with_prev)
                    copy_file(g_prev, g_new);
                char e_ops[64], e_k[64], e_part[64], e_path[2048];
                snprintf(e_ops, sizeof e_ops, "XF_FAULT_OPS=%s", ops);
                snprintf(e_k, sizeof e_k, "XF_FAULT_KILL_AT=%ld", k);
                snprintf(e_part, sizeof e_part, "XF_FAULT_KILL_PARTIAL=%d", partial);
                snprintf(e_path, sizeof e_path, "XF_FAULT_PATH=%s", g_out);
                const char *env[] = {e_ops, e_k, e_part, e_path, NULL};
                r = run_xf(env, NULL, RTN4, g_model, g_new, NULL);
                if (r.sig != SIGKILL)
                    fail_msg("kill at call %ld: not killed (exit %d): %s", k, r.code, r.err);
                run_free(&r);
                points++;
                if (!xf_path_exists(g_new)) {
                    assert_false(with_prev); /* a previous file never disappears */
                    absent++;
                } else if (with_prev && xf_test_files_equal(g_new, g_prev)) {
                    kept++;
                } else if (xf_test_files_equal(g_new, g_ref)) {
                    complete++;
                } else {
                    fail_msg("kill at call %ld (partial %d): %s is neither the previous nor the "
                             "complete file", k, partial, g_new);
                }
                int others = out_others("new.xfq");
                assert_true(others <= 1);
                temps_left += others;
                /* the next run: complete output, the dead writer's temp removed */
                r = run_xf(NULL, NULL, RTN4, g_model, g_new, NULL);
                assert_int_equal(r.code, 0);
                run_free(&r);
                assert_true(xf_test_files_equal(g_new, g_ref));
                assert_int_equal(out_others("new.xfq"), 0);
            }
        }
    }
    /* a kill after the rename leaves the new file; before it, the old one */
    assert_true(kept > 0 && complete > 0 && absent > 0 && temps_left > 0);
    print_message("MATRIX | rtn → .xfq | SIGKILL at each of the %ld write/fsync/close/rename "
                  "calls, before the call and halfway through a write; with and without a "
                  "previous file (%d kills) | final name: previous file %d times, complete new "
                  "file %d times, absent (no previous) %d times, never partial; %d temp files "
                  "left by the kills, every one removed by the next run, which then wrote the "
                  "complete file |\n", n, points, kept, complete, absent, temps_left);
}

/* Every regular file of directory a equals the one of the same name in b,
 * and they hold the same names. */
static bool dirs_equal(const char *a, const char *b)
{
    DIR *d = opendir(a);
    if (!d)
        return false;
    int na = 0;
    bool same = true;
    struct dirent *e;
    while (same && (e = readdir(d)) != NULL) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        na++;
        char *pa = xf_path_join(a, e->d_name), *pb = xf_path_join(b, e->d_name);
        same = xf_path_exists(pb) && xf_test_files_equal(pa, pb);
        free(pa);
        free(pb);
    }
    closedir(d);
    return same && na == xf_test_dir_entries(b);
}

/* export (GGUF file; GPTQ and compressed-tensors directories): failed
 * writes and kills leave OUT absent, or the previous/complete file, never
 * partial; temp files and directories of killed exports are swept by the
 * next export. The .xfq comes from a random llama with a tokenizer (GGUF
 * carries the vocabulary). */
static void test_export_faults(void **state)
{
    (void)state;
    REQUIRE_SHIM();
    char model[1200], xfq[1200], gguf[2100], ref_gguf[1200], gdir[2100], ref_gdir[1200];
    snprintf(model, sizeof model, "%s/in/rndtok", g_root);
    snprintf(xfq, sizeof xfq, "%s/exp.xfq", g_root);
    snprintf(gguf, sizeof gguf, "%s/m.gguf", g_out);
    snprintf(ref_gguf, sizeof ref_gguf, "%s/ref.gguf", g_root);
    snprintf(gdir, sizeof gdir, "%s/m-gptq", g_out);
    snprintf(ref_gdir, sizeof ref_gdir, "%s/ref-gptq", g_root);
    xf_random_model_spec s = {.family = "llama", .hidden = 32, .intermediate = 64, .layers = 2,
                              .heads = 4, .kv_heads = 2, .vocab = 320, .max_pos = 32,
                              .f16 = true, .seed = 12};
    char *dir = xf_random_model_write(model, &s);
    assert_non_null(dir);
    free(dir);
    assert_int_equal(xf_random_tokenizer_write(model, false), 0);
    run_res r = run_xf(NULL, NULL, "rtn", "--bits", "4", "--group", "32", "--sym", "--threads",
                       "1", model, xfq, NULL);
    if (r.code != 0)
        fail_msg("rtn: %s", r.err);
    run_free(&r);
    /* the references, made under the output names the tests use */
    clear_out();
    r = run_xf(NULL, NULL, "export", "--to", "gguf", xfq, gguf, NULL);
    if (r.code != 0)
        fail_msg("export gguf: %s", r.err);
    run_free(&r);
    assert_int_equal(rename(gguf, ref_gguf), 0);
    r = run_xf(NULL, NULL, "export", "--to", "gptq", xfq, gdir, NULL);
    if (r.code != 0)
        fail_msg("export gptq: %s", r.err);
    run_free(&r);
    assert_int_equal(rename(gdir, ref_gdir), 0);

    /* failed writes */
    const char *argv_gguf[] = {"export", "--to", "gguf", xfq, gguf, NULL};
    const char *argv_gptq[] = {"export", "--to", "gptq", xfq, gdir, NULL};
    const char *argv_ct[] = {"export", "--to", "compressed-tensors", xfq, gdir, NULL};
    struct {
        const char *op, *mode;
        long k;
        int e;
    } cases[] = {{"write", "AT", 5, ENOSPC}, {"write", "AFTER", 0, EIO}, {"fsync", "AT", 1, EIO},
                 {"close", "AT", 1, EIO},    {"rename", "AT", 1, ENOSPC}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        /* GGUF over a previous file */
        clear_out();
        copy_file(g_prev, gguf);
        r = fault_run(cases[i].op, cases[i].mode, cases[i].k, cases[i].e, g_out, argv_gguf);
        if (r.code != 1)
            fail_msg("export gguf with %s %s=%ld: exit %d: %s", cases[i].op, cases[i].mode,
                     cases[i].k, r.code, r.err);
        assert_one_error(&r, gguf, strerror(cases[i].e));
        assert_true(xf_test_files_equal(gguf, g_prev));
        assert_int_equal(out_others("m.gguf"), 0);
        run_free(&r);
        /* directories: OUT never appears, no temp directory stays */
        for (int t = 0; t < 2; t++) {
            clear_out();
            r = fault_run(cases[i].op, cases[i].mode, cases[i].k, cases[i].e, g_out,
                          t ? argv_ct : argv_gptq);
            if (r.code != 1)
                fail_msg("export %s with %s %s=%ld: exit %d: %s", t ? "ct" : "gptq",
                         cases[i].op, cases[i].mode, cases[i].k, r.code, r.err);
            const char *line;
            assert_int_equal(error_lines(r.err, &line), 1);
            assert_non_null(strstr(line, strerror(cases[i].e)));
            assert_false(xf_path_exists(gdir));
            assert_int_equal(out_others(NULL), 0);
            run_free(&r);
        }
        print_message("MATRIX | export --to gguf / gptq / compressed-tensors | %s %s %s=%ld | "
                      "exit 1, one line with the errno; GGUF: previous file byte-identical; "
                      "directories: OUT absent; no temp file or directory |\n",
                      cases[i].op, errno_name(cases[i].e), cases[i].mode, cases[i].k);
    }

    /* kills: every call of a GPTQ directory export, and of a GGUF export */
    const char *ops = "write,fsync,close,rename";
    for (int t = 0; t < 2; t++) {
        const char *const *argv = t ? argv_gguf : argv_gptq;
        const char *out = t ? gguf : gdir, *ref = t ? ref_gguf : ref_gdir;
        clear_out();
        long n = count_calls(ops, g_out, argv, 5);
        assert_true(n > 10);
        int absent = 0, complete = 0, temps_left = 0;
        for (long k = 1; k <= n; k++) {
            clear_out();
            char e_ops[64], e_k[64], e_path[2048];
            snprintf(e_ops, sizeof e_ops, "XF_FAULT_OPS=%s", ops);
            snprintf(e_k, sizeof e_k, "XF_FAULT_KILL_AT=%ld", k);
            snprintf(e_path, sizeof e_path, "XF_FAULT_PATH=%s", g_out);
            const char *env[] = {e_ops, e_k, "XF_FAULT_KILL_PARTIAL=1", e_path, NULL};
            r = run_xf(env, NULL, argv[0], argv[1], argv[2], argv[3], argv[4], NULL);
            if (r.sig != SIGKILL)
                fail_msg("export kill at call %ld: not killed (exit %d): %s", k, r.code, r.err);
            run_free(&r);
            if (!xf_path_exists(out))
                absent++;
            else if (t ? xf_test_files_equal(out, ref) : dirs_equal(out, ref))
                complete++;
            else
                fail_msg("export killed at call %ld: %s is neither absent nor complete", k, out);
            int others = out_others(t ? "m.gguf" : "m-gptq");
            assert_true(others <= 1);
            temps_left += others;
            /* the next export (OUT removed when it was complete: a directory
             * export never replaces one) sweeps the dead writer's temp */
            if (!t)
                xf_test_rmtree(gdir);
            r = run_xf(NULL, NULL, argv[0], argv[1], argv[2], argv[3], argv[4], NULL);
            if (r.code != 0)
                fail_msg("export after a kill at %ld: %s", k, r.err);
            run_free(&r);
            assert_true(t ? xf_test_files_equal(out, ref) : dirs_equal(out, ref));
            assert_int_equal(out_others(t ? "m.gguf" : "m-gptq"), 0);
        }
        assert_true(absent > 0 && complete > 0 && temps_left > 0);
        print_message("MATRIX | export --to %s | SIGKILL at each of the %ld write/fsync/close/"
                      "rename calls (writes halfway) | OUT absent %d times, complete %d times, "
                      "never partial; %d temp %s left by the kills, every one removed by the "
                      "next export, which then wrote the complete output |\n",
                      t ? "gguf" : "gptq", n, absent, complete, temps_left,
                      t ? "files" : "directories");
    }
}

/* read(2) failing with EIO: the files xf_read_file and the JSON loader read. */
static void test_read_eio(void **state)
{
    (void)state;
    REQUIRE_SHIM();
    char config[2048];
    snprintf(config, sizeof config, "%s/config.json", g_model);
    for (long k = 1; k <= 2; k++) {
        char e_k[64], e_path[3072];
        snprintf(e_k, sizeof e_k, "XF_FAULT_AT=%ld", k);
        snprintf(e_path, sizeof e_path, "XF_FAULT_PATH=%s", config);
        const char *env[] = {"XF_FAULT_OPS=read", e_k, e_path, NULL};
        run_res r = run_xf(env, NULL, "info", g_model, NULL);
        assert_int_equal(r.code, 1);
        assert_one_error(&r, "config.json", strerror(EIO));
        run_free(&r);
    }
    print_message("MATRIX | info HF dir (config.json) | read EIO (first call; second call, at "
                  "EOF) | exit 1, one line naming the file and the errno |\n");

    const char *shared = xf_test_shared("models/stories260K");
    if (!shared) {
        print_message("SKIP (part): ../shared absent: text/tokenizer read faults not run\n");
        return;
    }
    char model[1024];
    snprintf(model, sizeof model, "%s", shared);
    char *text;
    size_t tn;
    const char *ev = xf_test_shared("data/tinystories/eval.txt");
    assert_non_null(ev);
    assert_int_equal(xf_read_file(ev, &text, &tn, NULL), 0);
    char *text_path = xf_test_write_file(g_in, "text.txt", text, tn > 3000 ? 3000 : tn);
    free(text);
    struct {
        const char *needle, *name;
        const char *cmd;
    } cases[] = {{text_path, "text.txt", "ppl"},
                 {"stories260K/tokenizer.json", "tokenizer.json", "ppl"},
                 {text_path, "text.txt", "gptq"}};
    for (size_t i = 0; i < 3; i++) {
        char e_path[3072];
        snprintf(e_path, sizeof e_path, "XF_FAULT_PATH=%s", cases[i].needle);
        const char *env[] = {"XF_FAULT_OPS=read", "XF_FAULT_AT=1", e_path, NULL};
        clear_out();
        run_res r = !strcmp(cases[i].cmd, "ppl")
                        ? run_xf(env, NULL, "ppl", model, "--text", text_path, "--seqlen", "64",
                                 "--threads", "1", NULL)
                        : run_xf(env, NULL, "gptq", "--bits", "4", "--nsamples", "2", "--seqlen",
                                 "64", "--threads", "1", "--calib", text_path, model, g_new, NULL);
        if (r.code != 1)
            fail_msg("%s with EIO on %s: exit %d: %s", cases[i].cmd, cases[i].name, r.code, r.err);
        assert_one_error(&r, cases[i].name, strerror(EIO));
        assert_int_equal(out_others(NULL), 0);
        run_free(&r);
        print_message("MATRIX | %s (%s) | read EIO | exit 1, one line naming the file and the "
                      "errno, nothing written |\n", cases[i].cmd, cases[i].name);
    }
    free(text_path);
}

/* A mapped input truncated to half its size right after mmap (the shim's
 * XF_FAULT_TRUNCATE_MAPPED): the reader touches pages past the new end. */
static void test_truncated_while_mapped(void **state)
{
    (void)state;
    REQUIRE_SHIM();
    char copy[2048];
    snprintf(copy, sizeof copy, "%s/victim.xfq", g_in);
    copy_file(g_ref, copy);
    const char *env[] = {"XF_FAULT_TRUNCATE_MAPPED=victim.xfq", NULL};
    run_res r = run_xf(env, NULL, "info", copy, NULL);
    if (r.code != 1)
        fail_msg("info on an .xfq truncated while mapped: exit %d sig %d: %s", r.code, r.sig, r.err);
    assert_one_error(&r, copy, "SIGBUS");
    run_free(&r);
    print_message("MATRIX | info .xfq (CRCs read the whole file) | file truncated to half while "
                  "mapped | exit 1, one line naming the file (SIGBUS at byte N) |\n");

    /* rtn reading safetensors that shrink under it, writing over a previous
     * file: the previous file survives; a temp left by the signal is removed
     * by the next run */
    char victim[2048], tensors[3072], cfg_from[3072], cfg_to[3072];
    snprintf(victim, sizeof victim, "%s/victim", g_in);
    assert_int_equal(mkdir(victim, 0755), 0);
    snprintf(tensors, sizeof tensors, "%s/model.safetensors", g_model);
    snprintf(cfg_from, sizeof cfg_from, "%s/config.json", g_model);
    snprintf(cfg_to, sizeof cfg_to, "%s/config.json", victim);
    copy_file(cfg_from, cfg_to);
    char st_to[3072];
    snprintf(st_to, sizeof st_to, "%s/model.safetensors", victim);
    copy_file(tensors, st_to);
    clear_out();
    copy_file(g_prev, g_new);
    const char *env2[] = {"XF_FAULT_TRUNCATE_MAPPED=victim/model.safetensors", NULL};
    r = run_xf(env2, NULL, RTN4, victim, g_new, NULL);
    if (r.code != 1)
        fail_msg("rtn on safetensors truncated while mapped: exit %d sig %d: %s", r.code, r.sig,
                 r.err);
    assert_one_error(&r, "model.safetensors", "SIGBUS");
    run_free(&r);
    assert_true(xf_test_files_equal(g_new, g_prev));
    int left = out_others("new.xfq");
    copy_file(tensors, st_to);
    r = run_xf(NULL, NULL, RTN4, victim, g_new, NULL);
    assert_int_equal(r.code, 0);
    run_free(&r);
    assert_int_equal(out_others("new.xfq"), 0);
    print_message("MATRIX | rtn (input safetensors) | input truncated to half while mapped | exit "
                  "1, one line naming the input (SIGBUS), previous output byte-identical, %d temp "
                  "left, removed by the next run |\n", left);
}

/* In a child with its own mount namespace (a user namespace too when not
 * root): a tmpfs of `size` bytes and `inodes` inodes at `dir`. 0 on success,
 * -1 when this machine does not allow it (containers, CI). */
static int mount_small_tmpfs(const char *dir, long size, long inodes)
{
    if (unshare(geteuid() == 0 ? CLONE_NEWNS : CLONE_NEWUSER | CLONE_NEWNS) != 0) {
        uid_t uid = geteuid();
        gid_t gid = getegid();
        if (unshare(CLONE_NEWUSER | CLONE_NEWNS) != 0)
            return -1;
        char map[64];
        int fd;
        snprintf(map, sizeof map, "0 %u 1", (unsigned)uid);
        if ((fd = open("/proc/self/uid_map", O_WRONLY)) < 0 || write(fd, map, strlen(map)) < 0)
            return -1;
        close(fd);
        if ((fd = open("/proc/self/setgroups", O_WRONLY)) >= 0) {
            if (write(fd, "deny", 4) < 0) {
                close(fd);
                return -1;
            }
            close(fd);
        }
        snprintf(map, sizeof map, "0 %u 1", (unsigned)gid);
        if ((fd = open("/proc/self/gid_map", O_WRONLY)) < 0 || write(fd, map, strlen(map)) < 0)
            return -1;
        close(fd);
    }
    /* private: the mount must not propagate to the parent's namespace */
    if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0)
        return -1;
    char opts[64];
    snprintf(opts, sizeof opts, "size=%ld,nr_inodes=%ld", size, inodes);
    return mount("tmpfs", dir, "tmpfs", 0, opts);
}

/* The body run in the namespaced child: returns 0 when every check holds,
 * 1 (after printing why) otherwise. */
static int real_full_disk_checks(const char *dir, long prev_size)
{
    char dest[2048];
    snprintf(dest, sizeof dest, "%s/new.xfq", dir);
    copy_file(g_prev, dest);
    struct stat st;
    if (stat(dest, &st) != 0 || st.st_size != prev_size) {
        fprintf(stderr, "the previous file does not fit the tmpfs\n");
        return 1;
    }
    /* data: the previous file fits, the new one beside it does not */
    run_res r = run_xf(NULL, NULL, RTN4, g_model, dest, NULL);
    int bad = r.code != 1 || !strstr(r.err, dest) || !strstr(r.err, strerror(ENOSPC)) ||
              xf_cli_count_lines(r.err) != 1 || !xf_test_files_equal(dest, g_prev) ||
              xf_test_dir_entries(dir) != 1;
    if (bad)
        fprintf(stderr, "full tmpfs (data): exit %d, %d entries, stderr: %s", r.code,
                xf_test_dir_entries(dir), r.err);
    run_free(&r);
    if (bad)
        return 1;
    /* the space the temp file took is free again: the same write still fails
     * the same way (not with a leftover eating the space) */
    r = run_xf(NULL, NULL, RTN4, g_model, dest, NULL);
    bad = r.code != 1 || xf_test_dir_entries(dir) != 1 || !xf_test_files_equal(dest, g_prev);
    run_free(&r);
    if (bad) {
        fprintf(stderr, "full tmpfs: second attempt differs\n");
        return 1;
    }
    /* removing the previous file makes room: the write succeeds, and the file
     * loads with its CRCs checked (its provenance names this path, so it is
     * not byte-equal to g_ref) */
    unlink(dest);
    r = run_xf(NULL, NULL, RTN4, g_model, dest, NULL);
    bad = r.code != 0 || xf_test_dir_entries(dir) != 1;
    if (bad)
        fprintf(stderr, "tmpfs with room: exit %d: %s", r.code, r.err);
    run_free(&r);
    if (bad)
        return 1;
    r = run_xf(NULL, NULL, "info", dest, NULL);
    bad = r.code != 0;
    if (bad)
        fprintf(stderr, "the file written to the tmpfs does not load: %s", r.err);
    run_free(&r);
    return bad;
}

static int real_no_inode_checks(const char *dir)
{
    char dest[2048];
    snprintf(dest, sizeof dest, "%s/new.xfq", dir);
    copy_file(g_prev, dest);
    /* every inode in use: the temp file cannot be created */
    run_res r = run_xf(NULL, NULL, RTN4, g_model, dest, NULL);
    int bad = r.code != 1 || !strstr(r.err, dest) || !strstr(r.err, "cannot create output") ||
              xf_cli_count_lines(r.err) != 1 || !xf_test_files_equal(dest, g_prev) ||
              xf_test_dir_entries(dir) != 1;
    if (bad)
        fprintf(stderr, "tmpfs without inodes: exit %d: %s", r.code, r.err);
    run_free(&r);
    return bad;
}

/* A real full filesystem: a tmpfs too small for the new file beside the
 * previous one, and one with no free inode. Needs mount namespaces; SKIPs
 * where the machine does not allow them. */
static void test_real_full_tmpfs(void **state)
{
    (void)state;
    struct stat sp, sr;
    assert_int_equal(stat(g_prev, &sp), 0);
    assert_int_equal(stat(g_ref, &sr), 0);
    long page = sysconf(_SC_PAGESIZE);
    long prev_pages = (sp.st_size + page - 1) / page, new_pages = (sr.st_size + page - 1) / page;
    assert_true(new_pages >= 4);
    struct {
        long size, inodes;
        const char *what;
    } fs[] = {{(prev_pages + new_pages / 2) * page, 64, "data"},
              {(prev_pages + 2 * new_pages) * page, 2, "inodes"}};
    for (int i = 0; i < 2; i++) {
        char dir[1024];
        snprintf(dir, sizeof dir, "%s/tmpfs%d", g_root, i);
        assert_int_equal(mkdir(dir, 0755), 0);
        fflush(NULL);
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
            if (mount_small_tmpfs(dir, fs[i].size, fs[i].inodes) != 0)
                _exit(77);
            int rc = i == 0 ? real_full_disk_checks(dir, (long)sp.st_size) : real_no_inode_checks(dir);
            umount(dir);
            _exit(rc);
        }
        int st;
        assert_int_equal(waitpid(pid, &st, 0), pid);
        assert_true(WIFEXITED(st));
        if (WEXITSTATUS(st) == 77) {
            print_message("SKIP (part): cannot mount a tmpfs here (no mount namespace): the "
                          "shim rows stand for a full disk\n");
            return;
        }
        assert_int_equal(WEXITSTATUS(st), 0);
        assert_int_equal(xf_test_dir_entries(dir), 0); /* nothing leaked to the real disk */
    }
    print_message("MATRIX | rtn → .xfq | real tmpfs, the new file does not fit beside the previous "
                  "one (%ld KiB, no shim) | exit 1, one line naming the file and ENOSPC, previous "
                  "file byte-identical, the temp's space freed (a retry fails the same way; "
                  "after removing the previous file the write succeeds) |\n",
                  fs[0].size / 1024);
    print_message("MATRIX | rtn → .xfq | real tmpfs with no free inode (no shim) | exit 1, one line "
                  "\"cannot create output: No space left on device\", previous file "
                  "byte-identical |\n");
}

/* The SIGBUS handler's /proc/self/maps parser (cli/mapped_fault.c). */
static void test_maps_line_parser(void **state)
{
    (void)state;
    const char *path;
    uint64_t off;
    char l1[] = "7f0000001000-7f0000003000 r--p 00002000 08:01 1234    /data/my model/x.xfq";
    assert_true(xf_maps_line_find(l1, 0x7f0000001000ull, &path, &off));
    assert_string_equal(path, "/data/my model/x.xfq"); /* spaces in the path kept */
    assert_int_equal(off, 0x2000);
    assert_true(xf_maps_line_find(l1, 0x7f0000002ffeull, &path, &off));
    assert_int_equal(off, 0x2000 + 0x1ffe);
    assert_false(xf_maps_line_find(l1, 0x7f0000003000ull, &path, &off)); /* end is exclusive */
    assert_false(xf_maps_line_find(l1, 0x7f0000000fffull, &path, &off));
    char l2[] = "7f0000001000-7f0000003000 rw-p 00000000 00:00 0 ";
    assert_false(xf_maps_line_find(l2, 0x7f0000001800ull, &path, &off)); /* anonymous */
    char l3[] = "55d0c0000000-55d0c0021000 rw-p 00000000 00:00 0                          [heap]";
    assert_false(xf_maps_line_find(l3, 0x55d0c0000010ull, &path, &off));
    char l4[] = "garbage";
    assert_false(xf_maps_line_find(l4, 0, &path, &off));
    char l5[] = "1000-2000 r--p 0 08:01 5 /a/b (deleted)";
    assert_true(xf_maps_line_find(l5, 0x1004, &path, &off));
    assert_string_equal(path, "/a/b (deleted)");
    assert_int_equal(off, 4);
}

/* Results printed on stdout are output too: a full device behind stdout. */
static void test_stdout_full(void **state)
{
    (void)state;
    /* info of an .xfq prints more than stdio's buffer: the failing write
     * happened in a printf, its errno may be gone by the end */
    run_res r = run_xf(NULL, "/dev/full", "info", g_ref, NULL);
    assert_int_equal(r.code, 1);
    assert_one_error(&r, "standard output", "write failed");
    run_free(&r);
    r = run_xf(NULL, "/dev/full", "info", g_model, "--json", NULL);
    assert_int_equal(r.code, 1);
    assert_one_error(&r, "standard output", "write failed");
    run_free(&r);
    /* output that fits the buffer fails in the final flush, errno known */
    r = run_xf(NULL, "/dev/full", "--version", NULL);
    assert_int_equal(r.code, 1);
    assert_one_error(&r, "standard output", strerror(ENOSPC));
    run_free(&r);
    print_message("MATRIX | info (stdout) | stdout on a full device (/dev/full: ENOSPC) | exit 1, "
                  "one line \"standard output: write failed\" (with the errno when the failing write "
                  "was the last flush) |\n");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_maps_line_parser),
        cmocka_unit_test(test_stdout_full),
        cmocka_unit_test(test_real_full_tmpfs),
        cmocka_unit_test(test_rtn_write_faults),
        cmocka_unit_test(test_gptq_write_faults),
        cmocka_unit_test(test_regress_write_faults),
        cmocka_unit_test(test_read_eio),
        cmocka_unit_test(test_truncated_while_mapped),
        cmocka_unit_test(test_kill_loop),
        cmocka_unit_test(test_export_faults),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
