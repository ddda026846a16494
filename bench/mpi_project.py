#!/usr/bin/env python3
"""Projects `mpirun -np N xfquant gptq` on 7B and 70B Llama shapes
(docs/distributed.md, "Cost model"): per block, the compute of one rank
(its share of the forward pass and the Hessians, its solves) and the bytes
it moves, from per-core rates measured here (docs/performance.md: forward
77.6, Hessians 93.0, solves 58.1 GFLOP/s per core) and bench/project.py's
FLOP counts.

Assumptions (said, not measured): CORES per node at the per-core rates
above; BW bytes/s per link (both directions at once); the chained Hessian
sum pipelined in 4 MiB slabs (one full pass + (N-1) slabs of latency) and
the broadcasts of the total and of the solved weights at 2 x size / BW
(a pipelined tree). The solves: an input's linears dealt to ranks, so an
input costs its largest solve once there are as many ranks as linears.

Usage: bench/mpi_project.py [CORES [BW_GBPS]]   (defaults 32 cores, 12.5 GB/s)"""
import sys



# bench/project.py's shapes and FLOP counts (that script runs on import)
def dims(cfg):
    h = cfg['hidden_size']; m = cfg['intermediate_size']; L = cfg['num_hidden_layers']
    H = cfg['num_attention_heads']; kvh = cfg.get('num_key_value_heads', H)
    hd = cfg.get('head_dim', h // H)
    return dict(h=h, m=m, L=L, q=H * hd, kv=kvh * hd, vocab=cfg['vocab_size'])


def layer_params(d):
    return d['h'] * (d['q'] + 2 * d['kv']) + d['q'] * d['h'] + 3 * d['h'] * d['m']


def flops(d, N, T, blocks):
    P = layer_params(d)
    fwd = blocks * (2 * P * N + 2 * d['q'] * T * N)
    widths = [d['h'], d['q'], d['h'], d['m']]
    hess = blocks * sum(N * w * w for w in widths)
    factor = blocks * sum(2 * w ** 3 / 3 for w in widths)
    readers = [(d['q'] + 2 * d['kv'], d['h']), (d['h'], d['q']), (2 * d['m'], d['h']),
               (d['h'], d['m'])]
    sweep = blocks * sum(2 * r * w * w for r, w in readers)
    return dict(forward=fwd, hessian=hess, solve=factor + sweep)

CORES = int(sys.argv[1]) if len(sys.argv) > 1 else 32
BW = float(sys.argv[2]) * 1e9 if len(sys.argv) > 2 else 12.5e9
RATE = {'forward': 77.6e9, 'hessian': 93.0e9, 'solve': 58.1e9}
N_TOK, T = 128 * 2048, 2048
SLAB = 4 << 20
MODELS = {
    '7B': dict(hidden_size=4096, intermediate_size=11008, num_hidden_layers=32,
               num_attention_heads=32, num_key_value_heads=32, vocab_size=32000),
    '70B': dict(hidden_size=8192, intermediate_size=28672, num_hidden_layers=80,
                num_attention_heads=64, num_key_value_heads=8, vocab_size=32000),
}


def inputs(d):
    """(width, [(rows, cols) of each reader]) per linear input of a block."""
    h, m, q, kv = d['h'], d['m'], d['q'], d['kv']
    return [(h, [(q, h), (kv, h), (kv, h)]), (q, [(h, q)]), (h, [(m, h), (m, h)]),
            (m, [(h, m)])]


def solve_share(d, n):
    """Fraction of a block's solve FLOPs on the busiest rank (sweep ~ rows cols^2)."""
    total = busiest = 0.0
    for _, readers in inputs(d):
        cost = [r * c * c for r, c in readers]
        total += sum(cost)
        per = [0.0] * min(n, len(cost))
        for j, c in enumerate(cost):
            per[j % len(per)] += c
        busiest += max(per)
    return busiest / total


def block_bytes(d):
    """Per block: the Hessians' upper triangles in fp64, the linears' fp32 weights."""
    hess = sum(8 * w * (w + 1) // 2 for w, _ in inputs(d))
    weights = sum(4 * r * c for _, rd in inputs(d) for r, c in rd)
    return hess, weights


print(f'{CORES} cores per node at {RATE["forward"] / 1e9:.1f} / {RATE["hessian"] / 1e9:.1f} / '
      f'{RATE["solve"] / 1e9:.1f} GFLOP/s per core; links {BW / 1e9:.1f} GB/s; '
      f'{N_TOK} tokens in windows of {T}')
print('| model | nodes | compute / block | comm / block | comm share | whole model | MB moved per rank per block |')
print('|---|---:|---:|---:|---:|---:|---:|')
for name, cfg in MODELS.items():
    d = dims(cfg)
    L = d['L']
    f = flops(d, N_TOK, T, 1)
    for n in (1, 8, 64):
        fwd = f['forward'] / n / (RATE['forward'] * CORES)
        hes = f['hessian'] / n / (RATE['hessian'] * CORES)
        sol = f['solve'] * solve_share(d, n) / (RATE['solve'] * CORES)
        hess, weights = block_bytes(d)
        if n == 1:
            comm, moved = 0.0, 0
        else:
            chain = hess / BW + (n - 1) * SLAB / BW
            bcast = 2 * hess / BW + 2 * weights / BW
            comm = chain + bcast
            moved = 2 * hess + hess + weights  # chain in + out, total in, weights in
        comp = fwd + hes + sol
        whole = (comp + comm) * L
        print(f'| {name} | {n} | {comp:.1f} s | {comm:.2f} s | {comm / (comp + comm):.1%} | '
              f'{whole / 3600:.2f} h | {moved / 1e6:.0f} |')
