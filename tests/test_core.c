/* core utilities: atomic output files, SHA-256, whole-file reads and path
 * helpers, the typed JSON getters, one-line error messages. */
#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/atomic_file.h"
#include "core/error.h"
#include "core/json_util.h"
#include "core/limits.h"
#include "core/mem_info.h"
#include "core/state_buffer.h"
#include "core/progress.h"
#include "core/dist.h"
#include "core/read_file.h"
#include "core/sha256.h"
#include "tests/support/test_util.h"


/* ---- atomic files ------------------------------------------------------- */

static void test_atomic_commit(void **state)
{
    (void)state;
    char *dir = xf_test_tmpdir();
    assert_non_null(dir);
    char *path = xf_path_join(dir, "out.bin");
    xf_atomic_file f;
    xf_error err;
    assert_int_equal(xf_atomic_open(&f, path, &err), 0);
    assert_false(xf_path_exists(path)); /* nothing under the final name yet */
    assert_int_equal(xf_atomic_write(&f, "hello", 5, &err), 0);
    assert_int_equal(xf_atomic_pad(&f, 8, &err), 0);
    assert_int_equal(f.pos, 8);
    assert_int_equal(xf_atomic_pad(&f, 8, &err), 0); /* already aligned: no bytes */
    assert_int_equal(f.pos, 8);
    assert_int_equal(xf_atomic_write(&f, "x", 1, &err), 0);
    assert_int_equal(xf_atomic_pad(&f, 4, &err), 0);
    assert_int_equal(f.pos, 12);
    assert_int_equal(xf_atomic_commit(&f, &err), 0);
    xf_atomic_abort(&f); /* after commit: only frees, keeps the file */

    char *data;
    size_t len;
    assert_int_equal(xf_read_file(path, &data, &len, &err), 0);
    assert_int_equal(len, 12);
    assert_memory_equal(data, "hello\0\0\0x\0\0\0", 12);
    free(data);
    assert_int_equal(xf_test_dir_entries(dir), 1); /* the temp file is gone */

    /* committing over an existing file replaces it */
    assert_int_equal(xf_atomic_open(&f, path, &err), 0);
    assert_int_equal(xf_atomic_write(&f, "new", 3, &err), 0);
    assert_int_equal(xf_atomic_commit(&f, &err), 0);
    assert_int_equal(xf_read_file(path, &data, &len, &err), 0);
    assert_int_equal(len, 3);
    assert_memory_equal(data, "new", 3);
    free(data);
    assert_int_equal(xf_test_dir_entries(dir), 1);

    free(path);
    xf_test_rmtree(dir);
    free(dir);
}

/* A pid that no process has: a child that has exited and been reaped
 * (reuse before the check is possible in theory; then the test fails loudly
 * rather than passing, never the other way round). */
static long dead_pid(void)
{
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0)
        _exit(0);
    int st;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    return (long)pid;
}

static void touch(const char *path)
{
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    fputs("stale", fp);
    assert_int_equal(fclose(fp), 0);
}

/* Temp files of killed writers: the next open of the same destination
 * removes exactly the ones whose writer is provably gone. */
static void test_atomic_stale_temps(void **state)
{
    (void)state;
    char *dir = xf_test_tmpdir();
    assert_non_null(dir);
    char *path = xf_path_join(dir, "out.xfq");
    long dead = dead_pid();
    char name[4096];

    /* the temp name xf_atomic_open uses has the documented prefix */
    char *mine = xf_atomic_temp_prefix(path, (long)getpid());
    assert_non_null(mine);
    xf_atomic_file f;
    xf_error err;
    assert_int_equal(xf_atomic_open(&f, path, &err), 0);
    assert_int_equal(strncmp(f.tmp_path, mine, strlen(mine)), 0);
    assert_int_equal(strlen(f.tmp_path), strlen(mine) + 6);
    xf_atomic_abort(&f);

    char *pd = xf_atomic_temp_prefix(path, dead);
    snprintf(name, sizeof name, "%sAbC123", pd);
    touch(name); /* stale: removed */
    char stale[4096];
    snprintf(stale, sizeof stale, "%s", name);
    snprintf(name, sizeof name, "%sLive01", mine);
    touch(name); /* this process: alive, kept */
    char *p1 = xf_atomic_temp_prefix(path, 1);
    snprintf(name, sizeof name, "%sInit01", p1);
    touch(name); /* pid 1 exists (or is another user's: EPERM): kept */
    /* another host's writer (the host hash differs): kept */
    {
        /* the hash is the 8 hex digits after ".tmp." in our prefix */
        const char *h = strstr(pd, ".tmp.") + 5;
        unsigned ours = (unsigned)strtoul(h, NULL, 16);
        snprintf(name, sizeof name, "%s/.out.xfq.tmp.%08x-%ld.Other1", dir, ours ^ 1u, dead);
    }
    touch(name);
    snprintf(name, sizeof name, "%s/.out.xfq.tmp.Old123", dir);
    touch(name); /* the old naming (no pid): not provably stale, kept */
    char *other = xf_path_join(dir, "other.xfq");
    char *po = xf_atomic_temp_prefix(other, dead);
    snprintf(name, sizeof name, "%sAbC123", po);
    touch(name); /* a dead writer of another destination: not this open's business */
    snprintf(name, sizeof name, "%sAbC12", pd);
    touch(name); /* not a name mkstemp makes (5 random characters): kept */
    snprintf(name, sizeof name, "%sDir123", pd);
    assert_int_equal(mkdir(name, 0755), 0); /* a directory, not a temp file: kept */
    assert_int_equal(xf_test_dir_entries(dir), 8);

    assert_int_equal(xf_atomic_open(&f, path, &err), 0);
    assert_false(xf_path_exists(stale));
    assert_int_equal(xf_test_dir_entries(dir), 8); /* 7 kept + this writer's own temp */
    assert_int_equal(xf_atomic_write(&f, "ok", 2, &err), 0);
    assert_int_equal(xf_atomic_commit(&f, &err), 0);
    assert_int_equal(xf_test_dir_entries(dir), 8); /* 7 kept + out.xfq */
    assert_int_equal(xf_atomic_remove_stale(path), 0); /* nothing more is provably stale */
    assert_int_equal(xf_atomic_remove_stale(other), 1);

    /* a concurrent writer (another live process) keeps its temp until it dies */
    int go[2];
    assert_int_equal(pipe(go), 0);
    pid_t writer = fork();
    assert_true(writer >= 0);
    if (writer == 0) {
        char c;
        close(go[1]);
        _exit(read(go[0], &c, 1) < 0); /* alive until the parent closes the pipe */
    }
    close(go[0]);
    char *pw = xf_atomic_temp_prefix(path, (long)writer);
    snprintf(name, sizeof name, "%sWrite1", pw);
    touch(name);
    assert_int_equal(xf_atomic_remove_stale(path), 0);
    assert_true(xf_path_exists(name));
    close(go[1]);
    int st;
    assert_int_equal(waitpid(writer, &st, 0), writer);
    assert_int_equal(xf_atomic_remove_stale(path), 1); /* gone now: removed */
    assert_false(xf_path_exists(name));
    free(pw);

    free(po);
    free(other);
    free(p1);
    free(pd);
    free(mine);
    free(path);
    xf_test_rmtree(dir);
    free(dir);
}

static void test_atomic_abort(void **state)
{
    (void)state;
    char *dir = xf_test_tmpdir();
    char *path = xf_path_join(dir, "out.bin");
    xf_atomic_file f;
    xf_error err;
    assert_int_equal(xf_atomic_open(&f, path, &err), 0);
    assert_int_equal(xf_test_dir_entries(dir), 1); /* the temp file */
    assert_int_equal(xf_atomic_write(&f, "partial", 7, &err), 0);
    xf_atomic_abort(&f);
    assert_int_equal(xf_test_dir_entries(dir), 0);
    assert_false(xf_path_exists(path));
    xf_atomic_abort(&f); /* twice is harmless */
    /* writing after abort is an error, not a crash */
    assert_int_equal(xf_atomic_write(&f, "x", 1, &err), -1);

    /* an existing file survives an aborted replacement */
    assert_int_equal(xf_atomic_open(&f, path, &err), 0);
    assert_int_equal(xf_atomic_write(&f, "keep", 4, &err), 0);
    assert_int_equal(xf_atomic_commit(&f, &err), 0);
    assert_int_equal(xf_atomic_open(&f, path, &err), 0);
    assert_int_equal(xf_atomic_write(&f, "lost", 4, &err), 0);
    xf_atomic_abort(&f);
    char *data;
    size_t len;
    assert_int_equal(xf_read_file(path, &data, &len, &err), 0);
    assert_int_equal(len, 4);
    assert_memory_equal(data, "keep", 4);
    free(data);
    assert_int_equal(xf_test_dir_entries(dir), 1);

    /* a missing directory: clean error naming the path */
    char *bad = xf_path_join(dir, "missing/out.bin");
    assert_int_equal(xf_atomic_open(&f, bad, &err), -1);
    assert_non_null(strstr(err.msg, bad));
    free(bad);
    free(path);
    xf_test_rmtree(dir);
    free(dir);
}

/* ---- sha256 ------------------------------------------------------------- */

static void test_sha256_vectors(void **state)
{
    (void)state;
    char hex[65];
    /* FIPS 180-2 test vectors */
    xf_sha256_hex("abc", 3, hex);
    assert_string_equal(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    xf_sha256_hex("", 0, hex);
    assert_string_equal(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    const char *two_blocks = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
    xf_sha256_hex(two_blocks, strlen(two_blocks), hex);
    assert_string_equal(hex, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");

    char *dir = xf_test_tmpdir();
    char *p = xf_test_write_file(dir, "abc.txt", "abc", 3);
    xf_error err;
    assert_int_equal(xf_sha256_file_hex(p, hex, &err), 0);
    assert_string_equal(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    free(p);
    p = xf_test_write_file(dir, "empty.txt", "", 0);
    assert_int_equal(xf_sha256_file_hex(p, hex, &err), 0);
    assert_string_equal(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    free(p);
    xf_test_rmtree(dir);
    free(dir);
}

/* ---- files and paths ---------------------------------------------------- */

static void test_read_file(void **state)
{
    (void)state;
    char *dir = xf_test_tmpdir();
    /* larger than the first read buffer, with NUL bytes inside */
    size_t n = 200000;
    char *src = malloc(n);
    assert_non_null(src);
    uint64_t rng = 7;
    for (size_t i = 0; i < n; i++)
        src[i] = (char)xf_test_rand_u64(&rng);
    src[10] = '\0';
    char *p = xf_test_write_file(dir, "data.bin", src, n);
    char *data;
    size_t len;
    xf_error err;
    assert_int_equal(xf_read_file(p, &data, &len, &err), 0);
    assert_int_equal(len, n);
    assert_memory_equal(data, src, n);
    assert_int_equal(data[n], '\0');
    free(data);
    free(src);
    free(p);

    p = xf_test_write_file(dir, "empty", "", 0);
    assert_int_equal(xf_read_file(p, &data, &len, &err), 0);
    assert_int_equal(len, 0);
    assert_string_equal(data, "");
    free(data);
    free(p);

    p = xf_path_join(dir, "missing.txt");
    assert_int_equal(xf_read_file(p, &data, &len, &err), -1);
    assert_null(data);
    assert_non_null(strstr(err.msg, p));
    assert_false(xf_path_exists(p));
    free(p);

    assert_true(xf_path_is_dir(dir));
    assert_true(xf_path_exists(dir));
    p = xf_path_join(dir, "data.bin");
    assert_false(xf_path_is_dir(p));
    free(p);
    xf_test_rmtree(dir);
    free(dir);

    char *j = xf_path_join("a/b", "c");
    assert_string_equal(j, "a/b/c");
    free(j);
    j = xf_path_join("a/b/", "c");
    assert_string_equal(j, "a/b/c");
    free(j);
}

/* ---- JSON --------------------------------------------------------------- */

static void test_json_getters(void **state)
{
    (void)state;
    xf_error err;
    const char *text = "{\"i\": 3, \"f\": 4096.0, \"r\": 2.5, \"b\": true, \"s\": \"x\", \"n\": null}";
    json_t *o = xf_json_load_buffer(text, strlen(text), "cfg.json", &err);
    assert_non_null(o);

    int64_t i;
    assert_int_equal(xf_json_get_int(o, "i", true, 0, &i, "cfg.json", &err), 0);
    assert_int_equal(i, 3);
    assert_int_equal(xf_json_get_int(o, "f", true, 0, &i, "cfg.json", &err), 0);
    assert_int_equal(i, 4096);
    assert_int_equal(xf_json_get_int(o, "absent", false, 17, &i, "cfg.json", &err), 0);
    assert_int_equal(i, 17);
    assert_int_equal(xf_json_get_int(o, "n", false, 5, &i, "cfg.json", &err), 0); /* null = absent */
    assert_int_equal(i, 5);
    assert_int_equal(xf_json_get_int(o, "absent", true, 0, &i, "cfg.json", &err), -1);
    assert_non_null(strstr(err.msg, "cfg.json"));
    assert_non_null(strstr(err.msg, "absent"));
    assert_int_equal(xf_json_get_int(o, "r", true, 0, &i, "cfg.json", &err), -1);
    assert_non_null(strstr(err.msg, "\"r\""));
    assert_int_equal(xf_json_get_int(o, "s", true, 0, &i, "cfg.json", &err), -1);

    double d;
    assert_int_equal(xf_json_get_double(o, "r", true, 0, &d, "cfg.json", &err), 0);
    assert_true(d == 2.5);
    assert_int_equal(xf_json_get_double(o, "i", true, 0, &d, "cfg.json", &err), 0);
    assert_true(d == 3.0);
    assert_int_equal(xf_json_get_double(o, "absent", false, 1.5, &d, "cfg.json", &err), 0);
    assert_true(d == 1.5);
    assert_int_equal(xf_json_get_double(o, "b", true, 0, &d, "cfg.json", &err), -1);
    assert_int_equal(xf_json_get_double(o, "absent", true, 0, &d, "cfg.json", &err), -1);

    bool b;
    assert_int_equal(xf_json_get_bool(o, "b", true, false, &b, "cfg.json", &err), 0);
    assert_true(b);
    assert_int_equal(xf_json_get_bool(o, "absent", false, false, &b, "cfg.json", &err), 0);
    assert_false(b);
    assert_int_equal(xf_json_get_bool(o, "i", true, false, &b, "cfg.json", &err), -1);
    assert_int_equal(xf_json_get_bool(o, "absent", true, false, &b, "cfg.json", &err), -1);

    const char *s;
    assert_int_equal(xf_json_get_string(o, "s", true, NULL, &s, "cfg.json", &err), 0);
    assert_string_equal(s, "x");
    assert_int_equal(xf_json_get_string(o, "absent", false, "dflt", &s, "cfg.json", &err), 0);
    assert_string_equal(s, "dflt");
    assert_int_equal(xf_json_get_string(o, "i", true, NULL, &s, "cfg.json", &err), -1);
    assert_non_null(strstr(err.msg, "\"i\""));
    assert_int_equal(xf_json_get_string(o, "absent", true, NULL, &s, "cfg.json", &err), -1);

    /* deterministic dump: sorted keys, compact */
    json_t *u = json_pack("{s:i, s:i, s:[i,i]}", "zeta", 1, "alpha", 2, "mid", 3, 4);
    char *dump = xf_json_dump_sorted(u);
    assert_string_equal(dump, "{\"alpha\":2,\"mid\":[3,4],\"zeta\":1}");
    free(dump);
    json_decref(u);
    json_decref(o);

    /* malformed text and duplicate keys: one line naming the source */
    assert_null(xf_json_load_buffer("{\"a\":1,\n\"a\":2}", 14, "dup.json", &err));
    assert_non_null(strstr(err.msg, "dup.json"));
    assert_null(strchr(err.msg, '\n'));
    assert_null(xf_json_load_buffer("{\"a\":", 5, "bad.json", &err));
    assert_non_null(strstr(err.msg, "bad.json"));

    char *dir = xf_test_tmpdir();
    char *p = xf_test_write_file(dir, "c.json", "{\"k\": [1, 2]}", 13);
    json_t *f = xf_json_load_file(p, &err);
    assert_non_null(f);
    assert_int_equal(json_array_size(json_object_get(f, "k")), 2);
    json_decref(f);
    free(p);
    p = xf_test_write_file(dir, "bad.json", "{\n\"k\": ]", 8);
    assert_null(xf_json_load_file(p, &err));
    assert_non_null(strstr(err.msg, p));
    assert_non_null(strstr(err.msg, "line 2"));
    free(p);
    xf_test_rmtree(dir);
    free(dir);
}

/* ---- errors ------------------------------------------------------------- */

/* A JSON file over the cap is refused from its size, before it is read
 * (a sparse file: no disk is used). */
static void test_json_file_cap(void **state)
{
    (void)state;
    char *dir = xf_test_tmpdir();
    char *path = xf_path_join(dir, "huge.json");
    FILE *fp = fopen(path, "wb");
    assert_non_null(fp);
    assert_int_equal(ftruncate(fileno(fp), (off_t)XF_MAX_JSON_FILE_BYTES + 1), 0);
    fclose(fp);
    xf_error err = {{0}};
    assert_null(xf_json_load_file(path, &err));
    assert_non_null(strstr(err.msg, "exceeds the limit"));
    assert_non_null(strstr(err.msg, path));
    /* a small file is read (and fails as JSON: zero bytes are not JSON) */
    assert_int_equal(truncate(path, 16), 0);
    assert_null(xf_json_load_file(path, &err));
    assert_null(strstr(err.msg, "exceeds the limit"));
    unlink(path);
    free(path);
    xf_test_rmtree(dir);
    free(dir);
}

static void test_error_one_line(void **state)
{
    (void)state;
    xf_error err;
    assert_int_equal(xf_fail(&err, "%s: bad\nthing\r%d", "f.txt", 7), -1);
    assert_string_equal(err.msg, "f.txt: bad thing 7");

    assert_int_equal(xf_fail(&err, "inner\nproblem"), -1);
    assert_int_equal(xf_fail_prefix(&err, "outer %d\nctx", 2), -1);
    assert_string_equal(err.msg, "outer 2 ctx: inner problem");
    assert_null(strchr(err.msg, '\n'));

    /* overlong prefix + message: truncated, terminated, still one line */
    char big[3000];
    memset(big, 'p', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    big[100] = '\n';
    xf_fail(&err, "%s", big);
    xf_fail_prefix(&err, "%s", big);
    assert_int_equal(strlen(err.msg), XF_ERROR_MSG_MAX - 1);
    assert_null(strchr(err.msg, '\n'));

    /* a NULL error sink is allowed */
    assert_int_equal(xf_fail(NULL, "dropped %d", 1), -1);
    assert_int_equal(xf_fail_prefix(NULL, "dropped"), -1);

    xf_error_clear(&err);
    assert_string_equal(err.msg, "");
}

/* A spilled state buffer: the file is invisible (unlinked at once), the
 * values survive release() (they live in the file), release() takes the
 * pages out of the resident set, and an unusable directory is one line
 * naming it. In memory, release() is a no-op. */
static void test_state_buffer_spill(void **state)
{
    (void)state;
    char *dir = xf_test_tmpdir();
    assert_non_null(dir);
    const size_t n = (size_t)4 << 20; /* 16 MiB */
    xf_state_buffer b;
    xf_error err = {{0}};
    assert_int_equal(xf_state_buffer_init(&b, n, dir, "states", &err), 0);
    assert_true(b.spilled);
    assert_int_equal(xf_test_dir_entries(dir), 0);
    for (size_t i = 0; i < n; i++)
        b.data[i] = (float)i * 0.5f;
    xf_mem_usage before, after;
    xf_mem_usage_read(&before);
    xf_state_buffer_release(&b, 0, n);
    xf_mem_usage_read(&after);
    if (before.rss >= 0) /* /proc present: at least 12 of the 16 MiB left the resident set */
        assert_true(before.rss - after.rss >= (int64_t)12 << 20);
    for (size_t i = 0; i < n; i += 4099)
        assert_true(b.data[i] == (float)i * 0.5f);
    assert_true(b.data[n - 1] == (float)(n - 1) * 0.5f);
    xf_state_buffer_free(&b);

    assert_int_equal(xf_state_buffer_init(&b, 1000, NULL, "states", &err), 0);
    assert_false(b.spilled);
    b.data[999] = 3.0f;
    xf_state_buffer_release(&b, 0, 1000);
    assert_true(b.data[999] == 3.0f && b.data[0] == 0.0f);
    xf_state_buffer_free(&b);

    char missing[4096];
    snprintf(missing, sizeof missing, "%s/no/such/dir", dir);
    assert_int_equal(xf_state_buffer_init(&b, 1000, missing, "states", &err), -1);
    assert_non_null(strstr(err.msg, missing));
    assert_null(strchr(err.msg, '\n'));
    xf_test_rmtree(dir);
    free(dir);
}

/* MemAvailable and the process's memory figures are read (Linux). */
static void test_mem_info(void **state)
{
    (void)state;
    if (access("/proc/meminfo", R_OK) != 0)
        skip();
    assert_true(xf_mem_available() > 0);
    xf_mem_usage u;
    xf_mem_usage_read(&u);
    assert_true(u.rss > 0 && u.peak_rss >= u.rss && u.rss_anon > 0 && u.rss_anon <= u.rss);
}

typedef struct route_seen {
    int n_events, n_simple;
    xf_progress_kind kinds[8];
    int64_t done[8], total[8];
    char simple_stage[8][160];
    int64_t simple_done[8];
} route_seen;

static void on_info(void *user, const xf_progress_info *e)
{
    route_seen *s = user;
    if (s->n_events < 8) {
        s->kinds[s->n_events] = e->kind;
        s->done[s->n_events] = e->done;
        s->total[s->n_events] = e->total;
    }
    s->n_events++;
}

static void on_simple(void *user, const char *stage, int64_t done, int64_t total)
{
    (void)total;
    route_seen *s = user;
    if (s->n_simple < 8) {
        snprintf(s->simple_stage[s->n_simple], 160, "%s", stage);
        s->simple_done[s->n_simple] = done;
    }
    s->n_simple++;
}

/* A routed loop: the event sink gets START before the first update and an
 * END with the counts where the loop stopped; the simple sink the stage
 * text with the detail and the end as -1, no start; after the pop the
 * route is gone. */
static void test_progress_route(void **state)
{
    (void)state;
    route_seen s = {0};
    xf_progress_route prev;
    xf_progress_route_push(on_simple, &s, on_info, &s, &prev);
    xf_progress p;
    xf_progress_init(&p, "test: step");
    xf_progress_update(&p, 1, 4, 0, " detail");
    xf_progress_update(&p, 2, 4, 0, NULL);
    xf_progress_finish(&p);
    xf_progress_route_pop(&prev);
    assert_int_equal(s.n_events, 4);
    assert_int_equal(s.kinds[0], XF_PEV_START);
    assert_int_equal(s.done[0], 0);
    assert_int_equal(s.total[0], 4);
    assert_int_equal(s.kinds[1], XF_PEV_UPDATE);
    assert_int_equal(s.kinds[3], XF_PEV_END);
    assert_int_equal(s.done[3], 2); /* stopped at 2 of 4 */
    assert_int_equal(s.total[3], 4);
    assert_int_equal(s.n_simple, 3);
    assert_string_equal(s.simple_stage[0], "test: step detail");
    assert_string_equal(s.simple_stage[1], "test: step");
    assert_int_equal(s.simple_done[2], -1);
    xf_progress_init(&p, "after the pop");
    xf_progress_update(&p, 1, 1, 0, NULL);
    xf_progress_finish(&p);
    assert_int_equal(s.n_events, 4);
    assert_int_equal(s.n_simple, 3);
}

/* core/dist.h outside a launcher: rank 0 of 1, no MPI call; the
 * launcher's world size read from the environment (Slurm's only inside a
 * step). The MPI side runs in the 'mpi' suite (tests/mpi/). */
static void test_dist_single(void **state)
{
    (void)state;
    static const char *const vars[] = {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE",
                                       "SLURM_STEP_NUM_TASKS", "PMIX_RANK", "SLURM_NTASKS"};
    char *saved[5];
    for (int i = 0; i < 5; i++) {
        const char *v = getenv(vars[i]);
        saved[i] = v ? strdup(v) : NULL;
        unsetenv(vars[i]);
    }
    assert_int_equal(xf_dist_launched_size(), 0);
    setenv("SLURM_NTASKS", "4", 1);
    assert_int_equal(xf_dist_launched_size(), 0); /* an allocation's shell, not a step */
    setenv("PMIX_RANK", "0", 1);
    assert_int_equal(xf_dist_launched_size(), 1); /* PMIx: launched, size from MPI */
    setenv("SLURM_STEP_NUM_TASKS", "4", 1);
    assert_int_equal(xf_dist_launched_size(), 4);
    setenv("OMPI_COMM_WORLD_SIZE", "x3", 1);      /* not a number: the next variable */
    assert_int_equal(xf_dist_launched_size(), 4);
    setenv("OMPI_COMM_WORLD_SIZE", "3", 1);
    assert_int_equal(xf_dist_launched_size(), 3);
    for (int i = 0; i < 5; i++)
        unsetenv(vars[i]);

    xf_dist d;
    xf_error err = {{0}};
    assert_int_equal(xf_dist_open(&d, &err), 0);
    assert_int_equal(d.rank, 0);
    assert_int_equal(d.size, 1);
    assert_false(d.mpi);
    int64_t v = 41;
    assert_int_equal(xf_dist_sum_i64(&d, &v, &err), 0);
    assert_int_equal(v, 41);
    char buf[4] = "abc";
    assert_int_equal(xf_dist_bcast(&d, 0, buf, sizeof buf, &err), 0);
    assert_string_equal(buf, "abc");
    assert_int_equal(xf_dist_agree(&d, 0, &err), 0);
    xf_fail(&err, "model.safetensors: truncated");
    assert_int_equal(xf_dist_agree(&d, -1, &err), -1);
    assert_string_equal(err.msg, "model.safetensors: truncated"); /* untouched */
    assert_int_equal(xf_dist_send(&d, 1, buf, 1, &err), -1); /* no other rank */
    xf_dist_close(&d);
    for (int i = 0; i < 5; i++) {
        if (saved[i])
            setenv(vars[i], saved[i], 1);
        free(saved[i]);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_atomic_commit),  cmocka_unit_test(test_atomic_abort),
        cmocka_unit_test(test_atomic_stale_temps),
        cmocka_unit_test(test_sha256_vectors), cmocka_unit_test(test_read_file),
        cmocka_unit_test(test_json_getters),   cmocka_unit_test(test_error_one_line),
        cmocka_unit_test(test_json_file_cap),
        cmocka_unit_test(test_state_buffer_spill), cmocka_unit_test(test_mem_info),
        cmocka_unit_test(test_progress_route),
        cmocka_unit_test(test_dist_single),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
