/* An editable view of a loaded model, for exact weight transforms done
 * before quantization (SmoothQuant-style smoothing, QuaRot's norm folding
 * and rotations).
 *
 * The weights of an xf_loaded_model are borrowed views of the mmapped file
 * (fp16/bf16/fp32). An edit gives the model a tensor set of its own, in
 * which chosen tensors are replaced by owned fp32 copies (same name, same
 * shape, same storage layout: a GPT-2 Conv1D weight stays [in, out]), and
 * points m->tensors and m->weights at it, so everything downstream (the
 * forward runner, RTN/GPTQ, xf_quant_write_xfq which copies m->tensors by
 * name) sees the edited values without knowing about the edit. Edited
 * tensors reach the .xfq as F32 (the transform must stay exact; they are
 * norms, small, or linears, which get quantized anyway).
 *
 * Lifetime:
 *   xf_model_edit e;
 *   xf_model_edit_init(&e, m, err);      m->tensors = e's set, m->weights rebound
 *   xf_model_edit_f32(&e, t, &w, err);   w: the fp32 values of t, write them
 *   ...
 *   xf_model_edit_commit(&e, err);       rebinds m->weights (re-checks shapes)
 *   ... runners, quantization, xf_quant_write_xfq on m ...
 *   xf_model_edit_free(&e);              restores m's own tensors and binding
 *   xf_model_close(m);
 * Values written through xf_model_edit_f32 are visible through m->weights
 * at once (the views are updated in place), but fp32 copies taken earlier
 * (xf_dense_layer, xf_runner caches) are stale: build those after commit.
 * Free the edit before closing the model (the edit borrows the model's
 * views); freeing it after xf_model_close only releases the edit's memory.
 * An edit must not outlive or be shared by two models; one edit per model
 * at a time. After a failed edit call, m may be half transformed (or, after
 * a failed structural edit, unbound): free the edit, which restores it. */
#ifndef XF_MODEL_MODEL_EDIT_H
#define XF_MODEL_MODEL_EDIT_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "core/error.h"
#include "formats/tensor.h"
#include "model/config.h"
#include "model/loader.h"

typedef struct xf_model_edit {
    xf_loaded_model *m;          /* the edited model (borrowed) */
    const xf_tensor_set *orig;   /* m->tensors before the edit */
    xf_tensor_set set;           /* views of orig; edited items point into owned[] */
    float **owned;               /* [set.n]: fp32 values of an edited item, or NULL */
    char **names;                /* [set.n]: the name of an added item (owned), or NULL */
    size_t n_edited;             /* items with owned values */
    /* config edits (xf_model_edit_set_config, xf_model_edit_untie_head):
     * the config given to m and what it replaced */
    json_t *config;              /* owned, or NULL while the config is as loaded */
    const json_t *orig_config;
    xf_model_config orig_cfg;
} xf_model_edit;

/* Swaps m->tensors for the edit's set (initially views of the same bytes)
 * and rebinds m->weights to it. Fails (m unchanged) on out of memory. */
int xf_model_edit_init(xf_model_edit *e, xf_loaded_model *m, xf_error *err);
/* Restores m's own tensor set and binding (when m is still open) and frees
 * the fp32 copies. Safe on a zeroed or already freed edit. */
void xf_model_edit_free(xf_model_edit *e);

/* Makes tensor t editable and gives its fp32 values, row-major in the
 * stored shape (t->shape; [in, out] for a transposed Conv1D weight). t is
 * found by name, so a view from m->weights (before or after init) or from
 * the set itself all work. The first call converts to fp32 once; later
 * calls return the same buffer. Packed (quantized) tensors are refused:
 * transforms apply to full-precision weights. */
int xf_model_edit_f32(xf_model_edit *e, const xf_tensor *t, float **data, xf_error *err);

/* Gives a tied model (lm_head = embedding) a head of its own, so that the
 * two can be transformed differently (QuaRot folds the final norm into the
 * head, not into the embedding): an fp32 "lm_head.weight" holding the
 * embedding's values (a stored copy of the tied checkpoint is overwritten
 * with them) and "tie_word_embeddings": false through
 * xf_model_edit_set_config, so that the .xfq written from m reloads
 * untied. Rebinds m->weights (views taken before are stale). A no-op on
 * an untied model. Undone by xf_model_edit_free. */
int xf_model_edit_untie_head(xf_model_edit *e, xf_error *err);

/* Structural edits, for transforms that change which tensors a model has
 * (norm folding of LayerNorm models: norm biases dropped, an LM head bias
 * added). Both move the set's items: m->weights holds stale views until
 * the next successful rebind (xf_model_edit_commit or
 * xf_model_edit_set_config), which fails while the set and the config
 * disagree, so make the structural edits first, then change the config.
 * The model's own tensor set is never touched: xf_model_edit_free brings
 * everything back. */
/* Adds a zero-filled fp32 tensor `name` (copied) of shape [shape[0]]
 * (ndim 1) or [shape[0], shape[1]] (ndim 2); *data: its values. Fails if
 * a tensor of that name exists. */
int xf_model_edit_add_f32(xf_model_edit *e, const char *name, int ndim, const int64_t *shape,
                          float **data, xf_error *err);
/* Removes tensor `name` from the edit's set; fails if it is not there. */
int xf_model_edit_remove(xf_model_edit *e, const char *name, xf_error *err);

/* Sets `key` to `value` (a new reference, taken also on failure) in an
 * owned copy of m->config_json, re-parses m->cfg from it and rebinds
 * m->weights, so that the .xfq written from m carries the key and reloads
 * as edited. On failure m's config and cfg are unchanged and m->weights is
 * rebound to them (left unbound when the set fits neither: free the edit).
 * Undone by xf_model_edit_free. */
int xf_model_edit_set_config(xf_model_edit *e, const char *key, json_t *value, xf_error *err);

/* Rebinds m->weights to the edited set, re-checking every shape and dtype.
 * Call once the edits are written, before building runners or dense layers. */
int xf_model_edit_commit(xf_model_edit *e, xf_error *err);

#endif
