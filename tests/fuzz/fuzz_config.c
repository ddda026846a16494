/* libFuzzer harness: an HF config.json parsed into the model config
 * (model/config.h), read as the loaders read it (core/json_util.h). */
#include "core/json_util.h"
#include "model/config.h"
#include "tests/fuzz/fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    xf_error err = {0};
    json_t *j = xf_json_load_buffer((const char *)data, size, "config.json", &err);
    if (!j) {
        xf_fuzz_check_error(&err, "config.json");
        return 0;
    }
    xf_model_config cfg;
    if (xf_model_config_parse(&cfg, j, "config.json", &err) != 0)
        xf_fuzz_check_error(&err, "config.json");
    json_decref(j);
    return 0;
}
