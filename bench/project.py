#!/usr/bin/env python3
"""Projects whole-model `gptq` time and memory to 7B / 70B Llama shapes on
2, 16 and 64 cores from rates measured here (docs/performance.md, "Cost
model" and "Projection").

Rates (GFLOP/s on the measuring machine's cores) come from one
bench/gptq_bound.sh output directory: the forward pass (forward.json,
bench_stream), the Hessians and the solves (summary.json "timing"), each
divided into the FLOPs the cost model below gives for the measured model.
Projection: FLOPs of the target / (rate per core x cores): it assumes
the per-core rate holds (GEMM-bound stages scale with cores on one socket;
memory bandwidth and NUMA are not modelled), so 16 and 64 cores are upper
bounds on speed.

Usage: bench/project.py GPTQ_BOUND_OUT_DIR MEASURED_MODEL_DIR [CORES_MEASURED]"""
import json, sys

def dims(cfg):
    h = cfg['hidden_size']; m = cfg['intermediate_size']; L = cfg['num_hidden_layers']
    H = cfg['num_attention_heads']; kvh = cfg.get('num_key_value_heads', H)
    hd = cfg.get('head_dim', h // H)
    return dict(h=h, m=m, L=L, q=H * hd, kv=kvh * hd, vocab=cfg['vocab_size'])

def layer_params(d):
    return d['h'] * (d['q'] + 2 * d['kv']) + d['q'] * d['h'] + 3 * d['h'] * d['m']

def flops(d, N, T, blocks, recompute=False):
    """FLOPs per stage of `blocks` decoder blocks over N tokens in windows of T;
    recompute: the stream kept the narrow states and rebuilt each down input
    from the MLP input (gate/up once more: counted with the Hessians, whose
    time includes it)."""
    P = layer_params(d)
    fwd = blocks * (2 * P * N + 2 * d['q'] * T * N)            # linears + causal attention
    widths = [d['h'], d['q'], d['h'], d['m']]                   # qkv, o, mlp, down inputs
    hess = blocks * (sum(N * w * w for w in widths)             # SYRK: w(w+1)/2 multiply-adds per token
                     + (4 * d['h'] * d['m'] * N if recompute else 0))
    factor = blocks * sum(2 * w ** 3 / 3 for w in widths)       # Cholesky + triangular inverse
    readers = [(d['q'] + 2 * d['kv'], d['h']), (d['h'], d['q']), (2 * d['m'], d['h']),
               (d['h'], d['m'])]                                # (rows, input width)
    sweep = blocks * sum(2 * r * w * w for r, w in readers)
    return dict(forward=fwd, hessian=hess, solve=factor + sweep)

def memory(d, N, bits=4, group=128):
    G = 2 ** 30
    d_max = max(d['h'], d['q'], d['m'])
    states = 4 * N * (d['h'] + max(d['h'], d['q']))
    fixed = (4 * layer_params(d) + 20 * d_max ** 2 + 5 * max(d['h'], d['m']) * d_max
             + d['L'] * layer_params(d) * (bits + 24 / group) / 8)
    model = 2 * (d['L'] * layer_params(d) + 2 * d['vocab'] * d['h'])
    return states / G, fixed / G, model / G

out, model_dir = sys.argv[1], sys.argv[2]
cores_measured = int(sys.argv[3]) if len(sys.argv) > 3 else 2
fw = json.load(open(f'{out}/forward.json')); s = json.load(open(f'{out}/summary.json'))
cfg = json.load(open(f'{model_dir}/config.json'))
d = dims(cfg)
calib = s.get('calibration', {})
N = fw['tokens']; T = calib.get('seqlen', 512)
blocks = fw['blocks']
kept = s.get('memory', {}).get('down_input_kept', True)
f = flops(d, N, T, blocks, recompute=not kept)
t = s['timing']
rate = {'forward': f['forward'] / fw['seconds'] / cores_measured,
        'hessian': f['hessian'] / t['hessian_s'] / cores_measured,
        'solve': f['solve'] / t['solve_s'] / cores_measured}
print(f"measured on {cores_measured} cores ({model_dir}: h {d['h']}, m {d['m']}, {blocks} blocks, "
      f"N = {N} tokens): GFLOP/s per core: forward {rate['forward'] / 1e9:.1f}, "
      f"Hessians {rate['hessian'] / 1e9:.1f}, solves {rate['solve'] / 1e9:.1f}")
targets = {
    '7B (4096/11008/32, 32/32 heads)': dict(hidden_size=4096, intermediate_size=11008,
        num_hidden_layers=32, num_attention_heads=32, num_key_value_heads=32, vocab_size=32000),
    '70B (8192/28672/80, 64/8 heads)': dict(hidden_size=8192, intermediate_size=28672,
        num_hidden_layers=80, num_attention_heads=64, num_key_value_heads=8, vocab_size=32000),
}
N_t, T_t = 128 * 2048, 2048
print(f"\nprojected gptq (nsamples 128 x seqlen 2048 = {N_t} tokens; one forward + Hessians + solves;"
      " the down inputs kept, as where memory allows; states: the narrow states, (h+m)/(2h) times that when the"
      " down input is kept):")
print("| model | PFLOP fwd / Hess / solve | 2 cores | 16 cores | 64 cores | states | rest in memory | model fp16 |")
print("|---|---|---:|---:|---:|---:|---:|---:|")
for name, c in targets.items():
    dt = dims(c)
    ft = flops(dt, N_t, T_t, dt['L'])
    cols = []
    for cores in (2, 16, 64):
        sec = sum(ft[k] / (rate[k] * cores) for k in ft)
        cols.append(f"{sec / 3600:.1f} h" if sec >= 3600 else f"{sec / 60:.0f} min")
    st, fx, mo = memory(dt, N_t)
    print(f"| {name} | {ft['forward'] / 1e15:.2f} / {ft['hessian'] / 1e15:.2f} / "
          f"{ft['solve'] / 1e15:.3f} | {' | '.join(cols)} | {st:.1f} GiB | {fx:.1f} GiB | {mo:.1f} GiB |")
