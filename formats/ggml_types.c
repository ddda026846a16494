/* The traits table of the GGML types xfquant handles (formats/ggml_types.h). */
#include "formats/ggml_types.h"

const int8_t xf_ggml_iq4nl_levels[16] = {-127, -104, -83, -65, -49, -35, -22, -10,
                                         1,    13,   25,  38,  53,  69,  89,  113};

/* the name "GGML " + ggml's name, as one literal */
#define T(id, nm, bs, sz, q) {id, nm, bs, sz, q, "GGML " nm}
static const xf_ggml_type_traits traits[] = {
    T(XF_GGML_F32, "f32", 1, 4, false),
    T(XF_GGML_F16, "f16", 1, 2, false),
    T(XF_GGML_BF16, "bf16", 1, 2, false),
    T(XF_GGML_Q4_0, "q4_0", XF_GGML_QK, sizeof(xf_block_q4_0), true),
    T(XF_GGML_Q4_1, "q4_1", XF_GGML_QK, sizeof(xf_block_q4_1), true),
    T(XF_GGML_Q5_0, "q5_0", XF_GGML_QK, sizeof(xf_block_q5_0), true),
    T(XF_GGML_Q5_1, "q5_1", XF_GGML_QK, sizeof(xf_block_q5_1), true),
    T(XF_GGML_Q8_0, "q8_0", XF_GGML_QK, sizeof(xf_block_q8_0), true),
    T(XF_GGML_Q2_K, "q2_K", XF_GGML_QK_K, sizeof(xf_block_q2_k), true),
    T(XF_GGML_Q3_K, "q3_K", XF_GGML_QK_K, sizeof(xf_block_q3_k), true),
    T(XF_GGML_Q4_K, "q4_K", XF_GGML_QK_K, sizeof(xf_block_q4_k), true),
    T(XF_GGML_Q5_K, "q5_K", XF_GGML_QK_K, sizeof(xf_block_q5_k), true),
    T(XF_GGML_Q6_K, "q6_K", XF_GGML_QK_K, sizeof(xf_block_q6_k), true),
    T(XF_GGML_IQ4_NL, "iq4_nl", XF_GGML_QK, sizeof(xf_block_iq4_nl), true),
    T(XF_GGML_IQ4_XS, "iq4_xs", XF_GGML_QK_K, sizeof(xf_block_iq4_xs), true),
};

const xf_ggml_type_traits *xf_ggml_traits(uint32_t type)
{
    for (size_t i = 0; i < sizeof traits / sizeof traits[0]; i++)
        if ((uint32_t)traits[i].type == type)
            return &traits[i];
    return NULL;
}

size_t xf_ggml_row_bytes(const xf_ggml_type_traits *t, int64_t n)
{
    if (!t || n <= 0 || n % t->block_size != 0)
        return 0;
    return (size_t)(n / t->block_size) * t->type_size;
}

const char *xf_ggml_type_name(uint32_t type)
{
    /* ggml.h's enum ggml_type; ids 4, 5 and 31..33, 36..38 were removed from ggml */
    static const char *const names[] = {
        [0] = "f32",      [1] = "f16",     [2] = "q4_0",     [3] = "q4_1",    [6] = "q5_0",
        [7] = "q5_1",     [8] = "q8_0",    [9] = "q8_1",     [10] = "q2_K",   [11] = "q3_K",
        [12] = "q4_K",    [13] = "q5_K",   [14] = "q6_K",    [15] = "q8_K",   [16] = "iq2_xxs",
        [17] = "iq2_xs",  [18] = "iq3_xxs", [19] = "iq1_s",  [20] = "iq4_nl", [21] = "iq3_s",
        [22] = "iq2_s",   [23] = "iq4_xs", [24] = "i8",      [25] = "i16",    [26] = "i32",
        [27] = "i64",     [28] = "f64",    [29] = "iq1_m",   [30] = "bf16",   [34] = "tq1_0",
        [35] = "tq2_0",   [39] = "mxfp4",  [40] = "nvfp4",
    };
    return type < sizeof names / sizeof names[0] ? names[type] : NULL;
}

double xf_ggml_bits_per_weight(const xf_ggml_type_traits *t)
{
    return 8.0 * (double)t->type_size / (double)t->block_size;
}
