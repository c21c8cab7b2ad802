"""Benchmarks for microgpt.py: speed and memory figures live here, not in the tests.

    python tests/bench.py            # fused vs atomic ms/step side by side, memory, eval and load+sample time
    python tests/bench.py --full     # also both complete default runs (about 5 minutes): val loss and wall time

The machine is shared and noisy, so fused and atomic steps alternate on the same documents in one
process and we quote medians, and the speedup as the median of the per-document ratios.
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


def speed(n_docs):
    train_docs, _ = setup()
    adam = ([0.0] * len(m.params), [0.0] * len(m.params))
    times = {True: [], False: []}
    for i, doc in enumerate(train_docs[:n_docs]):
        for fused in (True, False):
            m.fused = fused
            t = time.perf_counter()
            step(doc, adam, i)
            times[fused].append(time.perf_counter() - t)
    ratios = [a / f for f, a in zip(times[True], times[False])]
    f, a = statistics.median(times[True]) * 1e3, statistics.median(times[False]) * 1e3
    print(f'step time, default model, {n_docs} documents alternating: fused {f:.1f} ms, atomic {a:.1f} ms; '
          f'speedup: median of per-document ratios {statistics.median(ratios):.1f}x '
          f'(quartiles {statistics.quantiles(ratios, n=4)[0]:.1f}x to {statistics.quantiles(ratios, n=4)[2]:.1f}x)')


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
    speed(60)
    memory(5)
    eval_and_sample()
    if '--full' in sys.argv:
        full_runs()
