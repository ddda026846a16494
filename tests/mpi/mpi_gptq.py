#!/usr/bin/env python3
"""The 'mpi' suite (docs/distributed.md): `mpirun -np N xfquant gptq` against
one process.

  identity XFQUANT MODEL CALIB SEQLEN NSAMPLES
      for each recipe (GPTQ, GPTQv2, --act-order, --rotate hadamard): one
      process, then -np 2 and -np 3 (oversubscribed), each in its own
      directory with the same command line; the three .xfq files must be
      byte-identical.
  kill XFQUANT MODEL CALIB SEQLEN NSAMPLES [RANK [RESUME_RANKS]]
      -np 2 with checkpoints, rank RANK (default 1; 0 is the writer) killed
      (SIGKILL) once rank 0 has checkpointed block 1: the job must end
      non-zero within seconds, with a message, leaving no output; `--resume`
      under -np RESUME_RANKS (default 2; the checkpoint does not depend on
      the rank count) must then write the bytes of one uninterrupted
      process.

Exit 77 (skip) when the shared models or mpirun are absent."""
import json, os, shutil, subprocess, sys, tempfile, time

def skip(why):
    print('SKIP:', why)
    sys.exit(77)

def fail(why):
    print('FAIL:', why)
    sys.exit(1)

mode, xfq, model, calib, seqlen, nsamples = sys.argv[1:7]
victim = int(sys.argv[7]) if len(sys.argv) > 7 else 1
resume_ranks = int(sys.argv[8]) if len(sys.argv) > 8 else 2
if not os.path.isdir(model) or not os.path.isfile(calib):
    skip(f'{model} or {calib} is absent (../shared)')
mpirun = shutil.which('mpirun')
if not mpirun:
    skip('mpirun not found (Debian: openmpi-bin)')
xfq, model, calib = (os.path.abspath(p) for p in (xfq, model, calib))
env = dict(os.environ)
if os.getuid() == 0:  # CI containers run as root
    env.update(OMPI_ALLOW_RUN_AS_ROOT='1', OMPI_ALLOW_RUN_AS_ROOT_CONFIRM='1')
# one thread per rank: the ranks share the machine's cores
base = [xfq, 'gptq', '--bits', '4', '--group', '32', '--calib', calib, '--seqlen', seqlen,
        '--nsamples', nsamples, '--threads', '1']

def launch(ranks, args):
    if ranks == 0:
        return list(args)
    return [mpirun, '--oversubscribe', '-np', str(ranks)] + list(args)

def run(cwd, ranks, args, timeout=600):
    t0 = time.time()
    p = subprocess.run(launch(ranks, args), cwd=cwd, env=env, capture_output=True, text=True,
                       timeout=timeout)
    return p, time.time() - t0

work = tempfile.mkdtemp(prefix='xf-mpi-')
try:
    if mode == 'identity':
        recipes = {'gptq': [], 'gptq-v2': ['--gptq-v2'], 'act-order': ['--act-order'],
                   'rotate-hadamard': ['--rotate', 'hadamard']}
        for name, extra in recipes.items():
            outs = []
            for ranks in (0, 2, 3):
                d = os.path.join(work, f'{name}-{ranks}')
                os.mkdir(d)
                p, secs = run(d, ranks, base + extra + [model, 'out.xfq'])
                if p.returncode != 0:
                    fail(f'{name}, {ranks or 1} rank(s): exit {p.returncode}: {p.stderr.strip()}')
                outs.append(open(os.path.join(d, 'out.xfq'), 'rb').read())
                print(f'{name}: {ranks or 1} rank(s) {secs:.1f} s, {len(outs[-1])} bytes')
            if outs[1] != outs[0] or outs[2] != outs[0]:
                fail(f'{name}: the -np 2 / -np 3 output differs from one process '
                     f'({outs[1] == outs[0]}, {outs[2] == outs[0]})')
            print(f'{name}: byte-identical for 1, 2 and 3 ranks')
    elif mode == 'kill':
        ref = os.path.join(work, 'ref')
        os.mkdir(ref)
        # the provenance records the command line without --resume: the
        # reference is asked the same way (--json included)
        p, _ = run(ref, 0, base + ['--json', model, 'out.xfq'])
        if p.returncode != 0:
            fail(f'reference run: {p.stderr.strip()}')
        d = os.path.join(work, 'job')
        os.mkdir(d)
        ckpt = os.path.join(d, 'out.xfq.ckpt', 'block-00001.xfq')
        # MPMD: the victim rank under a shell that kills it once rank 0 has
        # written block 1's checkpoint (the ranks wait for that write in the
        # agreement that follows it, so the job cannot finish first), the
        # other rank plain
        args = base + ['--json', model, 'out.xfq']
        q = ' '.join("'" + a.replace("'", "'\\''") + "'" for a in args)
        watcher = (f'{q} & pid=$!; while [ ! -e {ckpt} ] && kill -0 $pid 2>/dev/null; '
                   f'do sleep 0.005; done; kill -9 $pid; wait $pid')
        plain, killed = args, ['sh', '-c', watcher]
        ranks = [killed, plain] if victim == 0 else [plain, killed]
        cmd = [mpirun, '--oversubscribe', '-np', '1'] + ranks[0] + [':', '-np', '1'] + ranks[1]
        t0 = time.time()
        pk = subprocess.run(cmd, cwd=d, env=env, capture_output=True, text=True, timeout=300)
        secs = time.time() - t0
        print(f'killed job (rank {victim}): exit {pk.returncode} after {secs:.1f} s')
        print('its stderr:', pk.stderr.strip()[-600:])
        if pk.returncode == 0:
            fail('the job with a killed rank exited 0')
        if os.path.exists(os.path.join(d, 'out.xfq')):
            fail('the job with a killed rank left out.xfq')
        if not pk.stderr.strip():
            fail('the job with a killed rank printed no message')
        if not os.path.exists(os.path.join(d, 'out.xfq.ckpt', 'stream.xfq')):
            fail('no checkpoint left to resume from')
        # (a rank killed inside a write would leave its temp, which the
        # next write of the same name sweeps: core/atomic_file.h)
        leftovers = [f for f in os.listdir(d) if f not in ('out.xfq.ckpt',)]
        if leftovers:
            fail(f'the killed job left {leftovers}')
        # the killed job's command line without --resume is what the
        # provenance records, so the resumed output equals the reference
        pr, secs = run(d, resume_ranks, base + ['--resume', '--json', model, 'out.xfq'])
        if pr.returncode != 0:
            fail(f'--resume under -np {resume_ranks}: exit {pr.returncode}: {pr.stderr.strip()}')
        summary = json.loads(pr.stdout)  # rank 0's alone: the others report nothing
        at = summary.get('resumed_at_block', 0)
        print(f'resumed under -np {resume_ranks} at block {at} in {secs:.1f} s')
        if at < 1:
            fail('--resume did not continue from the checkpoint')
        if summary.get('distributed', {}).get('ranks') != resume_ranks:
            fail(f'the summary does not describe the {resume_ranks} ranks')
        a = open(os.path.join(ref, 'out.xfq'), 'rb').read()
        b = open(os.path.join(d, 'out.xfq'), 'rb').read()
        if a != b:
            fail(f'the resumed -np {resume_ranks} output differs from one uninterrupted process')
        if os.path.exists(os.path.join(d, 'out.xfq.ckpt')):
            fail('the checkpoint directory outlived the finished output')
        print('killed rank: job ended non-zero, nothing written; --resume: byte-identical')
    else:
        fail(f'unknown mode {mode}')
finally:
    shutil.rmtree(work, ignore_errors=True)
