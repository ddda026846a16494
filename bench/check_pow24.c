/* The MSE clip search's approximation of powf(d, 2.4f) (quant/weights/grid.c)
 * on every float d in [2^-40, 2^20), the range the search uses it on: the
 * worst relative error against powf, which must stay below the bound
 * XF_GRID_POW24_REL the search's proof relies on (tests/test_grid.c checks
 * a sample). Exit 0 when it does. About 5 s on one core.
 * Usage: check_pow24 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "quant/weights/grid.h"

int main(void)
{
    double worst = 0.0;
    float at = 0.0f;
    for (int e = -40; e < 20; e++)
        for (uint32_t mu = 0; mu < (1u << 23); mu++) {
            uint32_t bits = (uint32_t)(e + 127) << 23 | mu;
            float d;
            memcpy(&d, &bits, sizeof d);
            double want = powf(d, 2.4f), got = xf_grid_pow24_approx(d);
            double rel = fabs(got - want) / want;
            if (!(rel <= worst)) {
                worst = rel;
                at = d;
            }
        }
    printf("floats checked: %u\nworst relative error: %.4e at d = %a\nbound: %.1e\n", 60u << 23,
           worst, (double)at, XF_GRID_POW24_REL);
    return worst <= XF_GRID_POW24_REL ? 0 : 1;
}
