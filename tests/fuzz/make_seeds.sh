#!/usr/bin/env bash
# Regenerates the seed corpora of tests/fuzz/corpus/ (checked in; run this
# only to refresh them, then check the sizes: each directory stays under
# ~200 KB). Needs a normal build (for xfquant and fuzz_seed_model) and, for
# the config / tokenizer seeds taken from real models, ../shared.
#   tests/fuzz/make_seeds.sh BUILD_DIR
set -euo pipefail
cd "$(dirname "$0")/../.."
build=$(realpath "$1")
xfq=$build/cli/xfquant
out=tests/fuzz/corpus
shared=../shared
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# --- tiny tokenizers (SentencePiece-style BPE and GPT-2 byte-level) ----------
python3 tests/fuzz/make_json_seeds.py tokenizers "$tmp"

# --- tiny random models, then .xfq files written by xfquant ------------------
for fam in llama gpt2 opt; do
  "$build/tests/fuzz/fuzz_seed_model" "$tmp/$fam" "$fam" >/dev/null
done
cp "$tmp/tok-sp.json" "$tmp/llama/tokenizer.json"
cp "$tmp/tok-bl.json" "$tmp/gpt2/tokenizer.json"
cp "$tmp/llama/model.safetensors" "$out/safetensors/llama-f32.safetensors"
cp "$tmp/gpt2/model.safetensors" "$out/safetensors/gpt2-f32.safetensors"
q() { "$xfq" rtn --threads 1 "$@" >/dev/null; }
q --bits 4 --group 16 "$tmp/llama" "$out/xfq/llama-q4-g16-asym.xfq"
q --bits 2 --group -1 --sym --act-bits 8 --kv-bits 4 --attn-prob-bits 4 \
  --attn-prob-quant log2 "$tmp/llama" "$out/xfq/llama-q2-act.xfq"
q --bits 3 --group 8 --outliers 5% "$tmp/llama" "$out/xfq/llama-q3-outliers.xfq"
q --bits 4 --group 16 --rotate hadamard --seed 1 "$tmp/llama" "$out/xfq/llama-q4-hadamard.xfq"
q --bits 4 --group 16 --weight-grid log2 "$tmp/gpt2" "$out/xfq/gpt2-l4.xfq"
q --bits 8 --group -1 "$tmp/opt" "$out/xfq/opt-q8.xfq"
python3 tests/fuzz/make_json_seeds.py seeds "$out" "$shared" "$tmp"
du -sh "$out"/*
