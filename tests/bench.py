"""Benchmarks for microgpt.py: speed and memory figures live here, not in the tests.

    python tests/bench.py            # fused vs atomic ms/step, memory, evaluation and load+sample time (~2 min)
    python tests/bench.py --full     # also both complete default runs, for val loss and wall time (~5 more min)

The machine is shared and noisy, so fused and atomic runs take turns in one session and we quote
medians; a speedup is the median of the ratios of runs that ran next to each other.
"""
import gc, os, platform, random, re, statistics, subprocess, sys, tempfile, time, tracemalloc

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
import microgpt as m  # noqa: E402


def setup(*argv):
    m.configure(list(argv))
    random.seed(m.seed)
    train_docs, val_docs = m.read_docs(os.path.join(ROOT, 'input.txt'))
    m.use_vocab(sorted(set(''.join(train_docs + val_docs))))
    m.init_model()
    return train_docs, val_docs


def step(doc, adam, i):
    """One training step exactly as train() does it: forward, backward, Adam."""
    losses = m.doc_losses(m.encode(doc))
    loss = m.vsum(losses) * (1 / len(losses))
    loss.backward()
    m.adam_step(i, *adam, m.learning_rate)
    return loss.data


def speed_runs(rounds, n_steps):
    """What a user sees: `microgpt.py` and `microgpt.py --fused=False`, each in its own process, taking turns."""
    ms = {'': [], '--fused=False': []}
    for _ in range(rounds):
        for flag in ms:
            args = [sys.executable, 'microgpt.py', f'--num_steps={n_steps}', '--eval_docs=0', '--num_samples=0']
            out = subprocess.run(args + ([flag] if flag else []), cwd=ROOT, check=True, capture_output=True, text=True).stdout
            ms[flag].append(float(re.findall(r'([\d.]+) ms/step', out)[-1]))
    ratios = [a / f for f, a in zip(ms[''], ms['--fused=False'])]
    print(f'training, first {n_steps} steps of the default run, {rounds} rounds taking turns: '
          f'fused {statistics.median(ms[""]):.1f} ms/step, atomic {statistics.median(ms["--fused=False"]):.1f} ms/step; '
          f'speedup {statistics.median(ratios):.1f}x (median; rounds: {", ".join(f"{r:.1f}x" for r in ratios)})')


def speed_in_process(n_docs):
    """The same steps alternating one by one in one process, with Python's cyclic GC on and off: the
    atomic build makes ~10x more objects per step, and how often the GC scans them moves its time a lot."""
    train_docs, _ = setup()
    adam = ([0.0] * len(m.params), [0.0] * len(m.params))
    for gc_on in (True, False):
        gc.enable() if gc_on else gc.disable()
        times = {True: [], False: []}
        for i, doc in enumerate(train_docs[:n_docs]):
            for fused in (True, False):
                m.fused = fused
                t = time.perf_counter()
                step(doc, adam, i)
                times[fused].append(time.perf_counter() - t)
        ratios = [a / f for f, a in zip(times[True], times[False])]
        print(f'  in one process, steps alternating, gc {"on " if gc_on else "off"}: fused {statistics.median(times[True]) * 1e3:.1f} ms, '
              f'atomic {statistics.median(times[False]) * 1e3:.1f} ms, speedup {statistics.median(ratios):.1f}x (median of {n_docs} documents)')
    gc.enable()


def memory(n_steps):
    """Traced heap after each step of a bigger model: it must not grow from step to step."""
    train_docs, _ = setup('--n_layer=4', '--n_embd=64')
    adam = ([0.0] * len(m.params), [0.0] * len(m.params))
    tracemalloc.start()
    sizes = []
    for i in range(n_steps):
        step(train_docs[i], adam, i)
        gc.collect()
        sizes.append(tracemalloc.get_traced_memory()[0] / 1e6)
    tracemalloc.stop()
    print(f'memory, n_layer=4 n_embd=64 ({len(m.params)} params): traced heap after steps 1..{n_steps}: '
          + ' '.join(f'{s:.2f}' for s in sizes) + ' MB')


def eval_and_sample():
    train_docs, val_docs = setup()
    weights = m.float_weights()
    t = time.perf_counter()
    m.evaluate(val_docs, weights)
    per_doc = (time.perf_counter() - t) / len(val_docs) * 1e3
    print(f'evaluation (floats, no graph): {per_doc:.2f} ms per document, {len(val_docs)} held-out docs')
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, 'model.json')
        m.save_model(path)
        size = os.path.getsize(path)
        cmd = [sys.executable, os.path.join(ROOT, 'microgpt.py'), f'--load={path}', '--num_steps=0', '--eval_docs=0']
        runs = []
        for _ in range(5):
            t = time.perf_counter()
            subprocess.run(cmd, cwd=ROOT, check=True, capture_output=True)
            runs.append(time.perf_counter() - t)
    print(f'saved default model: {size / 1000:.0f} kB; `microgpt.py --load=... --num_steps=0 --eval_docs=0` '
          f'(start Python, read input.txt, load, sample 20): median {statistics.median(runs):.2f} s of 5')


def full_runs():
    for args in ([], ['--fused=False']):
        t = time.perf_counter()
        out = subprocess.run([sys.executable, 'microgpt.py', *args], cwd=ROOT, check=True,
                             capture_output=True, text=True).stdout
        wall = time.perf_counter() - t
        ms = re.findall(r'([\d.]+) ms/step', out)[-1]
        val = re.search(r'val loss ([\d.]+)', out).group(1)
        print(f'python microgpt.py {" ".join(args)}: {ms} ms/step, val loss {val}, wall {wall:.0f} s')


if __name__ == '__main__':
    print(f'{platform.python_implementation()} {platform.python_version()} on {platform.machine()}, '
          f'{os.cpu_count()} cores, {time.strftime("%Y-%m-%d %H:%M")}')
    speed_runs(3, 100)
    speed_in_process(40)
    memory(5)
    eval_and_sample()
    if '--full' in sys.argv:
        full_runs()
