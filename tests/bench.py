"""Benchmarks for microgpt.py: the speed and memory figures of tests/README.md live here, not in the
tests.

    python tests/bench.py            # all but the ten-minute slice (about 27 min, busy 2 cores)
    python tests/bench.py --full     # also the periodic evaluation in a slice of the ten-minute run
    python tests/bench.py --floor    # only line 4: the default step against the float-only floor
    python tests/bench.py --step=COMMIT  # the step, now against COMMIT; --part2=False too (~10 min)

The machine is shared and noisy, so what is compared runs side by side, taking turns, and we quote
medians; a ratio is the median of the ratios of runs that ran next to each other. CPU time, which a
busy machine disturbs less, is quoted beside wall time. "Before" is microgpt.py at commit 8f368d2,
the layout before the four parts (read with git). Each training run is a fresh process: this script
run again as `bench.py --drive SPEC`, which loads a microgpt file, trains and reports in JSON.
Imports only the standard library and microgpt.
"""
import contextlib, gc, importlib.util, io, json, os, platform, random
import re, resource, statistics, subprocess, sys, tempfile, time, timeit, tracemalloc, zlib

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NOW = os.path.join(ROOT, 'microgpt.py')
INPUT = os.path.join(ROOT, 'input.txt')
sys.path.insert(0, ROOT)
import microgpt as m  # noqa: E402

BEFORE = '8f368d2'
QUIET = ['--eval_docs=0', '--num_samples=0']  # a run that only trains
METER = ("    log['flops'] += sum(train_flops(len(t) - 1) for t in batch)\n"
         "    log['tokens'] += sum(len(t) - 1 for t in batch)\n")  # record()'s meter lines


# --- helpers: files, runs, turns, medians ------------------------------------
def git_file(commit, d, name):
    """microgpt.py at commit, written to d/name. -> its path."""
    path = os.path.join(d, name)
    with open(path, 'w', encoding='utf-8') as f:
        f.write(subprocess.run(['git', 'show', f'{commit}:microgpt.py'], cwd=ROOT, check=True,
                               capture_output=True, text=True).stdout)
    return path


def without_meter(d):
    """A copy of microgpt.py without run_training's two meter lines. -> its path."""
    with open(NOW, encoding='utf-8') as f:
        text = f.read()
    if text.count(METER) != 1:
        sys.exit('bench.py: the meter lines of record() are not in microgpt.py exactly once: '
                 're-point METER')
    path = os.path.join(d, 'no_meter.py')
    with open(path, 'w', encoding='utf-8') as f:
        f.write(text.replace(METER, ''))
    return path


def load_module(path, name):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def setup(*argv):
    """The defaults, then argv; input.txt split and a fresh model (character tokens), made by
    microgpt's own setup() as main() makes them. -> its run: train_docs, val_docs, adam, ..."""
    m.reset_settings()
    return m.setup([f'--input_file={INPUT}', *argv])


def run(*args):
    """A process started as a user starts one, in the repository; -> (its stdout, wall seconds,
    CPU seconds). The CPU time (user + system, of the process and its children) is
    what a busy machine disturbs least: other processes take wall time from it, not CPU time."""
    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    out = subprocess.run([sys.executable, *args], cwd=ROOT, check=True, capture_output=True,
                         text=True).stdout
    wall = time.perf_counter() - t
    now = resource.getrusage(resource.RUSAGE_CHILDREN)
    return out, wall, now.ru_utime + now.ru_stime - used.ru_utime - used.ru_stime


def drive(path, *argv, mode='train', variant=''):
    """drive_here() in a fresh process on the microgpt file at path. -> its report, with 'run_wall'
    and 'run_cpu': the whole process's (Python's start included)."""
    spec = {'path': path, 'argv': list(argv), 'mode': mode, 'variant': variant}
    out, wall, cpu = run(os.path.abspath(__file__), '--drive', json.dumps(spec))
    return dict(json.loads(out.splitlines()[-1]), run_wall=wall, run_cpu=cpu)


def side(path, *argv, variant=''):  # one side of a pair: a microgpt file, its flags, a variant
    return {'path': path, 'argv': list(argv), 'variant': variant}


def pair(first, second):
    """Two training runs, each in a fresh process as a user starts it, taking turns a step at a
    time: a byte passed through a pipe is the baton (see drive_turns). Both first set up (their
    model, and now's self-check), then the first takes the first step. -> [each side's report]"""
    batons = [os.pipe(), os.pipe()]  # to the first side, to the second
    ready, ready_to = os.pipe()
    procs = []
    try:
        for i, spec in enumerate((first, second)):
            fds = {'wait_fd': batons[i][0], 'pass_fd': batons[1 - i][1], 'ready_fd': ready_to}
            procs.append(subprocess.Popen(
                [sys.executable, os.path.abspath(__file__), '--drive',
                 json.dumps(dict(spec, mode='turns', second=i == 1, **fds))],
                cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                pass_fds=tuple(fds.values())))
        os.close(ready_to)
        ready_to = None
        got = b''
        while len(got) < 2:
            more = os.read(ready, 2 - len(got))
            if not more:
                break  # a side ended before it was ready: its error is below
            got += more
        if len(got) == 2:
            os.write(batons[0][1], b'x')  # the first side's first turn
        for fd in (batons[0][0], batons[0][1], batons[1][0], batons[1][1]):
            os.close(fd)  # theirs now: if one side ends, the other's wait ends too
        batons = []
        outs = [p.communicate() for p in procs]
    finally:
        for fd in [ready, ready_to, *(fd for b in batons for fd in b)]:
            if fd is not None:
                os.close(fd)
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    if any(p.returncode for p in procs):
        raise RuntimeError('a side of a pair failed:\n' + '\n'.join(err for _, err in outs))
    return [json.loads(out.splitlines()[-1]) for out, _ in outs]


def taking_turns(rounds, runs):
    """runs: {name: function}; each round runs each once, in turn. -> {name: [a result a round]}"""
    results = {name: [] for name in runs}
    for _ in range(rounds):
        for name, f in runs.items():
            results[name].append(f())
    return results


def part(results, key):  # {name: [result[key] of each round]}, of the results that have it
    return {name: [r[key] for r in rs] for name, rs in results.items() if key in rs[0]}


def med(times, name):
    return statistics.median(times[name])


def ratio(times, a, b):  # the median ratio of runs side by side
    return statistics.median(x / y for x, y in zip(times[a], times[b]))


def rounds_of(times, a, b):
    return ', '.join(f'{x / y:.3f}' for x, y in zip(times[a], times[b]))


def timed(f):  # -> (wall seconds, CPU seconds, what f returned)
    wall, cpu = time.perf_counter(), time.process_time()
    result = f()
    return time.perf_counter() - wall, time.process_time() - cpu, result


# --- the driver: one training run or main() in this process, reported as JSON --
def float_adam(step, data, grad, mm, vv):
    """Adam on plain floats, one step: the floor's, exactly as bench.py timed it before (the
    history's 1.6x to 1.8x were measured against this)."""
    c1, c2 = 1 - m.beta1 ** (step + 1), 1 - m.beta2 ** (step + 1)
    for i, g in enumerate(grad):
        mm[i] = m.beta1 * mm[i] + (1 - m.beta1) * g
        vv[i] = m.beta2 * vv[i] + (1 - m.beta2) * g * g
        data[i] -= 0.01 * (mm[i] / c1) / ((vv[i] / c2) ** 0.5 + m.eps)


class Floor:
    """The float-only floor, measured between the steps of the run it is compared with: after
    each step, the forward pass of that step's batch on plain floats, and Adam on plain floats. A
    step with no graph at all costs about 3 forward passes (each multiply-add of the forward has
    two in the backward: the weight's gradient and the input's) and Adam. Its own time is taken
    off the run's."""

    def __init__(self, mod, formula):
        self.mod, self.plain_train, self.formula = mod, mod.train, formula
        self.wall = self.cpu = 0.0  # all that this class adds to the run
        self.flops = 0  # of the steps, by the meter's formula
        self.forward = [0.0, 0.0]  # wall, CPU
        self.adam = [0.0, 0.0]
        self.sd = None

    def train(self, *args):
        for step, loss, batch in self.plain_train(*args):
            wall, cpu = time.perf_counter(), time.process_time()
            if self.sd is None:  # the floats of the weights: their shape is what counts
                self.sd = self.mod.float_weights()
                n = len(self.mod.params)
                self.floats = ([p.data for p in self.mod.params],
                               [random.Random(1).gauss(0, 1e-2) for _ in range(n)],
                               [0.0] * n, [0.0] * n)
            w0, c0 = time.perf_counter(), time.process_time()
            for tokens in batch:
                self.mod.doc_losses(tokens, self.sd)
            w1, c1 = time.perf_counter(), time.process_time()
            float_adam(step, *self.floats)
            w2, c2 = time.perf_counter(), time.process_time()
            self.forward[0] += w1 - w0
            self.forward[1] += c1 - c0
            self.adam[0] += w2 - w1
            self.adam[1] += c2 - c1
            self.flops += sum(self.formula(len(t) - 1) for t in batch)
            self.wall += time.perf_counter() - wall
            self.cpu += time.process_time() - cpu
            yield step, loss, batch


def setup_any(mod, argv):
    """(train_docs, val_docs, the arguments of its run_training()), as its main() makes them:
    now, setup(); before (8f368d2), main() did it inline."""
    if hasattr(mod, 'setup'):
        r = mod.setup(argv)
        mod.prove_part2(r['train_docs'], r['val_docs'])  # as main() does, before training
        return r['train_docs'], r['val_docs'], (r['train_docs'], r['val_docs'], r['adam'])
    mod.configure(argv)
    text = mod.read_text(mod.input_path())
    random.seed(mod.seed)
    train_docs, val_docs = mod.split_docs(text)
    mod.use_vocab(sorted(set(''.join(train_docs + val_docs))))
    mod.use_weights()
    zeros = [0.0] * len(mod.params)
    return train_docs, val_docs, (train_docs, val_docs, zeros, list(zeros))


def drive_turns(spec, mod, args):
    """One side of a pair: run_training() with its train() wrapped so that each step waits for
    the baton, then runs the step and its bookkeeping (the meter, the progress line, an
    evaluation), then passes the baton on. Each side times its own turns: wall, and the CPU time
    of its process. Both sides run on one core: what the machine does to one, it does to both."""
    times = []
    plain_train = mod.train

    def wait():
        if not os.read(spec['wait_fd'], 1):
            sys.exit('bench.py: the other side of the pair ended')

    def train(*args):
        steps = plain_train(*args)
        wait()
        while True:
            wall, cpu = time.perf_counter(), time.process_time()
            try:
                item = next(steps)  # (step, loss, batch); before: (step, loss)
            except StopIteration:
                return
            yield item
            times.append((time.perf_counter() - wall, time.process_time() - cpu))
            with contextlib.suppress(BrokenPipeError):
                os.write(spec['pass_fd'], b'x')
            if not (spec['second'] and item[0] + 1 == mod.num_steps):
                wait()  # the second side's last turn ends both: no wait then
    mod.train = train
    if hasattr(os, 'sched_setaffinity'):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    os.write(spec['ready_fd'], b'r')
    os.close(spec['ready_fd'])  # so that a side that never gets ready ends the wait
    mod.run_training(*args)
    chunks = [times[k:k + 30] for k in range(0, len(times), 30)]
    return {'steps': len(times), 'wall_ms': sum(w for w, _ in times) * 1e3 / len(times),
            'cpu_ms': sum(c for _, c in times) * 1e3 / len(times),
            'chunks_wall': [sum(w for w, _ in chunk) for chunk in chunks],
            'chunks_cpu': [sum(c for _, c in chunk) for chunk in chunks]}


def progress_ms(out):  # the ms a step of the last progress line: now `| 12.3 ms |`, before ms/step
    found = re.findall(r'([\d.]+) ms(?:/step)? \| eta', out)
    return float(found[-1]) if found else None


def drive_here(spec):
    """mode 'train': run_training() as main() calls it, timed; variant 'const_meter' swaps the
    meter's formula for a constant, 'floor' measures the float-only floor between the steps.
    mode 'main': main(argv), with the time of prove_part2() inside it. mode 'turns': one side of a
    pair (drive_turns)."""
    out = io.StringIO()
    report = {}
    with contextlib.redirect_stdout(out):
        if spec['mode'] == 'main':
            mod = load_module(spec['path'], 'driven')
            plain_prove = mod.prove_part2

            def prove_part2(*args):
                report['prove_wall'], report['prove_cpu'], _ = timed(lambda: plain_prove(*args))
            mod.prove_part2 = prove_part2
            wall, cpu, results = timed(lambda: mod.main(spec['argv']))
            report.update(main_wall=wall, main_cpu=cpu, flops=results['flops'],
                          seconds=results['seconds'], val_loss=results.get('val_loss'),
                          progress_ms=progress_ms(out.getvalue()))
        else:
            mod = load_module(spec['path'], 'driven')
            _, _, args = setup_any(mod, spec['argv'])
            formula = getattr(mod, 'train_flops', None)  # the meter's, before a variant's
            if spec['variant'] == 'const_meter':
                mod.train_flops = lambda T: 1
            if spec['mode'] == 'turns':
                report = drive_turns(spec, mod, args)
            else:
                floor = Floor(mod, formula) if spec['variant'] == 'floor' else None
                if floor:
                    mod.train = floor.train
                wall, cpu, _ = timed(lambda: mod.run_training(*args))
                steps = mod.num_steps
                extra = (floor.wall, floor.cpu) if floor else (0.0, 0.0)
                report.update(steps=steps, wall_ms=(wall - extra[0]) * 1e3 / steps,
                              cpu_ms=(cpu - extra[1]) * 1e3 / steps,
                              progress_ms=progress_ms(out.getvalue()))
                if floor:
                    report.update(flops=floor.flops,
                                  forward_wall_ms=floor.forward[0] * 1e3 / steps,
                                  forward_cpu_ms=floor.forward[1] * 1e3 / steps,
                                  adam_wall_ms=floor.adam[0] * 1e3 / steps,
                                  adam_cpu_ms=floor.adam[1] * 1e3 / steps)
    print(json.dumps(report))


# --- 1, 3, 4: the training step; the meter; the float-only floor ---------------
def turn_about(a, b):
    """-> a function that runs pair(a, b), then pair(b, a), and so on: each side goes first in
    every other round. It returns (a's report, b's report)."""
    rounds = []

    def f():
        rounds.append(None)
        reports = pair(a, b) if len(rounds) % 2 else pair(b, a)[::-1]
        return reports
    return f


def paired(results, name):  # -> {'wall': [first / second, a round each], 'cpu': [...]}, medians
    out = {}
    for key in ('wall', 'cpu'):
        out[key] = [a[f'{key}_ms'] / b[f'{key}_ms'] for a, b in results[name]]
        out[f'{key}_ms'] = [statistics.median(r[i][f'{key}_ms'] for r in results[name])
                            for i in (0, 1)]
    return out


def says(r, target=''):  # a pair's ratios, wall and CPU, with each round's
    return (f'wall {statistics.median(r["wall"]):.3f} (rounds '
            f'{", ".join(f"{x:.3f}" for x in r["wall"])}), CPU {statistics.median(r["cpu"]):.3f} '
            f'(rounds {", ".join(f"{x:.3f}" for x in r["cpu"])}); ms a step '
            f'{r["wall_ms"][0]:.2f} vs {r["wall_ms"][1]:.2f} wall, {r["cpu_ms"][0]:.2f} vs '
            f'{r["cpu_ms"][1]:.2f} CPU{target}')


STEP_ROUNDS, STEPS = 5, 300  # line 1.'s rounds and steps, and line 4.'s (also `--floor`)


def training_step(before_path, no_meter_path, rounds=STEP_ROUNDS, steps=STEPS):
    """The default step, first `steps` steps, in rounds. Each round runs, in turn: five pairs (see
    pair(): two processes taking turns a step at a time), now and before, now and a copy without
    the meter's lines, now and now with the meter's formula a constant (the periodic evaluation
    off in all: the step alone), now with the periodic evaluation at its default and without,
    now with pause_gc off and on; then single runs, a process each: now and before as a user runs
    them (their progress lines), and now with the float-only floor measured between its steps."""
    n = f'--num_steps={steps}'
    alone = [n, '--eval_interval=0', *QUIET]
    now = side(NOW, *alone)
    t = taking_turns(rounds, {
        'before': turn_about(now, side(before_path, *alone)),
        'no meter lines': turn_about(now, side(no_meter_path, *alone)),
        'meter formula constant': turn_about(now, side(NOW, *alone, variant='const_meter')),
        'eval default': turn_about(side(NOW, n, *QUIET), now),
        'pause_gc=False': turn_about(side(NOW, *alone, '--pause_gc=False'), now),
        'single now': lambda: drive(NOW, *alone),
        'single before': lambda: drive(before_path, *alone),
        'floor': lambda: drive(NOW, *alone, variant='floor')})
    singles = ('single now', 'single before', 'floor')
    wall = part({k: t[k] for k in singles}, 'wall_ms')
    cpu = part({k: t[k] for k in singles}, 'cpu_ms')
    shown = part({k: t[k] for k in singles[:2]}, 'progress_ms')
    print(f'1. the default training step, first {steps} steps, {rounds} rounds. A pair is two '
          f'runs, each a fresh process, taking turns a step at a time on one core (each side '
          f'first in every other round); its ratio is one side\'s time over the other\'s, wall '
          f'and CPU, a round each, and their median:')
    print(f'  now / before ({BEFORE}), --eval_interval=0: ' + says(paired(t, 'before'),
                                                                 '; target (issue 22): within 3%'))
    print(f'    as a user runs them, one process each, in turn: the progress lines '
          f'{med(shown, "single now"):.2f} vs {med(shown, "single before"):.2f} ms: '
          f'{ratio(shown, "single now", "single before"):.3f} (rounds '
          f'{rounds_of(shown, "single now", "single before")}); CPU of the loop '
          f'{ratio(cpu, "single now", "single before"):.3f} (rounds '
          f'{rounds_of(cpu, "single now", "single before")})')
    evals = f'--eval_interval={m.eval_interval}, {m.eval_iters} held-out docs'
    print(f'  the periodic evaluation at its default ({evals}) / none: '
          + says(paired(t, 'eval default')))
    gc_off = paired(t, 'pause_gc=False')
    print(f'  pause_gc=False / now: ' + says(gc_off) + f': the resting collector saves '
          f'{1 - 1 / statistics.median(gc_off["wall"]):.1%} of a step '
          f'({1 - 1 / statistics.median(gc_off["cpu"]):.1%} of its CPU time)')
    short = ['--num_steps=40', '--eval_interval=0', *QUIET]
    atomic = taking_turns(3, {'fused=False': lambda: drive(NOW, *short, '--fused=False'),
                              'now': lambda: drive(NOW, *short)})
    aw, ac = part(atomic, 'wall_ms'), part(atomic, 'cpu_ms')
    print(f'  fused=False {med(aw, "fused=False"):.1f} ms a step: fused nodes are '
          f'{ratio(aw, "fused=False", "now"):.1f}x faster ({ratio(ac, "fused=False", "now"):.1f}x'
          f' in CPU time; first 40 steps, 3 rounds, one process each)')

    print(f'3. the compute meter (issue 23: no overhead measurable), pairs in the same rounds:')
    print(f'  now / a copy without the meter\'s two lines: ' + says(paired(t, 'no meter lines')))
    print(f'  now / train_flops() a constant: ' + says(paired(t, 'meter formula constant')))
    r = setup()
    batch = [m.window(m.encode(doc)) for doc in r['train_docs'][:1]]
    lines = timeit.Timer('flops += sum(train_flops(len(t) - 1) for t in batch)\n'
                         'tokens += sum(len(t) - 1 for t in batch)', 'flops = tokens = 0',
                         globals={'train_flops': m.train_flops, 'batch': batch})
    n_calls = 100_000
    each = min(lines.repeat(5, n_calls)) / n_calls * 1e3
    print(f'  the two lines alone (timeit, best of 5 x {n_calls:,}): {each * 1e3:.2f} us a step '
          f'= {each / med(wall, "single now"):.3%} of the median step')

    float_floor(t, wall, cpu, steps, rounds)


def float_floor(t, wall, cpu, steps, rounds):
    """Line 4: the step against the float-only floor, from the rounds of training_step() or of
    `bench.py --floor`, which runs only the floor's single runs (t: their reports)."""
    fw, fc = part(t, 'forward_wall_ms')['floor'], part(t, 'forward_cpu_ms')['floor']
    aw, ac = part(t, 'adam_wall_ms')['floor'], part(t, 'adam_cpu_ms')['floor']
    floor_wall = [3 * f + a for f, a in zip(fw, aw)]
    floor_cpu = [3 * f + a for f, a in zip(fc, ac)]
    fwall = {'step': wall['floor'], 'floor': floor_wall}
    fcpu = {'step': cpu['floor'], 'floor': floor_cpu}
    flops = statistics.median(part(t, 'flops')['floor']) / steps  # a step: the same docs
    print(f'4. the float-only floor, measured between the steps of the same run (after each '
          f'step, the forward pass of its batch on plain floats, x 3, and Adam on plain floats), '
          f'one process a round, {rounds} rounds:')
    print(f'  forward {statistics.median(fw):.2f} ms x 3 + Adam {statistics.median(aw):.2f} ms = '
          f'{statistics.median(floor_wall):.2f} ms wall (CPU: {statistics.median(fc):.2f} x 3 + '
          f'{statistics.median(ac):.2f} = {statistics.median(floor_cpu):.2f} ms); the step '
          f'{med(fwall, "step"):.2f} ms wall, {med(fcpu, "step"):.2f} ms CPU')
    print(f'  the step / the floor: {ratio(fwall, "step", "floor"):.3f}x wall (rounds '
          f'{rounds_of(fwall, "step", "floor")}), {ratio(fcpu, "step", "floor"):.3f}x CPU '
          f'(rounds {rounds_of(fcpu, "step", "floor")}); target (issue 23): at most 1.5x')
    rate = statistics.median(flops / w * 1e3 for w in wall['floor'])
    forward_rate = statistics.median(flops / 3 / f * 1e3 for f in fw)
    floor_rate = statistics.median(flops / f * 1e3 for f in floor_wall)
    print(f'  in FLOPs ({flops:.4g} a step, by train_flops(), on these docs): the step '
          f'{rate:.3g} FLOP/s, the floor {floor_rate:.3g} FLOP/s ({floor_rate / rate:.2f}x), the '
          f'float-only forward {forward_rate:.3g} FLOP/s ({forward_rate / rate:.2f}x); wall time')


def step_against(commit, rounds=STEP_ROUNDS, steps=STEPS, slow_steps=40):
    """`--step=COMMIT`: the default training step, now against microgpt.py at COMMIT (read with
    git), in pairs taking turns as in line 1.; the same with --part2=False (Part 1 as written, its
    first slow_steps steps); and now against now with --tape=False (the search, not the tape)."""
    alone = [f'--num_steps={steps}', '--eval_interval=0', *QUIET]
    slow = [f'--num_steps={slow_steps}', '--eval_interval=0', '--part2=False', *QUIET]
    with tempfile.TemporaryDirectory() as d:
        then = git_file(commit, d, 'then.py')
        t = taking_turns(rounds, {
            'then': turn_about(side(NOW, *alone), side(then, *alone)),
            'part2=False': turn_about(side(NOW, *slow), side(then, *slow)),
            'tape=False': turn_about(side(NOW, *alone, '--tape=False'), side(NOW, *alone))})
    print(f'the default training step, now against {commit}, pairs taking turns a step at a time '
          f'on one core, {rounds} rounds (each side first in every other round):')
    print(f'  now / {commit}, first {steps} steps: ' + says(paired(t, 'then'),
                                                         '; target (issue 28): within 3%'))
    print(f'  --part2=False, now / {commit}, first {slow_steps} steps: '
          + says(paired(t, 'part2=False')))
    print(f'  now --tape=False / now, first {steps} steps: ' + says(paired(t, 'tape=False')))


# --- 2: the self-check against the whole default run ------------------------
def self_check_cost(before_path, rounds=3, calls=5):
    """prove_part2() on the default model, `calls` times a round in this process, taking turns with
    the default run (main([]) in a fresh process, which also times prove_part2() inside itself)
    and with `python microgpt.py` as it was before."""
    r = setup()

    def check():
        with contextlib.redirect_stdout(io.StringIO()):
            times = [timed(lambda: m.prove_part2(r['train_docs'], r['val_docs']))[:2]
                     for _ in range(calls)]
        return {'wall': statistics.median(w for w, _ in times),
                'cpu': statistics.median(c for _, c in times)}

    def before():
        out, wall, cpu = run(before_path)
        return {'run_wall': wall, 'run_cpu': cpu, 'progress_ms': progress_ms(out),
                'val_loss': float(re.search(r'val loss ([\d.]+)', out).group(1))}
    t = taking_turns(rounds, {'now': lambda: drive(NOW, mode='main'), 'check': check,
                              'before': before})
    wall = {'check': part(t, 'wall')['check'], 'run': part(t, 'run_wall')['now'],
            'inside': part(t, 'prove_wall')['now'], 'before': part(t, 'run_wall')['before']}
    cpu = {'check': part(t, 'cpu')['check'], 'run': part(t, 'run_cpu')['now'],
           'inside': part(t, 'prove_cpu')['now'], 'before': part(t, 'run_cpu')['before']}
    print(f'2. the self-check (issue 22: at most 3% of the default run), {rounds} rounds taking '
          f'turns:')
    print(f'  prove_part2() on the default model, median of {calls} calls a round: '
          f'{med(wall, "check") * 1e3:.0f} ms wall, {med(cpu, "check") * 1e3:.0f} ms CPU; the '
          f'default run (main([]) in a fresh process, Python\'s start included) '
          f'{med(wall, "run"):.1f} s wall, {med(cpu, "run"):.1f} s CPU')
    print(f'  the check / the run: {ratio(wall, "check", "run"):.2%} wall (rounds '
          f'{rounds_of(wall, "check", "run")}), {ratio(cpu, "check", "run"):.2%} CPU (rounds '
          f'{rounds_of(cpu, "check", "run")})')
    print(f'  inside those runs prove_part2() took {med(wall, "inside") * 1e3:.0f} ms wall, '
          f'{med(cpu, "inside") * 1e3:.0f} ms CPU: {ratio(wall, "inside", "run"):.2%} and '
          f'{ratio(cpu, "inside", "run"):.2%} of its run')
    rates = [f / s for f, s in zip(part(t, 'flops')['now'], part(t, 'seconds')['now'])]
    print(f'  the whole default run, now / before: wall {ratio(wall, "run", "before"):.3f} '
          f'(rounds {rounds_of(wall, "run", "before")}), CPU {ratio(cpu, "run", "before"):.3f} '
          f'(rounds {rounds_of(cpu, "run", "before")}); progress lines '
          f'{statistics.median(part(t, "progress_ms")["now"]):.1f} vs '
          f'{statistics.median(part(t, "progress_ms")["before"]):.1f} ms a step; val loss '
          f'{t["now"][0]["val_loss"]:.4f} vs {t["before"][0]["val_loss"]:.4f}; the meter\'s '
          f'FLOP/s of the default run (main()\'s flops / seconds) {statistics.median(rates):.3g}')


# --- 5: the other figures -------------------------------------------------------
def one_evaluation():
    """One periodic evaluation of the default (untrained) model: its held-out docs, spread."""
    r = setup()
    eval_set = m.spread(r['val_docs'], m.eval_iters)
    times = [timed(lambda: m.evaluate(eval_set))[:2] for _ in range(20)]
    print(f'one periodic evaluation of the default model ({len(eval_set)} docs, spread): '
          f'{statistics.median(w for w, _ in times) * 1e3:.0f} ms wall, '
          f'{statistics.median(c for _, c in times) * 1e3:.0f} ms CPU (median of 20)')


def train_here(*argv):
    """run_training() in this process, as main() calls it, printing nowhere. -> (wall seconds,
    CPU seconds)."""
    r = setup(*argv)
    with contextlib.redirect_stdout(io.StringIO()):
        return timed(lambda: m.run_training(r['train_docs'], r['val_docs'], r['adam']))[:2]


def eval_interval_slice(rounds=3, slice_steps=2000):
    """--full: what the periodic evaluation at its default adds to a slice of the README's ten-
    minute run (its settings, as a run of slice_steps steps: as many evaluations a step as the
    whole run), against none."""
    args = ['--batch_size=8', '--learning_rate=0.01', f'--num_steps={slice_steps}']
    t = taking_turns(rounds, {'off': lambda: train_here(*args, '--eval_interval=0'),
                              'default': lambda: train_here(*args)})
    wall, cpu = {k: [w for w, _ in v] for k, v in t.items()}, {k: [c for _, c in v]
                                                               for k, v in t.items()}
    print(f'the periodic evaluation in the ten-minute run ({" ".join(args)}, a slice of its '
          f'20000 steps), {rounds} rounds: wall {med(wall, "off"):.1f} s vs '
          f'{med(wall, "default"):.1f} s: {ratio(wall, "default", "off") - 1:+.1%} (rounds '
          f'{rounds_of(wall, "default", "off")}); CPU of this process {med(cpu, "off"):.1f} s vs '
          f'{med(cpu, "default"):.1f} s: {ratio(cpu, "default", "off") - 1:+.1%}')


def save_cost(rounds=40):
    """A default save with the training state (save_model) against the same file without it: the
    weights alone, written in one piece, flushed, fsynced and renamed the same way."""
    r = setup()
    rng = random.Random(1)
    adam = {'step': m.num_steps, 'm': [rng.gauss(0, 1e-2) for _ in m.params],
            'v': [rng.gauss(0, 1e-2) ** 2 for _ in m.params]}
    with tempfile.TemporaryDirectory() as d:
        full, alone = os.path.join(d, 'full.json'), os.path.join(d, 'alone.json')
        crc = zlib.crc32(m.read_text(INPUT).encode('utf-8'))
        state = {'adam': adam, 'input_crc': crc, 'input_path': INPUT, 'before': 0}

        def with_state():
            with contextlib.redirect_stdout(io.StringIO()):
                return timed(lambda: m.save_model(full, state))[0]

        def weights_alone():
            t = time.perf_counter()
            blob = {'config': {k: getattr(m, k) for k in m.SHAPE}, 'chars': m.chars,
                    'merges': [], 'int8': False, 'state_dict': m.float_weights()}
            tmp = f'{alone}.tmp{os.getpid()}'
            try:
                with open(tmp, 'w', encoding='utf-8') as f:
                    f.write(json.dumps(blob))
                    f.flush()
                    os.fsync(f.fileno())
                os.replace(tmp, alone)
            finally:
                if os.path.exists(tmp):
                    os.remove(tmp)
            return time.perf_counter() - t
        t = taking_turns(rounds, {'full': with_state, 'alone': weights_alone})
        sizes = os.path.getsize(full) / 1e3, os.path.getsize(alone) / 1e3
    print(f'a default save, median of {rounds} taking turns: with the training state '
          f'{med(t, "full") * 1e3:.1f} ms ({sizes[0]:.0f} kB), the weights alone '
          f'{med(t, "alone") * 1e3:.1f} ms ({sizes[1]:.0f} kB): the state adds '
          f'{ratio(t, "full", "alone") - 1:+.1%} (budget: 10%)')


def in_turns(chunks, runs):
    """runs: {name: evaluate-like f(docs) -> loss}; each chunk of docs is evaluated by each in turn,
    the order turning about from chunk to chunk. -> (wall, CPU, loss): {name: [a chunk each]}"""
    wall, cpu, loss = ({name: [] for name in runs} for _ in range(3))
    for i, chunk in enumerate(chunks):
        for name in list(runs)[::1 if i % 2 == 0 else -1]:
            w, c, value = timed(lambda: runs[name](chunk))
            wall[name].append(w)
            cpu[name].append(c)
            loss[name].append(value)
    return wall, cpu, loss


def switched(name, value):  # -> evaluate with one of Part 2's switches set to value, then back
    def f(docs):
        was = getattr(m, name)
        setattr(m, name, value)
        try:
            return m.evaluate(docs)
        finally:
            setattr(m, name, was)
    return f


def eval_speed(before_path):
    """Evaluation of the same docs with the same weights, before and now, and now with no_grad
    off: the held-out docs sorted and cut into chunks, which each
    evaluates in turn. The ratios are of the sums: the whole evaluation."""
    before = load_module(before_path, 'before')
    for argv, n_docs, size in (([], None, 400), (['--n_layer=4', '--n_embd=64'], 800, 100)):
        val_docs = setup(*argv)['val_docs']
        docs = sorted(m.spread(val_docs, n_docs) if n_docs else val_docs)
        chunks = [docs[k:k + size] for k in range(0, len(docs), size)]
        before.configure(argv)
        before.use_vocab(m.chars)
        before.use_weights(m.float_weights())
        runs = {'before': before.evaluate, 'now': m.evaluate}
        wall, cpu, loss = in_turns(chunks, runs)
        total = {name: (sum(wall[name]), sum(cpu[name])) for name in runs}
        same = all(a == b for a, b in zip(loss['before'], loss['now']))
        print(f'evaluation of {len(docs)} held-out docs{" (spread)" * bool(n_docs)}, '
              f'{" ".join(argv) or "defaults"}, {len(chunks)} chunks of {size} in turn: before '
              f'{total["before"][0]:.2f} s, now {total["now"][0]:.2f} s wall: now / before = '
              f'{total["now"][0] / total["before"][0]:.3f} wall, '
              f'{total["now"][1] / total["before"][1]:.3f} CPU (chunks '
              f'{min(map(ratio_of, wall["now"], wall["before"])):.3f} to '
              f'{max(map(ratio_of, wall["now"], wall["before"])):.3f}); '
              f'{"the same losses" if same else "DIFFERENT losses"}')
        if argv:
            continue
        few = sorted(m.spread(val_docs, 320))
        gw, gc_, _ = in_turns([few[k:k + 40] for k in range(0, 320, 40)],
                              {'now': m.evaluate, 'graph': switched('no_grad', False)})
        x, y = sum(gw['graph']) / sum(gw['now']), sum(gc_['graph']) / sum(gc_['now'])
        print(f'  no_grad=False (the Value graph; on 320 docs, spread, 8 chunks in turn with '
              f'now): {x:.2f}x the time of now ({y:.2f}x CPU): about {x * total["now"][0]:.1f} s '
              f'wall for the {len(docs)} docs')


def ratio_of(a, b):
    return a / b


def memory(n_steps=5):
    """Traced heap after each step of a bigger model: it must not grow from step to step."""
    r = setup('--n_layer=4', '--n_embd=64', f'--num_steps={n_steps}')
    tracemalloc.start()
    sizes = []
    with m.resting_collector():
        for _ in m.train(r['train_docs'], r['adam']['m'], r['adam']['v']):
            gc.collect()
            sizes.append(tracemalloc.get_traced_memory()[0] / 1e6)
    tracemalloc.stop()
    print(f'memory, n_layer=4 n_embd=64 ({len(m.params)} params): traced heap after steps '
          f'1..{n_steps}: ' + ' '.join(f'{s:.2f}' for s in sizes) + ' MB')


def load_and_sample(rounds=5):
    """Starting Python, reading input.txt, loading the default model, its self-check, sampling."""
    r = setup()
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, 'model.json')
        with contextlib.redirect_stdout(io.StringIO()):
            m.save_model(path, {'adam': r['adam'], 'input_crc': 0, 'input_path': INPUT,
                                'before': 0})
        size = os.path.getsize(path)
        runs = [run(NOW, f'--load={path}', '--num_steps=0', '--eval_docs=0')[1:]
                for _ in range(rounds)]
    print(f'saved default model: {size / 1000:.0f} kB; `--load=... --num_steps=0 --eval_docs=0` '
          f'(start Python, read input.txt, load, the self-check, sample 20): median '
          f'{statistics.median(w for w, _ in runs):.2f} s wall, '
          f'{statistics.median(c for _, c in runs):.2f} s CPU, of {rounds}')


def merges_time():
    """learn_merges() on input.txt's training names (characters first), once each."""
    r = setup()
    times = []
    for n in (50, 200):
        wall, cpu, pairs = timed(lambda: m.learn_merges(r['train_docs'], n))
        times.append(f'{n} merges {wall:.1f} s wall, {cpu:.1f} s CPU ({len(pairs)} learned)')
    print(f'byte-pair merges, learn_merges() on {len(r["train_docs"])} training names, one run '
          f'each: ' + '; '.join(times))


if __name__ == '__main__':
    if sys.argv[1:2] == ['--drive']:
        drive_here(json.loads(sys.argv[2]))
        sys.exit()
    started = time.perf_counter()
    print(f'{platform.python_implementation()} {platform.python_version()} on '
          f'{platform.machine()}, {os.cpu_count()} cores, load average '
          f'{" ".join(f"{x:.1f}" for x in os.getloadavg())}, {time.strftime("%Y-%m-%d %H:%M")}; '
          f'before = {BEFORE}', flush=True)
    commits = [arg.split('=', 1)[1] for arg in sys.argv[1:] if arg.startswith('--step=')]
    if commits:
        step_against(commits[0])
        sys.exit()
    if '--floor' in sys.argv:  # line 4 alone: about a minute
        alone = [f'--num_steps={STEPS}', '--eval_interval=0', *QUIET]
        runs = taking_turns(STEP_ROUNDS, {'floor': lambda: drive(NOW, *alone, variant='floor')})
        float_floor(runs, part(runs, 'wall_ms'), part(runs, 'cpu_ms'), STEPS, STEP_ROUNDS)
        sys.exit()
    with tempfile.TemporaryDirectory() as d:
        before_path, no_meter_path = git_file(BEFORE, d, 'before.py'), without_meter(d)
        for f in (lambda: training_step(before_path, no_meter_path),
                  lambda: self_check_cost(before_path), one_evaluation,
                  lambda: eval_speed(before_path), memory, save_cost,
                  load_and_sample, merges_time):
            f()
            sys.stdout.flush()
        if '--full' in sys.argv:
            eval_interval_slice()
    print(f'bench.py took {time.perf_counter() - started:.0f} s wall; load average now '
          f'{" ".join(f"{x:.1f}" for x in os.getloadavg())}')
