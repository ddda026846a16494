/* tokenizer.json "decoder": Sequence, Replace, ByteFallback, Fuse, Strip,
 * ByteLevel and Metaspace, applied to the list of token strings as HF's
 * decode_chain does, then concatenated. Without a decoder the tokens are
 * joined with spaces (as HF does). One deliberate difference: bytes that do
 * not form valid UTF-8 (from <0xHH> tokens or byte-level characters) are
 * output as those raw bytes, where HF substitutes U+FFFD, so that
 * decode(encode(x)) == x holds for any byte string x. Other types fail at
 * load, naming the type. */
#ifndef XF_CALIB_DECODER_H
#define XF_CALIB_DECODER_H

#include <jansson.h>

#include "calib/tok_buffers.h"
#include "core/error.h"

typedef struct xf_decoder xf_decoder;

/* j may be NULL or JSON null: then *out = NULL. */
int xf_decoder_load(const json_t *j, xf_decoder **out, const char *what, xf_error *err);
void xf_decoder_free(xf_decoder *dec);

/* text := the decoded tokens (dec may be NULL). tokens is consumed as
 * scratch space. */
int xf_decoder_apply(const xf_decoder *dec, xf_pieces *tokens, xf_tbuf *text, const char *what,
                     xf_error *err);

#endif
