"""Benchmarks for microgpt.py: the README's speed and memory figures live here, not in the tests.

    python tests/bench.py            # everything below but the full runs (15-20 minutes)
    python tests/bench.py --full     # also the complete default runs, before and now (~1 min more)

The machine is shared and noisy, so what is compared runs side by side, taking turns, and we quote
medians; a ratio is the median of the ratios of runs that ran next to each other. "Before" is
microgpt.py at commit 931c8c2, before Part 1 stood whole on its own (read with git). Imports only
the standard library and microgpt.
"""
import contextlib, gc, importlib.util, json, multiprocessing, os, pickle, platform, random, re
import resource, statistics, subprocess, sys, tempfile, time, tracemalloc, zlib

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NOW = os.path.join(ROOT, 'microgpt.py')
sys.path.insert(0, ROOT)
import microgpt as m  # noqa: E402

BEFORE = '931c8c2'
DEFAULTS = m.settings()  # as imported: setup() puts them back before each measurement
QUIET = ['--eval_docs=0', '--num_samples=0']  # a run that only trains


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
    """The defaults, then argv; input.txt split and a fresh model, as main() makes them."""
    for name, value in DEFAULTS.items():
        setattr(m, name, value)
    m.configure(list(argv))
    random.seed(m.seed)
    train_docs, val_docs = m.split_docs(m.read_text(os.path.join(ROOT, 'input.txt')))
    m.use_vocab(sorted(set(''.join(train_docs + val_docs))))
    m.use_weights()
    return train_docs, val_docs


def run(script, *args):
    """A run of script as a user starts it; -> (its stdout, wall seconds, CPU seconds). The CPU
    time (user + system, of the process and the workers it joined) is what a busy machine
    disturbs least: other processes take wall time from it, not CPU time."""
    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    out = subprocess.run([sys.executable, script, *args], cwd=ROOT, check=True,
                         capture_output=True, text=True).stdout
    wall = time.perf_counter() - t
    now = resource.getrusage(resource.RUSAGE_CHILDREN)
    return out, wall, now.ru_utime + now.ru_stime - used.ru_utime - used.ru_stime


def ms_per_step(script, *args):
    """-> (the ms/step of the last progress line: training time over the steps, evaluations
    included; the CPU seconds of the whole run)."""
    out, _, cpu = run(script, *QUIET, *args)
    return float(re.findall(r'([\d.]+) ms/step', out)[-1]), cpu


def taking_turns(rounds, runs):
    """runs: {name: function returning a time, or a tuple of them}; each round runs each once,
    in turn. -> {name: [what it returned, a round each]}"""
    times = {name: [] for name in runs}
    for _ in range(rounds):
        for name, f in runs.items():
            times[name].append(f())
    return times


def part(times, i):  # the i-th of each tuple
    return {name: [x[i] for x in values] for name, values in times.items()}


def med(times, name):
    return statistics.median(times[name])


def ratio(times, a, b):  # the median ratio of runs side by side
    return statistics.median(x / y for x, y in zip(times[a], times[b]))


def rounds_of(times, a, b):
    return ', '.join(f'{x / y:.3f}' for x, y in zip(times[a], times[b]))


def training_speed(before_path, rounds=5, steps=300):
    """1. The default training step, before and now, with the periodic evaluation off (the step
    alone) and at its default; and with pause_gc off. Then fused off, over fewer steps."""
    n = f'--num_steps={steps}'
    t = taking_turns(rounds, {
        'before': lambda: ms_per_step(before_path, n),
        'now': lambda: ms_per_step(NOW, n, '--eval_interval=0'),
        'now, eval default': lambda: ms_per_step(NOW, n),
        'pause_gc=False': lambda: ms_per_step(NOW, n, '--eval_interval=0', '--pause_gc=False')})
    ms, cpu = part(t, 0), part(t, 1)
    print(f'1. the default training step, first {steps} steps, {rounds} rounds taking turns; '
          f'medians of ms/step (the progress line, wall time) and of the CPU seconds of the run:')
    evals = f'--eval_interval={DEFAULTS["eval_interval"]}, {DEFAULTS["eval_iters"]} docs'
    for name, what in (('now', 'now, --eval_interval=0'),
                       ('now, eval default', f'now, the periodic evaluation at its default '
                                             f'({evals})')):
        print(f'  {what}: {med(ms, name):.2f} ms/step vs before {med(ms, "before"):.2f}: '
              f'now / before = {ratio(ms, name, "before"):.3f} (rounds '
              f'{rounds_of(ms, name, "before")}); CPU {med(cpu, name):.2f} s vs '
              f'{med(cpu, "before"):.2f} s: {ratio(cpu, name, "before"):.3f} '
              f'(rounds {rounds_of(cpu, name, "before")})'
              + ('; target: within 5%' if name == 'now' else ''))
    print(f'  pause_gc=False {med(ms, "pause_gc=False"):.2f} ms/step: the resting collector '
          f'saves {1 - 1 / ratio(ms, "pause_gc=False", "now"):.0%} of a step '
          f'({1 - 1 / ratio(cpu, "pause_gc=False", "now"):.0%} of its CPU time)')
    short = ['--num_steps=40', '--eval_interval=0']
    atomic = taking_turns(3, {'fused=False': lambda: ms_per_step(NOW, *short, '--fused=False'),
                              'now': lambda: ms_per_step(NOW, *short)})
    ms, cpu = part(atomic, 0), part(atomic, 1)
    print(f'  fused=False {med(ms, "fused=False"):.1f} ms/step: fused nodes are '
          f'{ratio(ms, "fused=False", "now"):.1f}x faster ({ratio(cpu, "fused=False", "now"):.1f}x'
          f' in CPU time of the run; first 40 steps, 3 rounds)')
    return med(ms, 'now')


def train_here(*argv):
    """run_training() in this process, as main() calls it, printing nowhere. -> (wall seconds,
    CPU seconds of this process alone: not of its workers)."""
    train_docs, val_docs = setup(*argv)
    mm, vv = [0.0] * len(m.params), [0.0] * len(m.params)
    with open(os.devnull, 'w') as null, contextlib.redirect_stdout(null):
        wall, cpu = time.perf_counter(), time.process_time()
        m.run_training(train_docs, val_docs, mm, vv)
        return time.perf_counter() - wall, time.process_time() - cpu


def eval_interval_overhead(rounds=(5, 3), slice_steps=2000):
    """2. What the periodic evaluation at its default adds to training, against none: in the
    default run, and in a slice of the README's ten-minute run (its settings, as a run of
    slice_steps steps: as many evaluations a step as the whole run). Training runs here, in
    run_training(). With workers, the evaluation runs in this process while they wait, so its
    extra CPU time over this process's CPU time bounds the wall overhead from above."""
    print(f'2. the periodic evaluation (--eval_interval={DEFAULTS["eval_interval"]}, '
          f'{DEFAULTS["eval_iters"]} held-out docs each time) against none (--eval_interval=0), '
          f'taking turns (target: at most 10%):')
    configs = (('the default run, 1000 steps', [], rounds[0]),
               (f'the ten-minute run (--batch_size=8 --workers=2 --learning_rate=0.01), a slice: '
                f'--num_steps={slice_steps} of its 20000',
                ['--batch_size=8', '--workers=2', '--learning_rate=0.01',
                 f'--num_steps={slice_steps}'], rounds[1]))
    _, val_docs = setup()
    eval_ms = 1000 * statistics.median(timed(lambda: m.evaluate(val_docs[:m.eval_iters]))[0]
                                       for _ in range(20))
    print(f'  one periodic evaluation of the default model: {eval_ms:.0f} ms (median of 20)')
    for name, args, n in configs:
        t = taking_turns(n, {'off': lambda: train_here(*args, '--eval_interval=0'),
                             'default': lambda: train_here(*args)})
        wall, cpu = part(t, 0), part(t, 1)
        step_ms = med(wall, 'off') * 1000 / int(args[-1].split('=')[1] if args else 1000)
        print(f'  {name}, {n} rounds: wall {med(wall, "off"):.1f} s vs '
              f'{med(wall, "default"):.1f} s: '
              f'{ratio(wall, "default", "off") - 1:+.1%} '
              f'(rounds {rounds_of(wall, "default", "off")}); CPU of this process '
              f'{med(cpu, "off"):.1f} s vs {med(cpu, "default"):.1f} s: '
              f'{ratio(cpu, "default", "off") - 1:+.1%} '
              f'(rounds {rounds_of(cpu, "default", "off")})')
        print(f'    derived: one evaluation {eval_ms:.0f} ms / ({DEFAULTS["eval_interval"]} steps '
              f'x {step_ms:.1f} ms, the median step without) = '
              f'{eval_ms / DEFAULTS["eval_interval"] / step_ms:+.1%}')


def save_cost(rounds=40):
    """3. A default save with the training state (save_model) against the same file without it:
    json.dump of the weights alone, flushed, fsynced and renamed the same way, taking turns."""
    train_docs, val_docs = setup()
    rng = random.Random(1)
    mm = [rng.gauss(0, 1e-2) for _ in m.params]
    vv = [rng.gauss(0, 1e-2) ** 2 for _ in m.params]
    crc = zlib.crc32(m.read_text(os.path.join(ROOT, 'input.txt')).encode('utf-8'))
    with tempfile.TemporaryDirectory() as d:
        full, alone = os.path.join(d, 'full.json'), os.path.join(d, 'alone.json')

        def with_state():
            t = time.perf_counter()
            m.save_model(full, mm, vv, m.num_steps, crc)
            return time.perf_counter() - t

        def weights_alone():
            t = time.perf_counter()
            blob = {'config': {k: getattr(m, k) for k in m.SHAPE}, 'chars': m.chars,
                    'state_dict': m.float_weights()}
            tmp = f'{alone}.tmp{os.getpid()}'
            try:
                with open(tmp, 'w', encoding='utf-8') as f:
                    json.dump(blob, f)
                    f.flush()
                    os.fsync(f.fileno())
                os.replace(tmp, alone)
            finally:
                if os.path.exists(tmp):
                    os.remove(tmp)
            return time.perf_counter() - t
        t = taking_turns(rounds, {'full': with_state, 'alone': weights_alone})
        sizes = os.path.getsize(full) / 1e3, os.path.getsize(alone) / 1e3
    print(f'3. a default save, median of {rounds} taking turns: with the training state '
          f'{statistics.median(t["full"]) * 1e3:.1f} ms ({sizes[0]:.0f} kB), the weights alone '
          f'{statistics.median(t["alone"]) * 1e3:.1f} ms ({sizes[1]:.0f} kB): the state adds '
          f'{ratio(t, "full", "alone") - 1:+.1%} (target: at most 10%)')


def float_limit(step_ms, n_docs=500):
    """What a step costs with no graph at all, derived: a float-only step is a forward pass, a
    backward pass of about twice its work (each multiply-add of the forward has two in the
    backward: one for the weight's gradient, one for the input's), and Adam. Forward and Adam are
    timed on plain floats."""
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
    print(f'float-only limit: forward {forward:.2f} ms x 3 + Adam {adam:.2f} ms = {limit:.2f} ms '
          f'per step; the step above is {step_ms / limit:.2f}x that')


def timed(f):
    t = time.perf_counter()
    result = f()
    return time.perf_counter() - t, result


def eval_speed(before):
    """Evaluation, before and now, of the same docs with the same weights; now with each of
    prefix_cache and no_grad off."""
    for argv, rounds in (([], 3), (['--n_layer=4', '--n_embd=64'], 1)):
        _, val_docs = setup(*argv)
        before.configure(argv)
        before.use_model(m.chars, m.float_weights())
        losses = {}

        def run_eval(name, f):
            seconds, losses[name] = timed(f)
            return seconds
        t = taking_turns(rounds, {
            'before': lambda: run_eval('before', lambda: before.evaluate(val_docs)),
            'now': lambda: run_eval('now', lambda: m.evaluate(val_docs))})
        same = 'the same loss' if losses['before'] == losses['now'] else \
            f'losses {losses["before"]!r} and {losses["now"]!r}'
        print(f'evaluation of {len(val_docs)} held-out docs, {" ".join(argv) or "defaults"}: '
              f'before {statistics.median(t["before"]):.2f} s, '
              f'now {statistics.median(t["now"]):.2f} s: '
              f'now / before = {ratio(t, "now", "before"):.2f} ({same}; {rounds} '
              f'round{"s" * (rounds > 1)} taking turns)')
        if argv:
            continue
        m.prefix_cache = False
        plain = statistics.median(timed(lambda: m.evaluate(val_docs))[0] for _ in range(rounds))
        m.prefix_cache, m.no_grad = True, False
        graph = timed(lambda: m.evaluate(val_docs[:300]))[0] * len(val_docs) / 300
        m.no_grad = True
        print(f'  prefix_cache=False: {plain:.2f} s; no_grad=False (the Value graph, scaled from '
              f'300 docs): {graph:.2f} s')


def workers_speed(rounds=3, steps=150):
    """Documents per second at --batch_size=8 with 1, 2 and 4 worker processes, taking turns."""
    both = taking_turns(rounds, {w: (lambda w=w: ms_per_step(
        NOW, f'--num_steps={steps}', '--batch_size=8', f'--workers={w}', '--eval_interval=0'))
        for w in (1, 2, 4)})
    t, cpu = part(both, 0), part(both, 1)
    docs = {w: 8 * 1000 / statistics.median(v) for w, v in t.items()}
    print(f'data parallel, --batch_size=8, first {steps} steps, {rounds} rounds taking turns: '
          'docs/s ' + ', '.join(f'{w} worker{"s" * (w > 1)} {d:.0f}' for w, d in docs.items())
          + f'; 2 workers / 1 = {ratio(t, 1, 2):.2f}x, 4 / 1 = {ratio(t, 1, 4):.2f}x; CPU time '
          f'of all processes, 2 workers / 1 = {ratio(cpu, 2, 1):.2f}, '
          f'4 / 1 = {ratio(cpu, 4, 1):.2f}')


def echo(pipe):
    while True:
        pipe.send(pipe.recv())


def shipping():
    """What one step's traffic costs a worker: the weights out, the gradients back, by pipe."""
    for argv in ([], ['--n_layer=4', '--n_embd=64']):
        setup(*argv)
        weights = [p.data for p in m.params]
        ours, theirs = multiprocessing.Pipe()
        proc = multiprocessing.get_context('fork').Process(target=echo, args=(theirs,),
                                                           daemon=True)
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
        ours.close()
        theirs.close()
        print(f'shipping, {" ".join(argv) or "defaults"} ({len(weights)} params, '
              f'{len(pickle.dumps(weights)) / 1e3:.0f} kB each way): '
              f'{statistics.median(times) * 1e3:.2f} ms a step a worker')


def memory(n_steps=5):
    """Traced heap after each step of a bigger model: it must not grow from step to step."""
    train_docs, _ = setup('--n_layer=4', '--n_embd=64', f'--num_steps={n_steps}')
    mm, vv = [0.0] * len(m.params), [0.0] * len(m.params)
    tracemalloc.start()
    sizes = []
    with m.resting_collector():
        for _ in m.train(train_docs, mm, vv):
            gc.collect()
            sizes.append(tracemalloc.get_traced_memory()[0] / 1e6)
    tracemalloc.stop()
    print(f'memory, n_layer=4 n_embd=64 ({len(m.params)} params): traced heap after steps '
          f'1..{n_steps}: ' + ' '.join(f'{s:.2f}' for s in sizes) + ' MB')


def load_and_sample(rounds=5):
    """Starting Python, reading input.txt, loading the default model and sampling 20."""
    setup()
    zeros = [0.0] * len(m.params)
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, 'model.json')
        m.save_model(path, zeros, zeros, 0, 0)
        size = os.path.getsize(path)
        runs = [run(NOW, f'--load={path}', '--num_steps=0', '--eval_docs=0')[1]
                for _ in range(rounds)]
    print(f'saved default model: {size / 1000:.0f} kB; `--load=... --num_steps=0 --eval_docs=0` '
          f'(start Python, read input.txt, load, sample 20): median '
          f'{statistics.median(runs):.2f} s of {rounds}')


def full_runs(before_path):
    """--full: `python microgpt.py` as it was and as it is, whole (not the same split of docs)."""
    for name, script in (('before', before_path), ('now', NOW)):
        out, wall, _ = run(script)
        ms = re.findall(r'([\d.]+) ms/step', out)[-1]
        losses = re.search(r'val loss [\d.]+ \| train loss [\d.]+', out).group()
        print(f'python microgpt.py ({name}): {ms} ms/step, {losses}, wall {wall:.1f} s')
        samples = re.findall(r'^sample.*$', out, re.M)
        print(f'  samples: {" ".join(s.split(": ")[1] for s in samples)}')


if __name__ == '__main__':
    print(f'{platform.python_implementation()} {platform.python_version()} on '
          f'{platform.machine()}, {os.cpu_count()} cores, {time.strftime("%Y-%m-%d %H:%M")}; '
          f'before = {BEFORE}', flush=True)
    with tempfile.TemporaryDirectory() as d:
        before_path, before = load_before(d)
        for f in (lambda: float_limit(training_speed(before_path)), eval_interval_overhead,
                  save_cost, lambda: eval_speed(before), workers_speed, shipping, memory,
                  load_and_sample):
            f()
            sys.stdout.flush()
        if '--full' in sys.argv:
            full_runs(before_path)
