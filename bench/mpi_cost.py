#!/usr/bin/env python3
"""The bytes every rank of a `gptq` MPI job moved against the cost model
(docs/distributed.md), and its seconds by kind of work.

Model, per block (inputs qkv, o, mlp, down; N ranks): the Hessian chain
carries the fp64 upper triangle S_in = 8 d(d+1)/2 of each input from rank
r to r+1 and the last rank broadcasts it; linear j of an input is solved
on rank j mod N, which broadcasts its fp32 weights (4 rows cols) and, if
not rank 0, sends rank 0 its quantized container (codes rows*cols bytes,
fp32 scales and byte zeros per group, a 80-byte header and the solve's
statistics). Bytes a rank sends or receives count once per message
(a broadcast: the root sends it once, each other rank receives it once).

Usage: bench/mpi_cost.py CONFIG.json MPI_SUMMARY.json [ONE_PROCESS_SUMMARY.json]"""
import json, sys

cfg = json.load(open(sys.argv[1]))
s = json.load(open(sys.argv[2]))
dist = s['distributed']
N, blocks = dist['ranks'], dist['blocks']
group = s['recipe']['group_size']
h, m = cfg['hidden_size'], cfg['intermediate_size']
H = cfg['num_attention_heads']; kvh = cfg.get('num_key_value_heads', H)
hd = cfg.get('head_dim', h // H)
q, kv = H * hd, kvh * hd
inputs = [(h, [(q, h), (kv, h), (kv, h)]), (q, [(h, q)]), (h, [(m, h), (m, h)]), (m, [(h, m)])]
STATS = 72  # sizeof(xf_gptq_stats)
HEAD = 80   # the qweight header (10 int64)
sent = [0] * N; recv = [0] * N
for d, readers in inputs:
    S = 8 * d * (d + 1) // 2
    for r in range(N):
        if r > 0: recv[r] += S
        if r < N - 1: sent[r] += S
        if r == N - 1: sent[r] += S  # broadcast of the total
        else: recv[r] += S
    for j, (rows, cols) in enumerate(readers):
        owner = j % N
        W = 4 * rows * cols
        for r in range(N):
            if r == owner: sent[r] += W
            else: recv[r] += W
        if owner != 0:
            g = -(-cols // group)
            Q = HEAD + STATS + rows * cols + rows * g * 4 + rows * g
            sent[owner] += Q; recv[0] += Q
print(f'{N} ranks, {blocks} blocks; bytes per block (measured / cost model):')
print('| rank | windows | forward s | Hessian s | solve s | transfers s | waiting s | CPU s: own work / in MPI | sent MB/block | received MB/block |')
print('|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|')
for r, pr in enumerate(dist['per_rank']):
    ms, mr = pr['bytes_sent'] / blocks, pr['bytes_recv'] / blocks
    cpu = f"{pr['cpu_s'] - pr['mpi_cpu_s']:.1f} / {pr['mpi_cpu_s']:.1f}" if 'cpu_s' in pr else '-'
    print(f"| {r} | {pr['windows']} | {pr['forward_s']:.1f} | {pr['hessian_s']:.1f} | "
          f"{pr['solve_s']:.1f} | {pr['comm_s']:.2f} | {pr['wait_s']:.2f} | {cpu} | "
          f"{ms / 1e6:.3f} / {sent[r] / 1e6:.3f} | {mr / 1e6:.3f} / {recv[r] / 1e6:.3f} |")
    if abs(ms - sent[r]) > 256 or abs(mr - recv[r]) > 256:
        print(f'  rank {r}: off the model by {ms - sent[r]:.0f} / {mr - recv[r]:.0f} bytes per block')
t = s['timing']
print(f"rank 0 timing (includes transfers and waits inside each kind): {json.dumps(t)}")
if len(sys.argv) > 3:
    t1 = json.load(open(sys.argv[3]))['timing']
    print(f"one process: forward {t1['forward_s']:.1f} s, Hessians {t1['hessian_s']:.1f} s, "
          f"solves {t1['solve_s']:.1f} s, total {t1['total_s']:.1f} s")
