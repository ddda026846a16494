/* Caps that turn resource exhaustion from hostile or broken input into a
 * one-line error (docs/limits.md lists them all, with the ones that live
 * next to their format: safetensors header, .xfq metadata and names). Each
 * is far above what any real model file needs. */
#ifndef XF_CORE_LIMITS_H
#define XF_CORE_LIMITS_H

/* Any JSON file read whole (config.json, tokenizer.json, index files,
 * suites): the largest real tokenizer.json files are tens of MiB. */
#define XF_MAX_JSON_FILE_BYTES (256u * 1024u * 1024u)

/* Token ids index dense tables, so the largest id decides the allocation:
 * ids may run past the number of tokens defined by at most this gap (real
 * tokenizers number their tokens densely; reserved ranges are a few
 * thousand wide), and never past XF_MAX_TOKEN_IDS. */
#define XF_TOKEN_ID_GAP 65536
#define XF_MAX_TOKEN_IDS (1 << 24)

/* Bytes of one token of a GGUF vocabulary (tokenizer.ggml.tokens). The
 * SentencePiece-style import looks up every split of every token (model/
 * gguf_vocab.c), so a token's cost grows with the square of its length: a
 * single 10 MB token would take hours. SentencePiece's default piece limit
 * is 16 characters; the longest tokens of real vocabularies (runs of spaces
 * or dashes) are a few hundred bytes. */
#define XF_MAX_GGUF_TOKEN_BYTES 4096

#endif
