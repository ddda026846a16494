/* The public model handle: a loaded model (model/loader.h). */
#ifndef XF_API_MODEL_H
#define XF_API_MODEL_H

#include "include/xfquant.h"
#include "model/loader.h"

struct xf_model {
    xf_loaded_model m;
};

#endif
