/* libFuzzer harness: the calibration readers (calib/calib_text.h) on one
 * file read as plain text and as JSON Lines (default field "text", and a
 * second field name). */
#include "calib/calib_text.h"
#include "tests/fuzz/fuzz_util.h"

static void read_as(const char *path, xf_calib_format fmt, const char *field)
{
    xf_calib_text ct;
    xf_error err = {0};
    if (xf_calib_text_read(&ct, path, fmt, field, &err) == 0) {
        if (ct.text[ct.len] != '\0') {
            fprintf(stderr, "%s: joined text is not NUL-terminated\n", path);
            abort();
        }
        xf_calib_text_free(&ct);
    } else
        xf_fuzz_check_error(&err, path);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char path[512];
    if (xf_fuzz_write_temp("calib", ".jsonl", data, size, path, sizeof path) != 0)
        return 0;
    read_as(path, XF_CALIB_TEXT, NULL);
    read_as(path, XF_CALIB_JSONL, NULL);
    read_as(path, XF_CALIB_AUTO, "content");
    unlink(path);
    return 0;
}
