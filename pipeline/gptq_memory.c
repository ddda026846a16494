/* The memory plan of a GPTQ run (gptq_memory.h). */
#include "pipeline/gptq_memory.h"

#include "core/mem_info.h"
#include "model/block_stream.h"
#include "model/forward.h"
#include "model/linear_inputs.h"
#include "model/ops.h"

#define GIB(x) ((double)(x) / (double)(1u << 30))
/* the runtime, tokenizer, calibration text and tables: not modelled one by one */
#define MARGIN_BYTES ((int64_t)64 << 20)

static int64_t max64(int64_t a, int64_t b) { return a > b ? a : b; }

/* Bytes of one block's linears in fp32. */
static int64_t block_bytes(const xf_model_config *c)
{
    const int64_t q = c->n_heads * c->head_dim, kv = c->n_kv_heads * c->head_dim;
    const int64_t attn = c->hidden * (q + 2 * kv) + q * c->hidden;
    const int64_t mlp = (c->family == XF_FAMILY_LLAMA ? 3 : 2) * c->hidden * c->intermediate;
    return 4 * (attn + mlp);
}

/* The widest linear input's Hessian work, and its widest reader's sweep. */
static int64_t solve_bytes(const xf_model_config *c, bool v2)
{
    int64_t d = 0;
    for (int in = 0; in < XF_IN_COUNT; in++)
        d = max64(d, xf_lin_input_width(c, (xf_lin_input)in));
    const int64_t rows = max64(max64(c->hidden, c->intermediate), c->n_heads * c->head_dim);
    return (v2 ? 40 : 20) * d * d + 5 * rows * d;
}

/* The forward's workspace for T tokens (model/forward.c's buffers). */
static int64_t work_bytes(const xf_model_config *c, int64_t T)
{
    const int64_t q = c->n_heads * c->head_dim, kv = c->n_kv_heads * c->head_dim;
    const int64_t score_heads =
        xf_op_attention_score_heads(c->n_heads, T, XF_WORKSPACE_SCORE_BYTES);
    return 4 * T * (3 * c->hidden + 2 * q + 2 * kv + 2 * c->intermediate) +
           4 * score_heads * T * T + MARGIN_BYTES;
}

int xf_gptq_memory_plan(const xf_model_config *cfg, const xf_quant_options *o,
                        int64_t n_blocks, int64_t nsamples, int64_t T,
                        int64_t max_memory, xf_gptq_memory *m, const char *what,
                        xf_error *err)
{
    *m = (xf_gptq_memory){0};
    const int streams = o->gptq_v2 ? 2 : 1;
    m->block = streams * block_bytes(cfg);
    m->solve = solve_bytes(cfg, o->gptq_v2);
    const bool head = o->quantize_head || o->gguf;
    if (head)
        m->head = 20 * cfg->hidden * cfg->hidden + 4 * cfg->vocab * cfg->hidden;
    const int64_t quantized_params =
        n_blocks * block_bytes(cfg) / 4 + (head ? 2 * cfg->vocab * cfg->hidden : 0);
    /* bits per weight: the codes plus an fp16 scale (and zero) per group;
     * GGML types store at most 8.5 */
    const double group = o->group > 0 ? (double)o->group : (double)cfg->hidden;
    const double bpw = o->gguf ? 8.5 : (double)o->grid.bits + 24.0 / group;
    m->packed = (int64_t)((double)quantized_params * bpw / 8.0);
    m->work = work_bytes(cfg, T);
    const int64_t per_token = 4 * (cfg->hidden + xf_block_stream_kept_width(cfg, XF_STREAM_KEEP_NARROW)) * streams;
    m->states = nsamples * T * per_token;
    m->states_all = nsamples * T * 4 * (cfg->hidden + xf_block_stream_kept_width(cfg, XF_STREAM_KEEP_ALL)) * streams;
    m->spill_window = 2 * T * per_token; /* the window in use and the one released last */
    m->fixed = m->block + m->solve + m->head + m->packed + m->work;
    if (max_memory == 0) {
        int64_t avail = xf_mem_available();
        if (avail < 0)
            return xf_fail(err, "%s: cannot read MemAvailable from /proc/meminfo for the default "
                                "memory bound; give --max-memory SIZE",
                           what);
        m->budget = avail / 5 * 4;
        m->budget_default = true;
    } else {
        m->budget = max_memory;
    }
    if (m->budget < 0 || m->fixed + m->states_all <= m->budget) {
        m->keep_down = true;
        m->planned = m->fixed + m->states_all;
        return 0;
    }
    if (m->fixed + m->states <= m->budget) {
        m->planned = m->fixed + m->states;
        return 0;
    }
    m->spill = true;
    m->planned = m->fixed + m->spill_window;
    if (m->planned <= m->budget)
        return 0;
    return xf_fail(err, "%s: gptq needs at least %.2f GiB with the calibration states spilled "
                        "to disk (block %.2f + solve %.2f + head %.2f + quantized %.2f + work "
                        "%.2f + one window %.3f GiB; in memory the states would add %.2f GiB), "
                        "more than the bound of %.2f GiB%s",
                   what, GIB(m->planned), GIB(m->block), GIB(m->solve), GIB(m->head),
                   GIB(m->packed), GIB(m->work), GIB(m->spill_window), GIB(m->states),
                   GIB(m->budget), m->budget_default ? " (80 % of MemAvailable)" : "");
}

json_t *xf_gptq_memory_to_json(const xf_gptq_memory *m)
{
    return json_pack("{s:I, s:b, s:I, s:I, s:I, s:I, s:I, s:I, s:b, s:b, s:I}", "bound",
                     (json_int_t)m->budget, "bound_default", m->budget_default, "block",
                     (json_int_t)m->block, "solve", (json_int_t)m->solve, "head",
                     (json_int_t)m->head, "quantized", (json_int_t)m->packed, "work",
                     (json_int_t)m->work, "states",
                     (json_int_t)(m->keep_down ? m->states_all : m->states), "down_input_kept",
                     m->keep_down, "spilled", m->spill, "planned", (json_int_t)m->planned);
}
