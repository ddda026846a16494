/* One forward pass of a model over GPTQ's calibration windows, timed: the
 * block stream (model/block_stream.h) with no hooks, every window through
 * every decoder block, block by block, each block densified once, as
 * `xfquant gptq` runs it. The baseline of bench/gptq_bound.sh: gptq's
 * whole-model time against one such pass plus its solves.
 *
 * Usage: bench_stream MODEL CALIB NSAMPLES SEQLEN [MAX_BLOCKS]
 * Prints one JSON object: seconds (the blocks, not the loading or the
 * embedding), tokens, tokens_per_s, blocks. */
#include <stdio.h>
#include <stdlib.h>

#include "calib/calib_windows.h"
#include "core/progress.h"
#include "model/block_stream.h"
#include "model/loader.h"

int main(int argc, char **argv)
{
    if (argc < 5) {
        fprintf(stderr, "usage: bench_stream MODEL CALIB NSAMPLES SEQLEN [MAX_BLOCKS]\n");
        return 2;
    }
    const int64_t ns = atoll(argv[3]), T = atoll(argv[4]);
    xf_error err = {{0}};
    xf_loaded_model m;
    if (xf_model_open(&m, argv[1], &err) != 0) {
        fprintf(stderr, "bench_stream: %s\n", err.msg);
        return 1;
    }
    int64_t blocks = argc > 5 ? atoll(argv[5]) : m.cfg.n_layers;
    if (blocks <= 0 || blocks > m.cfg.n_layers)
        blocks = m.cfg.n_layers;
    const xf_calib_source src = {argv[2], NULL, XF_CALIB_AUTO, ns, T, 0, 0};
    xf_calib_set cs = {0};
    xf_block_stream bs;
    int rc = xf_calib_windows_load(&cs, &m, &src, NULL, &err);
    if (rc == 0)
        rc = xf_block_stream_init(&bs, &m.weights, cs.tokens, ns, T, XF_STREAM_KEEP_NONE, NULL,
                                  m.path, &err);
    double t0 = xf_now_seconds();
    for (int64_t l = 0; l < blocks && rc == 0; l++) {
        xf_dense_layer dl;
        rc = xf_dense_layer_init(&dl, &m.weights, (int)l, &err);
        if (rc == 0) {
            rc = xf_block_stream_run(&bs, &dl, XF_AT_END, NULL, &err);
            xf_dense_layer_free(&dl);
        }
    }
    double sec = xf_now_seconds() - t0;
    if (rc == 0) {
        printf("{\"seconds\": %.3f, \"tokens\": %lld, \"tokens_per_s\": %.1f, \"blocks\": %lld}\n",
               sec, (long long)(ns * T), (double)(ns * T) / sec, (long long)blocks);
        xf_block_stream_free(&bs);
    } else {
        fprintf(stderr, "bench_stream: %s\n", err.msg);
    }
    xf_calib_set_free(&cs);
    xf_model_close(&m);
    return rc == 0 ? 0 : 1;
}
