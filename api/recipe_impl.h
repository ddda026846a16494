/* What an xf_recipe handle holds (api/ only). */
#ifndef XF_API_RECIPE_IMPL_H
#define XF_API_RECIPE_IMPL_H

#include "include/xfquant.h"
#include "pipeline/recipe_options.h"

struct xf_recipe {
    xf_quant_recipe q;
};

#endif
