"""Benchmarks for microgpt.py: the speed and memory figures of the README live here, not in the tests.

    python tests/bench.py            # everything below but the full runs (about 6 minutes)
    python tests/bench.py --full     # also the complete default runs, before and after (25 s more)

The machine is shared and noisy, so what is compared runs side by side, taking turns, and we quote
medians; a speedup is the median of the ratios of runs that ran next to each other. "Before" is
microgpt.py as it was at commit e66b3ee, before it was laid out in three parts (read with git).
"""
import gc, os, pickle, platform, random, re, statistics, subprocess, sys, tempfile, time, tracemalloc
import importlib.util, multiprocessing

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
import microgpt as m  # noqa: E402

BEFORE = 'e66b3ee'


def load_before(d):
    """The file as it was before, as a module of its own (it has the same settings and model)."""
    path = os.path.join(d, 'before.py')
    with open(path, 'w') as f:
        f.write(subprocess.run(['git', 'show', f'{BEFORE}:microgpt.py'], cwd=ROOT, check=True,
                               capture_output=True, text=True).stdout)
    spec = importlib.util.spec_from_file_location('before', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return path, module


def setup(*argv):
    m.configure(list(argv))
    random.seed(m.seed)
    train_docs, val_docs = m.split_docs(m.read_text(os.path.join(ROOT, 'input.txt')))
    m.use_model(sorted(set(''.join(train_docs + val_docs))))
    return train_docs, val_docs


def ms_per_step(args, script=os.path.join(ROOT, 'microgpt.py')):
    out = subprocess.run([sys.executable, script, '--eval_docs=0', '--num_samples=0', *args], cwd=ROOT,
                         check=True, capture_output=True, text=True).stdout
    return float(re.findall(r'([\d.]+) ms/step', out)[-1])


def taking_turns(rounds, runs):
    """runs: {name: function returning a time}; each round runs each once, in turn."""
    times = {name: [] for name in runs}
    for _ in range(rounds):
        for name, run in runs.items():
            times[name].append(run())
    return times


def ratio(times, a, b):
    return statistics.median(x / y for x, y in zip(times[a], times[b]))


def training_speed(before_path, rounds=5, steps=300):
    """Default training step, before and after, and with each training switch of Part 2 off."""
    runs = {'before': lambda: ms_per_step([f'--num_steps={steps}'], before_path),
            'now': lambda: ms_per_step([f'--num_steps={steps}']),
            'pause_gc=False': lambda: ms_per_step([f'--num_steps={steps}', '--pause_gc=False'])}
    t = taking_turns(rounds, runs)
    med = {k: statistics.median(v) for k, v in t.items()}
    print(f'default training step, first {steps} steps, {rounds} rounds taking turns (median ms/step):')
    print(f'  before {med["before"]:.2f}, now {med["now"]:.2f}: now / before = {ratio(t, "now", "before"):.3f}'
          f' (rounds: {", ".join(f"{a / b:.2f}" for a, b in zip(t["now"], t["before"]))})')
    print(f'  pause_gc=False {med["pause_gc=False"]:.2f}: the resting collector saves '
          f'{1 - 1 / ratio(t, "pause_gc=False", "now"):.0%} of a step')
    atomic = taking_turns(3, {'fused=False': lambda: ms_per_step(['--num_steps=40', '--fused=False']),
                              'now': lambda: ms_per_step(['--num_steps=40'])})
    print(f'  fused=False {statistics.median(atomic["fused=False"]):.1f} ms/step: fused nodes are '
          f'{ratio(atomic, "fused=False", "now"):.1f}x faster (first 40 steps, 3 rounds)')
    return med['now']


def float_limit(step_ms, n_docs=500):
    """What a step costs with no graph at all, derived: a float-only step is a forward pass, a backward
    pass of about twice its work (each multiply-add of the forward has two in the backward: one for
    the weight's gradient, one for the input's), and Adam. Forward and Adam are timed on plain floats."""
    train_docs, _ = setup()
    weights = m.float_weights()
    docs = [m.encode(d) for d in train_docs[:n_docs]]
    t = time.perf_counter()
    for tokens in docs:
        m.doc_losses(tokens, weights)
    forward = (time.perf_counter() - t) / n_docs * 1e3
    data = [p.data for p in m.params]
    grad = [random.gauss(0, 1e-2) for _ in data]
    mm, vv = [0.0] * len(data), [0.0] * len(data)
    t = time.perf_counter()
    for step in range(n_docs):
        c1, c2 = 1 - m.beta1 ** (step + 1), 1 - m.beta2 ** (step + 1)
        for i, g in enumerate(grad):
            mm[i] = m.beta1 * mm[i] + (1 - m.beta1) * g
            vv[i] = m.beta2 * vv[i] + (1 - m.beta2) * g * g
            data[i] -= 0.01 * (mm[i] / c1) / ((vv[i] / c2) ** 0.5 + m.eps)
    adam = (time.perf_counter() - t) / n_docs * 1e3
    limit = 3 * forward + adam
    print(f'float-only limit: forward {forward:.2f} ms x 3 + Adam {adam:.2f} ms = {limit:.2f} ms per step; '
          f'the step above is {step_ms / limit:.2f}x that')


def eval_speed(before):
    """Evaluation, before and now, exact: the same docs and weights in both; now with each switch off."""
    for argv, n, rounds in (([], 3203, 3), (['--n_layer=4', '--n_embd=64'], 3203, 1)):
        _, val_docs = setup(*argv)
        before.configure(argv)
        before.use_vocab(m.chars)
        weights = m.float_weights()
        docs = val_docs[:n]

        def timed(f):
            t = time.perf_counter()
            f()
            return time.perf_counter() - t
        t = taking_turns(rounds, {'before': lambda: timed(lambda: before.evaluate(docs, weights)),
                                  'now': lambda: timed(lambda: m.evaluate(docs))})
        size = ' '.join(argv) or 'defaults'
        print(f'evaluation of {n} held-out docs, {size}: before {statistics.median(t["before"]):.2f} s, now '
              f'{statistics.median(t["now"]):.2f} s: {ratio(t, "before", "now"):.2f}x faster '
              f'({rounds} round{"s" * (rounds > 1)} taking turns)')
        if argv:
            continue
        m.prefix_cache = False
        plain = statistics.median(timed(lambda: m.evaluate(docs)) for _ in range(rounds))
        m.prefix_cache, m.no_grad = True, False
        graph = timed(lambda: m.evaluate(docs[:300])) * len(docs) / 300
        m.no_grad = True
        print(f'  prefix_cache=False: {plain:.2f} s; no_grad=False (the Value graph, scaled from 300 docs): '
              f'{graph:.2f} s')


def workers_speed(rounds=3, steps=150):
    """Documents per second at --batch_size=8 with 1, 2 and 4 worker processes, taking turns."""
    t = taking_turns(rounds, {w: (lambda w=w: ms_per_step([f'--num_steps={steps}', '--batch_size=8',
                                                          f'--workers={w}'])) for w in (1, 2, 4)})
    docs = {w: 8 * 1000 / statistics.median(v) for w, v in t.items()}
    print(f'data parallel, --batch_size=8, first {steps} steps, {rounds} rounds taking turns: docs/s '
          + ', '.join(f'{w} worker{"s" * (w > 1)} {d:.0f}' for w, d in docs.items())
          + f'; 2 workers / 1 = {ratio(t, 1, 2):.2f}x, 4 / 1 = {ratio(t, 1, 4):.2f}x')


def echo(pipe):
    while True:
        pipe.send(pipe.recv())


def shipping():
    """What one step's traffic costs a worker: the weights out and the gradients back, through a pipe."""
    for argv in ([], ['--n_layer=4', '--n_embd=64']):
        setup(*argv)
        weights = [p.data for p in m.params]
        ours, theirs = multiprocessing.Pipe()
        proc = multiprocessing.get_context('fork').Process(target=echo, args=(theirs,), daemon=True)
        proc.start()
        times = []
        for _ in range(50):
            t = time.perf_counter()
            ours.send((weights, []))
            ours.recv()
            ours.send((0.0, weights))  # the gradients: as many floats as the weights
            ours.recv()
            times.append(time.perf_counter() - t)
        proc.kill()
        proc.join()
        print(f'shipping, {" ".join(argv) or "defaults"} ({len(weights)} params, '
              f'{len(pickle.dumps(weights)) / 1e3:.0f} kB each way): {statistics.median(times) * 1e3:.2f} ms a step a worker')


def memory(n_steps=5):
    """Traced heap after each step of a bigger model: it must not grow from step to step."""
    train_docs, _ = setup('--n_layer=4', '--n_embd=64', f'--num_steps={n_steps}')
    tracemalloc.start()
    sizes = []
    for _ in m.train(train_docs):
        gc.collect()
        sizes.append(tracemalloc.get_traced_memory()[0] / 1e6)
    tracemalloc.stop()
    print(f'memory, n_layer=4 n_embd=64 ({len(m.params)} params): traced heap after steps 1..{n_steps}: '
          + ' '.join(f'{s:.2f}' for s in sizes) + ' MB')


def display_overhead(rounds=5, steps=300):
    """What the progress line, the running mean and the chart add to training: run_training() against
    Part 1's bare train() loop, with the same settings, taking turns."""
    def bare():
        train_docs, _ = setup(f'--num_steps={steps}')
        gc.disable()
        t = time.perf_counter()
        for _ in m.train(train_docs):
            pass
        gc.enable()
        return time.perf_counter() - t

    def shown():
        train_docs, _ = setup(f'--num_steps={steps}')
        with open(os.devnull, 'w') as null:
            old, sys.stdout = sys.stdout, null
            t = time.perf_counter()
            m.run_training(train_docs)
            sys.stdout = old
        return time.perf_counter() - t
    t = taking_turns(rounds, {'bare': bare, 'shown': shown})
    print(f'progress line, running mean and chart: {ratio(t, "shown", "bare") - 1:+.1%} on {steps} steps '
          f'({rounds} rounds taking turns)')


def load_and_sample():
    setup()
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
    print(f'saved default model: {size / 1000:.0f} kB; `--load=... --num_steps=0 --eval_docs=0` '
          f'(start Python, read input.txt, load, sample 20): median {statistics.median(runs):.2f} s of 5')


def full_runs(before_path):
    for name, script in (('before', before_path), ('now', os.path.join(ROOT, 'microgpt.py'))):
        t = time.perf_counter()
        out = subprocess.run([sys.executable, script], cwd=ROOT, check=True, capture_output=True, text=True).stdout
        wall = time.perf_counter() - t
        ms = re.findall(r'([\d.]+) ms/step', out)[-1]
        losses = re.search(r'val loss [\d.]+ \| train loss [\d.]+', out).group()
        print(f'python microgpt.py ({name}): {ms} ms/step, {losses}, wall {wall:.1f} s')
        samples = re.findall(r'^sample.*$', out, re.M)
        print(f'  samples: {" ".join(s.split(": ")[1] for s in samples)}')


if __name__ == '__main__':
    print(f'{platform.python_implementation()} {platform.python_version()} on {platform.machine()}, '
          f'{os.cpu_count()} cores, {time.strftime("%Y-%m-%d %H:%M")}')
    with tempfile.TemporaryDirectory() as d:
        before_path, before = load_before(d)
        step = training_speed(before_path)
        float_limit(step)
        eval_speed(before)
        workers_speed()
        shipping()
        memory()
        display_overhead()
        load_and_sample()
        if '--full' in sys.argv:
            full_runs(before_path)
