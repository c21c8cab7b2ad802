"""Ablations (issue 30): what each piece of the GPT buys, measured. Each is an edit a learner
could make to Part 1 of microgpt.py by hand:

    python tests/ablate.py           # 3 seeds, equal steps and equal FLOPs: 366 to 392 s of CPU
    python tests/ablate.py --quick   # a quick look: seed 42, equal steps only: 77 to 93 s of CPU
    python tests/ablate.py --seeds=42,1,2,3 --jobs=1   # other seeds; runs at a time

For each variant it writes a copy of microgpt.py with the edit applied (exact text that must
match the file as it is: it stops with a message if a text is not there exactly once), trains
that copy's main() in a fresh process (two at a time, one per core; the
defaults otherwise: 1,000 steps, seed 42 or the seed given), then scores ALL the held-out names
with the copy's evaluate(): main()'s val loss, since --eval_docs (5000) exceeds their number.
Part 4's check runs in each: Part 2 still computes exactly what the edited Part 1 does.

Two budgets: equal steps (1,000), and equal training FLOPs, those of the model as it is at 1,000
steps. FLOPs are the run's own meter (train_flops(), the `compute:` line); an edit that changes
what a step computes changes that function in its copy too, so the meter counts what the copy
computes, and a cheaper step gets more steps: the step count whose FLOPs come nearest the budget.
An edit that leaves the FLOPs as they were has one run for both columns. Baselines: a uniform
guess and the character bigram of tests/bigram.py, on the same held-out names.
Imports only the standard library (and, to plan, microgpt). Two runs at a time on 2 free cores
should take about half the CPU time in wall time (not measured; the times: tests/README.md).
"""
import contextlib, importlib.util, io, math, multiprocessing, os, platform, random, re
import resource, signal, statistics, subprocess, sys, tempfile, time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(ROOT, 'microgpt.py')
NAMES = os.path.join(ROOT, 'input.txt')
SEEDS = (42, 1, 2)
JOBS = 2  # runs at a time: one per core
PART2_RULER = 'Part 2: everything else is just efficiency'  # the model's edits: above it

SINUSOID = '''\
def sinusoid(pos_id):  # fixed positions (Vaswani et al. 2017): sin, cos at n_embd / 2 rates
    return [math.sin(pos_id / 10000 ** (i / n_embd)) if i % 2 == 0
            else math.cos(pos_id / 10000 ** ((i - 1) / n_embd)) for i in range(n_embd)]

'''
GPT_DEF = 'def gpt(token_id, pos_id, keys, values, sd=None, attention=None):\n'
POSITION = ("    x = [t + p for t, p in zip(sd['wte'][token_id], sd['wpe'][pos_id])]"
            "  # token + position\n")
MLP = '''\
        # 2) MLP: widen 4x, relu, project back
        x_residual = x
        x = rmsnorm(x)
        x = linear(x, sd[f'layer{li}.mlp_fc1'])  # (4 * n_embd,)
        x = [relu(xi) for xi in x]
        x = linear(x, sd[f'layer{li}.mlp_fc2'])  # (n_embd,)
        x = [a + b for a, b in zip(x, x_residual)]
'''
WEIGHTS_FLOPS = '    weights = n_layer * 12 * n * n + vocab_size * n  # qkvo, MLP, lm_head\n'
ATTENTION_FLOPS = ('    attention = n_layer * n * T * (T + 1)  # q.k, w.v: 2n a read, '
                   'T(T+1)/2 reads\n')

# name: (what it does, [(old text, new text)]): the model's edits (Part 1), then the meter's
VARIANTS = {
    'as it is': ('the model as it is', []),
    'no attention': ('each position sees only itself: the cache holds one position', [
        ('        keys[li].append(k)\n        values[li].append(v)\n',
         '        keys[li][:] = [k]  # no attention: each position sees only itself\n'
         '        values[li][:] = [v]\n'),
        (ATTENTION_FLOPS, '    attention = n_layer * n * 2 * T  # one read a position\n')]),
    'no MLP': ("the MLP's 7 lines deleted from gpt()", [
        (MLP, ''),
        (WEIGHTS_FLOPS, '    weights = n_layer * 4 * n * n + vocab_size * n  # qkvo, lm_head\n')]),
    'no position': ('x = sd[\'wte\'][token_id]: the token alone', [
        (POSITION, "    x = sd['wte'][token_id]  # the token alone: no position\n")]),
    'sinusoidal': ('fixed sin/cos positions in place of wpe', [
        (GPT_DEF, SINUSOID + GPT_DEF),
        (POSITION, POSITION.replace("sd['wpe'][pos_id]", 'sinusoid(pos_id)'))]),
    'two layers': ('n_layer = 2', [
        ('n_layer = 1               # transformer blocks\n',
         'n_layer = 2               # transformer blocks\n')]),
}


class EditError(Exception):
    pass


def edited(name, source):
    """source (microgpt.py's text) with the variant's edits applied; each old text must occur
    exactly once, and the model's (all but the meter's, which change train_flops) in Part 1."""
    for old, new in VARIANTS[name][1]:
        count = source.count(old)
        if count != 1:
            raise EditError(f'ablation {name!r}: its text occurs {count} times in microgpt.py, '
                            f'not once; re-point it in tests/ablate.py:\n{old}')
        meter = old in (WEIGHTS_FLOPS, ATTENTION_FLOPS)
        if not meter and source.index(old) > source.index(PART2_RULER):
            raise EditError(f'ablation {name!r}: its text is not in Part 1:\n{old}')
        source = source.replace(old, new)
    return source


def write_copies(folder, names):  # -> {name: path of its edited copy of microgpt.py}
    with open(SCRIPT, encoding='utf-8') as f:
        source = f.read()
    paths = {}
    for name in names:
        paths[name] = os.path.join(folder, f'microgpt_{name.replace(" ", "_")}.py')
        with open(paths[name], 'w', encoding='utf-8') as f:
            f.write(edited(name, source))
    return paths


def load(path, tag):  # a copy of microgpt.py, imported as a module of its own
    spec = importlib.util.spec_from_file_location(f'ablated_{tag}', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def the_data(mod, seed):
    """input.txt split as main() splits it, train_docs in this seed's order; the vocabulary."""
    random.seed(seed)
    train_docs, val_docs = mod.split_docs(mod.read_text(NAMES))
    mod.use_vocab(sorted(set(''.join(train_docs + val_docs))))
    return train_docs, val_docs


def flops_of(mod, lengths, steps):  # the meter's count for this many steps (batch_size 1)
    return sum(mod.train_flops(lengths[s % len(lengths)]) for s in range(steps))


def plan(mod, lengths, budget):  # the step count whose FLOPs come nearest the budget
    flops = steps = 0
    while True:
        more = mod.train_flops(lengths[steps % len(lengths)])
        if steps and abs(flops + more - budget) > abs(flops - budget):
            return steps, flops
        flops, steps = flops + more, steps + 1


def one_run(job):
    """In a fresh process: the copy's main() trains; its evaluate() scores all held-out docs.
    -> a row of figures."""
    name, path, seed, steps, column = job
    print(f'  run under way: {name}, seed {seed}, {steps} steps\n', end='', flush=True)
    cpu = time.process_time()
    mod = load(path, name.replace(' ', '_'))
    made = mod.init_weights
    first = []  # the initial weights: an unused weight never changes (its gradient is 0)
    mod.init_weights = lambda: first.append(made()) or first[0]
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        r = mod.main([f'--input_file={NAMES}', f'--seed={seed}', f'--num_steps={steps}',
                      '--eval_interval=0', '--eval_docs=0', '--num_samples=0'])
    check = re.search(r'^check: .*$', out.getvalue(), re.M)[0]
    clock = time.time()
    train_docs, val_docs = the_data(mod, seed)
    val = mod.evaluate(val_docs)
    trained = sum(a != b.data for name_, mat in mod.state_dict.items()
                  for row, prow in zip(first[0][name_], mat) for a, b in zip(row, prow))
    return {'name': name, 'seed': seed, 'steps': steps, 'column': column, 'val': val,
            'flops': r['flops'], 'params': len(mod.params), 'trained': trained,
            'seconds': r['seconds'], 'eval_seconds': time.time() - clock,
            'cpu': time.process_time() - cpu, 'check': check, 'n_val': len(val_docs)}


def baselines():  # -> (uniform, bigram) held-out losses, by tests/bigram.py
    out = subprocess.run([sys.executable, os.path.join(ROOT, 'tests', 'bigram.py'),
                          f'--input_file={NAMES}'], capture_output=True, text=True, check=True)
    uniform = float(re.search(r'uniform guess: .* = ([\d.]+)', out.stdout)[1])
    bigram = float(re.search(r'character bigram.*val loss ([\d.]+)', out.stdout)[1])
    return uniform, bigram


def flag_list(argv):
    given = {'quick': False, 'seeds': list(SEEDS), 'jobs': JOBS}
    for arg in argv:
        name, _, text = arg[2:].partition('=')
        if arg in ('-h', '--help'):
            print(__doc__)
            sys.exit()
        elif arg == '--quick':
            given['quick'] = True
        elif name == 'seeds' and re.fullmatch(r'\d+(,\d+)*', text):
            given['seeds'] = [int(s) for s in text.split(',')]
        elif name == 'jobs' and text.isdigit() and int(text) > 0:
            given['jobs'] = int(text)
        else:
            sys.exit(f'usage: python tests/ablate.py [--quick] [--seeds=42,1,2] [--jobs=2]; '
                     f'not {arg!r}')
    if given['quick']:
        given['seeds'] = given['seeds'][:1]
    return given


def main(argv):
    started = time.time()
    given = flag_list(argv)
    seeds, jobs = given['seeds'], given['jobs']
    print(f'ablations of microgpt.py: seeds {seeds}, '
          f'{"equal steps only (--quick)" if given["quick"] else "equal steps and equal FLOPs"}; '
          f'Python {platform.python_version()}, {os.cpu_count()} cores, runs at a time: {jobs}; '
          f'load average at the start {os.getloadavg()[0]:.2f}', flush=True)
    with tempfile.TemporaryDirectory() as folder:
        try:
            paths = write_copies(folder, VARIANTS)
        except EditError as e:
            sys.exit(f'ablate.py: {e}')
        base = load(paths['as it is'], 'plan')
        todo = []
        budgets = {}
        for seed in seeds:
            train_docs, _ = the_data(base, seed)
            lengths = [min(len(base.encode(doc)) - 1, base.block_size) for doc in train_docs]
            budgets[seed] = flops_of(base, lengths, base.num_steps)
            for name, path in paths.items():
                mod = load(path, f'plan_{name.replace(" ", "_")}')
                mod.use_vocab(base.chars)
                todo.append((flops_of(mod, lengths, base.num_steps), name, path, seed,
                             base.num_steps, 'steps'))
                steps, flops = plan(mod, lengths, budgets[seed])
                if steps != base.num_steps and not given['quick']:
                    todo.append((flops, name, path, seed, steps, 'flops'))
        todo.sort(key=lambda t: -t[0] * (2 if 'two' in t[1] else 1))  # the longest first
        planned = {(t[1], t[3], t[5]): t[0] for t in todo}
        rows = []
        ctx = multiprocessing.get_context('fork')
        used = resource.getrusage(resource.RUSAGE_CHILDREN)
        with ctx.Pool(jobs, signal.signal, (signal.SIGINT, signal.SIG_IGN), 1) as pool:
            try:
                for row in pool.imap_unordered(one_run, [t[1:] for t in todo]):
                    rows.append(row)
                    print(f'  run {len(rows):2d}/{len(todo)}: {row["name"]:12} seed '
                          f'{row["seed"]:2d} {row["steps"]:5d} steps: val {row["val"]:.4f} '
                          f'({row["seconds"]:.0f} s training, {row["eval_seconds"]:.0f} s '
                          f'scoring; {time.time() - started:.0f} s so far)', flush=True)
            except KeyboardInterrupt:  # a run in training takes SIGTERM as "stop after this
                for child in multiprocessing.active_children():  # step, then score": end it
                    child.kill()
                raise
            pool.close()
            pool.join()
        now = resource.getrusage(resource.RUSAGE_CHILDREN)
        for row in rows:  # the meter counted what the plan said
            assert row['flops'] == planned[row['name'], row['seed'], row['column']], row
        uniform, bigram = baselines()
    cpu = now.ru_utime + now.ru_stime - used.ru_utime - used.ru_stime
    report(rows, seeds, budgets, uniform, bigram, given['quick'])
    wall = time.time() - started
    load1, _, load15 = os.getloadavg()
    print(f'\nwall time: {wall:.0f} s ({wall / 60:.1f} min); CPU time of its runs {cpu:.0f} s; '
          f'load average at the end {load1:.2f} (1 min), {load15:.2f} (15 min) on '
          f'{os.cpu_count()} cores')
    return rows


def summary(losses):  # mean, and the spread (max - min) when there are several
    mean = statistics.mean(losses)
    return f'{mean:.4f}' + (f' ±{(max(losses) - min(losses)) / 2:.4f}' if len(losses) > 1 else '')


def report(rows, seeds, budgets, uniform, bigram, quick):
    at = {(r['name'], r['seed'], r['column']): r for r in rows}
    for (name, seed, _), r in list(at.items()):  # an edit that costs the same: one run, both
        at.setdefault((name, seed, 'flops'), r)
    n_val = rows[0]['n_val']
    print(f'\n1. every run: held-out loss on all {n_val} held-out names; FLOPs by the meter of '
          f'its copy; trained: the weights that training changed (one the edit leaves '
          f'unused, of a position never reached or of a ReLU unit never active keeps its value)')
    print(f'{"variant":13} {"seed":>4} {"column":>6} {"steps":>5} {"FLOPs":>9} {"params":>6} '
          f'{"trained":>7} {"val":>7} {"train s":>7} {"CPU s":>6}  check')
    for r in sorted(rows, key=lambda r: (list(VARIANTS).index(r['name']), r['column'],
                                        r['seed'])):
        print(f'{r["name"]:13} {r["seed"]:4d} {r["column"]:>6} {r["steps"]:5d} '
              f'{r["flops"]:9.4g} {r["params"]:6d} {r["trained"]:7d} {r["val"]:7.4f} '
              f'{r["seconds"]:7.1f} {r["cpu"]:6.1f}  {r["check"][7:]}')
    budget = statistics.mean(budgets.values())
    spread = f'mean of {len(seeds)} seeds ±half their range' if len(seeds) > 1 else \
        f'seed {seeds[0]}'
    flops = '' if quick else f'; equal FLOPs: {budget:.3g}, the model as it is at 1,000 steps'
    print(f'\n2. the table: held-out loss on all {n_val} held-out names ({spread}){flops}\n')
    head = f'| variant | the edit | weights trained (seed {seeds[0]}) | 1,000 steps |'
    print(head + ('' if quick else ' steps for equal FLOPs | equal FLOPs |'))
    print('|---|---|---|---|' + ('' if quick else '---|---|'))
    print(f'| uniform guess | ln(27) | 0 | {uniform:.4f} |' + ('' if quick else ' | |'))
    print(f'| character bigram | tests/bigram.py | 729 counts | {bigram:.4f} |'
          + ('' if quick else ' | |'))
    for name, (what, _) in VARIANTS.items():
        same = [at[name, s, 'steps'] for s in seeds]
        loss = summary([r['val'] for r in same])
        cells = f'| {name} | {what} | {same[0]["trained"]:,} | {loss} |'
        if not quick:
            eq = [at[name, s, 'flops'] for s in seeds]
            steps = sorted({r['steps'] for r in eq})
            shown = f'{steps[0]:,}' + (f' to {steps[-1]:,}' if len(steps) > 1 else '')
            cells += f' {shown} | {summary([r["val"] for r in eq])} |'
        print(cells)
    if 42 in seeds:
        print('\n  seed 42 alone (the default run): ' + ', '.join(
            f'{name} {at[name, 42, "steps"]["val"]:.4f}' for name in VARIANTS))


if __name__ == '__main__':
    try:
        main(sys.argv[1:])
    except KeyboardInterrupt:  # Ctrl-C: one line; the pool's workers ignore it and are ended
        sys.exit('ablate.py: interrupted')
