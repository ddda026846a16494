/* libFuzzer harness: a .safetensors file (formats/safetensors.h), every
 * tensor it accepts converted to fp32. */
#include "formats/safetensors.h"
#include "tests/fuzz/fuzz_util.h"
#include "tests/fuzz/fuzz_tensors.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char path[512];
    if (xf_fuzz_write_temp("safetensors", ".safetensors", data, size, path, sizeof path) != 0)
        return 0;
    xf_safetensors st;
    xf_error err = {0};
    if (xf_safetensors_open(&st, path, &err) == 0) {
        for (size_t i = 0; i < st.n_tensors; i++) {
            (void)xf_safetensors_find(&st, st.tensors[i].name);
            xf_fuzz_convert_tensor(&st.tensors[i]);
        }
        xf_safetensors_close(&st);
    } else
        xf_fuzz_check_error(&err, path);
    unlink(path);
    return 0;
}
