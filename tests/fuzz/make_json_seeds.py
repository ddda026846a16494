#!/usr/bin/env python3
"""JSON and text seeds of tests/fuzz/corpus/ (called by make_seeds.sh).

  make_json_seeds.py tokenizers TMP        tiny tokenizers for the seed models
  make_json_seeds.py seeds OUT SHARED TMP  every JSON / text seed
"""
import json
import os
import struct
import sys


def byte_level_chars():
    # GPT-2's bytes_to_unicode table: printable bytes map to themselves
    bs = list(range(33, 127)) + list(range(161, 173)) + list(range(174, 256))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return [chr(c) for _, c in sorted(zip(bs, cs))]


def sp_tokenizer(byte_fallback, metaspace):
    """SentencePiece-style BPE; Metaspace pre-tokenizer or Prepend/Replace."""
    specials = ["<unk>", "<s>", "</s>"]
    vocab = {t: i for i, t in enumerate(specials)}
    if byte_fallback:
        for b in range(256):
            vocab["<0x%02X>" % b] = len(vocab)
    pieces = ["▁", "a", "e", "h", "l", "o", "n", "t", "r", "s", "▁t", "he", "▁the", "on", "ll", "▁a"]
    for p in pieces:
        vocab.setdefault(p, len(vocab))
    merges = ["▁ t", "h e", "▁t he", "o n", "l l", "▁ a"]
    tok = {
        "version": "1.0", "truncation": None, "padding": None,
        "added_tokens": [{"id": i, "content": t, "single_word": False, "lstrip": False,
                          "rstrip": False, "normalized": False, "special": True}
                         for i, t in enumerate(specials)],
        "post_processor": {"type": "TemplateProcessing",
                           "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}},
                                      {"Sequence": {"id": "A", "type_id": 0}}],
                           "pair": [{"Sequence": {"id": "A", "type_id": 0}},
                                    {"Sequence": {"id": "B", "type_id": 1}}],
                           "special_tokens": {"<s>": {"id": "<s>", "ids": [1], "tokens": ["<s>"]}}},
        "model": {"type": "BPE", "dropout": None, "unk_token": "<unk>",
                  "continuing_subword_prefix": None, "end_of_word_suffix": None,
                  "fuse_unk": True, "byte_fallback": byte_fallback, "ignore_merges": False,
                  "vocab": vocab, "merges": merges},
    }
    if metaspace:
        tok["normalizer"] = None
        tok["pre_tokenizer"] = {"type": "Metaspace", "replacement": "▁",
                                "prepend_scheme": "first", "split": False}
        tok["decoder"] = {"type": "Metaspace", "replacement": "▁",
                          "prepend_scheme": "first", "split": False}
    else:
        tok["normalizer"] = {"type": "Sequence", "normalizers": [
            {"type": "Prepend", "prepend": "▁"},
            {"type": "Replace", "pattern": {"String": " "}, "content": "▁"}]}
        tok["pre_tokenizer"] = None
        tok["decoder"] = {"type": "Sequence", "decoders": [
            {"type": "Replace", "pattern": {"String": "▁"}, "content": " "},
            {"type": "ByteFallback"}, {"type": "Fuse"},
            {"type": "Strip", "content": " ", "start": 1, "stop": 0}]}
    return tok


def bl_tokenizer():
    """GPT-2 byte-level BPE with its regex split."""
    chars = byte_level_chars()
    vocab = {c: i for i, c in enumerate(chars)}
    merges = []
    for a, b in [("Ġ", "t"), ("h", "e"), ("Ġt", "he"), ("i", "n"), ("Ġ", "a"), ("o", "n")]:
        merges.append([a, b])
        vocab.setdefault(a + b, len(vocab))
    vocab["<|endoftext|>"] = len(vocab)
    return {
        "version": "1.0", "truncation": None, "padding": None,
        "added_tokens": [{"id": vocab["<|endoftext|>"], "content": "<|endoftext|>",
                          "single_word": False, "lstrip": False, "rstrip": False,
                          "normalized": True, "special": True}],
        "normalizer": None,
        "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
            {"type": "Split", "pattern": {"Regex":
                "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+"},
             "behavior": "Isolated", "invert": False},
            {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True,
             "use_regex": False}]},
        "post_processor": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": False,
                           "use_regex": True},
        "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True,
                    "use_regex": True},
        "model": {"type": "BPE", "dropout": None, "unk_token": None,
                  "continuing_subword_prefix": "", "end_of_word_suffix": "", "fuse_unk": False,
                  "byte_fallback": False, "ignore_merges": False, "vocab": vocab,
                  "merges": merges},
    }


def trimmed(tok, keep):
    """A real tokenizer cut down to its first `keep` ids (merges among them)."""
    m = tok["model"]
    m["vocab"] = {t: i for t, i in m["vocab"].items() if i < keep}
    ms = []
    for mg in m["merges"]:
        a, b = mg.split(" ", 1) if isinstance(mg, str) else mg
        if a in m["vocab"] and b in m["vocab"] and a + b in m["vocab"]:
            ms.append(mg)
    m["merges"] = ms
    tok["added_tokens"] = [t for t in tok["added_tokens"] if t["id"] < keep]
    return tok


def dump(path, obj, compact=False):
    with open(path, "w", encoding="utf-8") as f:
        if compact:
            json.dump(obj, f, ensure_ascii=False, separators=(",", ":"))
        else:
            json.dump(obj, f, ensure_ascii=False, indent=1)


def xfq_meta(path):
    with open(path, "rb") as f:
        head = f.read(64)
        off, size = struct.unpack_from("<QQ", head, 16)
        f.seek(off)
        return json.loads(f.read(size))


def safetensors_file(path, tensors, metadata, pad_to=8):
    """tensors: (name, dtype, shape, raw bytes); header padded so that the
    data section starts at a multiple of pad_to (1: unaligned on purpose)."""
    header, off, data = {}, 0, b""
    for name, dtype, shape, raw in tensors:
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [off, off + len(raw)]}
        off += len(raw)
        data += raw
    if metadata:
        header["__metadata__"] = metadata
    h = json.dumps(header, separators=(",", ":")).encode()
    if pad_to == 1:
        while (8 + len(h)) % 8 == 0:
            h += b" "
    else:
        while (8 + len(h)) % pad_to:
            h += b" "
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + data)


def seeds(out, shared, tmp):
    # safetensors: every plain dtype, one file with an unaligned data section
    sdir = os.path.join(out, "safetensors")
    safetensors_file(os.path.join(sdir, "dtypes.safetensors"), [
        ("a.f16", "F16", [2, 2], struct.pack("<4e", 1.0, -2.0, 0.5, 65504.0)),
        ("b.bf16", "BF16", [3], struct.pack("<3H", 0x3F80, 0xC000, 0x7F80)),
        ("c.f32", "F32", [2, 1], struct.pack("<2f", 1.5, -0.25)),
        ("d.f64", "F64", [2], struct.pack("<2d", 3.0, -1e300)),
        ("e.i32", "I32", [2], struct.pack("<2i", -1, 7)),
        ("f.i64", "I64", [1], struct.pack("<q", 1 << 40)),
        ("g.u8", "U8", [3], b"\x00\x7f\xff"), ("h.bool", "BOOL", [2], b"\x00\x01"),
        ("i.empty", "F32", [0, 4], b""), ("j.scalar", "F32", [], struct.pack("<f", 2.0))],
        {"format": "pt", "note": "seed"})
    safetensors_file(os.path.join(out, "..", "regressions", "safetensors", "f64-unaligned-data.safetensors"),
                     [("w", "F64", [2, 2], struct.pack("<4d", 1.0, 2.0, -3.0, 0.125))], None, 1)

    # config.json: the shared models' and one per family of the random models
    cdir = os.path.join(out, "config")
    for name in ("stories260K", "novels-5m"):
        src = os.path.join(shared, "models", name, "config.json")
        if os.path.exists(src):
            with open(src) as f:
                dump(os.path.join(cdir, name + ".json"), json.load(f))
    for fam in ("llama", "gpt2", "opt"):
        with open(os.path.join(tmp, fam, "config.json")) as f:
            dump(os.path.join(cdir, "random-" + fam + ".json"), json.load(f))
    dump(os.path.join(cdir, "qwen2.json"), {
        "model_type": "qwen2", "architectures": ["Qwen2ForCausalLM"], "hidden_size": 64,
        "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4,
        "num_key_value_heads": 2, "vocab_size": 300, "max_position_embeddings": 128,
        "rms_norm_eps": 1e-6, "rope_theta": 1000000.0, "tie_word_embeddings": True,
        "bos_token_id": 1, "eos_token_id": 2, "rope_scaling": None, "use_sliding_window": False})

    # tokenizer.json: the tiny ones and the first 320 ids of stories260K's
    tdir = os.path.join(out, "tokenizer")
    dump(os.path.join(tdir, "sp-prepend.json"), sp_tokenizer(False, False), True)
    dump(os.path.join(tdir, "sp-metaspace-bytefallback.json"), sp_tokenizer(True, True), True)
    dump(os.path.join(tdir, "byte-level.json"), bl_tokenizer(), True)
    src = os.path.join(shared, "models", "stories260K", "tokenizer.json")
    if os.path.exists(src):
        with open(src) as f:
            dump(os.path.join(tdir, "stories260K-trimmed.json"), trimmed(json.load(f), 320), True)

    # calibration text: plain text and JSON Lines
    cal = os.path.join(out, "calib_text")
    with open(os.path.join(cal, "plain.txt"), "wb") as f:
        f.write(b"Once upon a time, there was a little dragon.\r\nIt lived in a cave.\rThe end.\n")
    with open(os.path.join(cal, "bom.txt"), "wb") as f:
        f.write("\ufeffcaf\u00e9 \u2581 \U0001F600\n\n".encode())
    with open(os.path.join(cal, "records.jsonl"), "wb") as f:
        f.write(b'{"text": "first record"}\n{"text": ""}\n\n{"text": "third\\nline", "id": 3}\r\n'
                b'{"content": "other field", "text": "x"}\n')
    with open(os.path.join(cal, "bad-line.jsonl"), "wb") as f:
        f.write(b'{"text": "ok"}\n{"text": 5}\n[1, 2]\n')

    # regress suites: the project's own (small ones) and one with relations
    rdir = os.path.join(out, "regress_suite")
    for name in ("fast", "act"):
        with open(os.path.join("tests", "regress", name + ".json")) as f:
            dump(os.path.join(rdir, name + ".json"), json.load(f))
    dump(os.path.join(rdir, "relations.json"), {
        "name": "mini", "description": "seed",
        "cases": [
            {"id": "fp16", "model": "m", "recipe": {"method": "fp16"},
             "eval": {"text": "t.txt", "protocol": "gptq", "seqlen": 64, "max_windows": 2},
             "expect": {"ppl": {"value": 5.8, "tol": 0.01}}},
            {"id": "rtn-w4", "model": "m",
             "recipe": {"method": "rtn", "bits": 4, "group": 128, "sym": True, "clip": "mse",
                        "weight_grid": "log2", "act_bits": 8, "kv_bits": 4},
             "eval": {"text": "t.txt", "protocol": "llamacpp", "ctx": 128},
             "expect": {"ppl": {"value": 6.0, "floor": {"rel": 0.5}, "ceiling": {"abs": 0.1}},
                        "bits_per_weight": {"value": 4.5, "tol_rel": 0.01}}},
            {"id": "gptq-w4", "model": "m",
             "recipe": {"method": "gptq", "bits": 4, "calib": "c.txt", "nsamples": 4,
                        "seqlen": 64, "act_order": True, "damp": 0.01, "seed": 0},
             "eval": {"text": "t.txt"}, "expect": {"kld": {"value": 0.01, "tol": 0.5}}}],
        "relations": [{"id": "gptq-beats-rtn", "expect": "ppl(gptq-w4) < ppl(rtn-w4) * 1.01"},
                      {"expect": "kld(gptq-w4) <= 0.5"}]})

    # recipes: those of the .xfq seeds, and two written by hand
    pdir = os.path.join(out, "recipe")
    xdir = os.path.join(out, "xfq")
    for name in sorted(os.listdir(xdir)):
        recipe = xfq_meta(os.path.join(xdir, name)).get("recipe")
        if isinstance(recipe, dict):
            dump(os.path.join(pdir, name.replace(".xfq", ".json")), recipe)
    dump(os.path.join(pdir, "online-128.json"),
         {"online_transforms": [{"kind": "hadamard", "input": "down", "n": 128}],
          "activations": {"act_bits": 4, "act_sym": True, "act_group": 16, "act_clip": 0.9,
                          "kv_bits": 4, "kv_group": 16, "kv_clip": 0.95}})
    dump(os.path.join(pdir, "legacy-string-transform.json"), {"online_transforms": ["hadamard"]})


def main():
    if sys.argv[1] == "tokenizers":
        tmp = sys.argv[2]
        dump(os.path.join(tmp, "tok-sp.json"), sp_tokenizer(False, False))
        dump(os.path.join(tmp, "tok-bl.json"), bl_tokenizer())
    else:
        seeds(*sys.argv[2:5])


if __name__ == "__main__":
    main()
