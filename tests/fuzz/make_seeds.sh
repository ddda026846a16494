#!/usr/bin/env bash
# Regenerates the seed corpora of tests/fuzz/corpus/ (checked in; run this
# only to refresh them, then check the sizes: each directory stays under
# ~200 KB). Needs a normal build (for xfquant and fuzz_seed_model). Nothing
# comes from ../shared: the repository never holds shared files.
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

# --- GGUF (xfquant export, and the tests' writer for the other GGML types) ---
# and GPTQ / compressed-tensors checkpoints (xfquant export), from models
# whose widths the block formats take (hidden 32: GGUF blocks of 32,
# GPTQ / compressed-tensors words of 32 bits)
"$build/tests/fuzz/fuzz_seed_model_sized" "$tmp/l32" llama 32 19 >/dev/null
"$build/tests/fuzz/fuzz_seed_model_sized" "$tmp/l32kv2" llama 32 19 2 >/dev/null
"$build/tests/fuzz/fuzz_seed_model_sized" "$tmp/g32" gpt2 32 263 >/dev/null
cp "$tmp/tok-sp.json" "$tmp/l32/tokenizer.json"
cp "$tmp/tok-sp.json" "$tmp/l32kv2/tokenizer.json"
cp "$tmp/tok-bl.json" "$tmp/g32/tokenizer.json"
ex() { "$xfq" export "$@" >/dev/null; }
mkdir -p "$out/gguf" "$out/hf_quantized"
q --bits 4 --group 32 --sym "$tmp/l32" "$tmp/l-q4s.xfq"
q --bits 8 --group 32 --sym "$tmp/l32" "$tmp/l-q8s.xfq"
q --bits 4 --group 32 "$tmp/l32" "$tmp/l-q4a.xfq"
q --bits 4 --group 32 "$tmp/g32" "$tmp/g-q4a.xfq"
ex --to gguf --type f32 "$tmp/l32" "$out/gguf/llama-f32.gguf"
ex --to gguf --type f16 "$tmp/l32kv2" "$out/gguf/llama-kv2-f16.gguf"
ex --to gguf "$tmp/l-q4s.xfq" "$out/gguf/llama-q4_0.gguf"
ex --to gguf "$tmp/l-q8s.xfq" "$out/gguf/llama-q8_0.gguf"
ex --to gguf "$tmp/l-q4a.xfq" "$out/gguf/llama-q5_0.gguf"
ex --to gguf --gguf-asym q4_1 "$tmp/g-q4a.xfq" "$out/gguf/gpt2-q4_1.gguf"
# .xfq with GGML block tensors: a model (32-element types) and every K-quant
"$build/tests/fuzz/fuzz_seed_xfq_ggml" "$tmp/l32" "$out/xfq/llama-ggml-blocks.xfq" \
  "$out/xfq/ggml-kquants.xfq"
"$build/tests/fuzz/fuzz_seed_gguf_types" "$out/gguf/llama-kquants-iq4.gguf"
"$build/tests/fuzz/fuzz_seed_gguf_types" "$out/gguf/llama-kquants-align1.gguf" 1
# hf_quantized inputs: u32 LE length of config.json, config.json, model.safetensors
printf 'Once upon a time there was a little cat. The cat ran to the sea.\n%.0s' $(seq 20) \
  >"$tmp/calib.txt"
q --bits 2 --group 16 "$tmp/l32" "$tmp/l-q2a.xfq"
q --bits 8 --group -1 "$tmp/l32" "$tmp/l-q8a.xfq"
q --bits 3 --group 32 --sym "$tmp/l32kv2" "$tmp/l-q3s.xfq"
"$xfq" gptq --bits 4 --group 16 --act-order --calib "$tmp/calib.txt" --nsamples 2 --threads 1 \
  "$tmp/l32" "$tmp/l-q4-act.xfq" >/dev/null
hfq() { # XFQ TARGET NAME
  rm -rf "$tmp/hfq"
  ex --to "$2" "$tmp/$1.xfq" "$tmp/hfq"
  python3 -c 'import struct, sys
c = open(sys.argv[1] + "/config.json", "rb").read()
st = open(sys.argv[1] + "/model.safetensors", "rb").read()
open(sys.argv[2], "wb").write(struct.pack("<I", len(c)) + c + st)' "$tmp/hfq" "$out/hf_quantized/$3"
}
hfq l-q4s gptq gptq-q4-sym.bin
hfq l-q2a gptq gptq-q2-asym.bin
hfq l-q3s gptq gptq-q3-sym.bin
hfq l-q8a gptq gptq-q8-channel.bin
hfq l-q4-act gptq gptq-q4-act-order.bin
hfq l-q4a compressed-tensors ct-q4-asym.bin
hfq l-q3s compressed-tensors ct-q3-sym.bin
hfq l-q4-act compressed-tensors ct-q4-g_idx.bin
du -sh "$out"/*
