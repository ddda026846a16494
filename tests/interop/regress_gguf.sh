#!/usr/bin/env bash
# Suite 'interop' (tests/interop/meson.build): the regression suite
# tests/regress/gguf.json — GGUF files of xfquant (gptq --gguf-type FT, then
# export --to gguf) and of llama.cpp (llama-quantize FT with an imatrix)
# scored by llama-perplexity itself (docs/regress.md "GGUF cases",
# docs/accuracy-gguf.md). Writes $XF_BUILD_ROOT/regress-gguf.{md,svg,xml}.
# Exit 77 (SKIP, with the reason) when ../shared or the llama.cpp tools are
# absent: `xfquant regress` would SKIP every case and exit 0.
set -euo pipefail
root=${XF_SRC_ROOT:-$(pwd)}
build=${XF_BUILD_ROOT:-$root/build}
xfq=${XFQUANT_BIN:-$build/cli/xfquant}
shared=$root/../shared
skip() { echo "SKIP: $*"; exit 77; }
[ -d "$shared/models" ] && [ -d "$shared/data" ] || skip "../shared (models and texts) is absent"
if [ -z "${XF_LLAMACPP_BIN:-}" ]; then
  [ -x "$shared/tools/llamacpp-build.sh" ] || skip "no XF_LLAMACPP_BIN and no ../shared/tools/llamacpp-build.sh"
  XF_LLAMACPP_BIN=$("$shared/tools/llamacpp-build.sh") || skip "the llama.cpp tools could not be built (above)"
fi
for t in llama-perplexity llama-quantize llama-imatrix; do
  [ -x "$XF_LLAMACPP_BIN/$t" ] || skip "$XF_LLAMACPP_BIN/$t is missing"
done
export XF_LLAMACPP_BIN
[ -x "$xfq" ] || { echo "xfquant binary not found at $xfq"; exit 1; }
cd "$root"
exec "$xfq" regress tests/regress/gguf.json --junit "$build/regress-gguf.xml" \
  --report "$build/regress-gguf.md" --plot "$build/regress-gguf.svg"
