/* --rotate learned: R1 by Cayley SGD (quant/learned_rotation.h). */
#include "quant/rotate.h"

int xf_learned_r1(const xf_model_weights *mw, const xf_r1_request *q, double *R1,
                  json_t *record, xf_error *err)
{
    (void)mw;
    (void)q;
    (void)R1;
    (void)record;
    return xf_fail(err, "--rotate learned: work in progress");
}
