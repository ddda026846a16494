# Sourced by the scripts that score GGUF files with llama-perplexity
# (tests/interop/gguf_gptq.sh, bench/gguf_accuracy.sh).
# final_ppl LOG -> llama-perplexity's final PPL, or, when llama.cpp's
# asynchronous logger lost that line at exit, the running value it printed
# after the last chunk ("[N]ppl", N the announced chunk count): the same
# number (the same nll / count, the same 4 decimals). Empty if neither.
final_ppl() {
  local v n
  v=$(sed -n 's/.*Final estimate: PPL = \([0-9.]*\).*/\1/p' "$1" | tail -1)
  if [ -z "$v" ]; then
    n=$(sed -n 's/.*calculating perplexity over \([0-9]*\) chunks.*/\1/p' "$1" | head -1)
    [ -n "$n" ] && v=$(grep -o "\[$n\][0-9.]*" "$1" | tail -1 | sed 's/^\[[0-9]*\]//')
  fi
  echo "$v"
}
