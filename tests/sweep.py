"""A scaling sweep in miniature (issue 23: the barrier is data and compute, measured).

    python tests/sweep.py          # the sweep: 18 min on 2 free cores (2,127 s of CPU)
    python tests/sweep.py --widths=8,16 --budgets=2e7,2e8 --jobs=1   # a smaller one

It trains one-layer models of several widths (n_embd, with 4 heads) at several training budgets,
in FLOPs as microgpt's own meter counts them (train_flops(), summed over the batches of a run),
and scores each on ALL the held-out names. The documents a step reads are fixed
(train_docs[(step * batch_size + j) % len(train_docs)]) and a window never changes how many tokens
a document predicts, so the FLOPs of a run are known before it runs: num_steps is the step count
whose FLOPs come nearest the budget, and the table shows the FLOPs the meter then counted.

Each run is main() in a fresh process (two at a time, one per core), with
--eval_interval=0 --eval_docs=0 --num_samples=0: it only trains. The held-out loss is then
microgpt's evaluate() on all held-out docs, which is main()'s val_loss with --eval_docs >= their
number (spread() returns them all), without main()'s second evaluation of as many train docs.

Then: the held-out loss against FLOPs for each width (a table and a chart), the best width at each
budget, a fit loss(C) = a + b * C^-c of the best loss per budget, and, for the best runs, tokens
predicted per parameter against the ~20 of Hoffmann et al. (2022), "Training Compute-Optimal Large
Language Models". Imports only the standard library and microgpt.
"""
import contextlib, io, math, multiprocessing, os, platform, random, resource, signal, sys, time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
import microgpt as m  # noqa: E402

WIDTHS = (8, 16, 24, 32)  # n_embd; n_layer 1, n_head 4 (48: never the best, the slowest)
BUDGETS = tuple(2e7 * 10 ** (k / 2) for k in range(5))  # 2e7 to 2e9 FLOPs, half a decade apart
N_LAYER, N_HEAD, BATCH = 1, 4, 4
JOBS = 2  # runs at a time: one per core
MARKS = 'abcdefghij'  # the chart's mark for each width, in order


def learning_rate(n_embd):
    """Adam's rate at step 0 (it decays linearly to 0): 0.015 at the default width 16, scaled as
    1 / sqrt(n_embd), as init_std is; the same rule at every budget. Chosen by a probe at 2e8
    FLOPs, batch_size 4, of 0.01 * sqrt(16 / n_embd) times 1/3, 1 and 3 (held-out loss, all names):
      n_embd  8 (1119 steps): 2.3822, 2.3407, 2.3476
      n_embd 16  (321 steps): 2.4234, 2.3763, 2.3680
      n_embd 32   (87 steps): 2.5109, 2.4434, 2.4465
    A parabola in log(rate) through each row puts its best at 1.5x, 2.2x and 1.7x: a flat optimum
    near 1.5x to 2x at every width, so the rate scales as 1 / sqrt(n_embd) and 1.5x is kept."""
    return round(0.015 * (16 / n_embd) ** 0.5, 5)


def flag_list(argv):  # --name=v1,v2 -> {name: [v1, v2]}
    out = {}
    for arg in argv:
        if arg in ('-h', '--help'):
            print(__doc__)
            sys.exit()
        name, _, text = arg[2:].partition('=')
        if not arg.startswith('--') or name not in ('widths', 'budgets', 'jobs'):
            sys.exit(f'usage: python tests/sweep.py [--widths=8,16] [--budgets=2e7,2e8] [--jobs=2]'
                     f'; not {arg!r}')
        out[name] = [float(x) for x in text.split(',')]
    return out


def the_data():
    """input.txt split as main() splits it: train_docs in the seed's order, the held-out docs."""
    m.reset_settings()
    random.seed(m.seed)
    train_docs, val_docs = m.split_docs(m.read_text(os.path.join(ROOT, m.input_file)))
    m.use_vocab(sorted(set(''.join(train_docs + val_docs))))
    return train_docs, val_docs


def plan(width, budget, train_docs):
    """-> (num_steps, FLOPs, tokens predicted): the step count whose FLOPs, by microgpt's own
    train_flops() over the documents those steps read, come nearest the budget."""
    m.n_embd, m.n_layer = width, N_LAYER
    try:
        T = [min(m.block_size, len(m.encode(doc)) - 1) for doc in train_docs]
        flops = tokens = step = 0
        while True:
            docs = [(step * BATCH + j) % len(train_docs) for j in range(BATCH)]
            more = sum(m.train_flops(T[i]) for i in docs)
            if step and abs(flops + more - budget) > abs(flops - budget):
                return step, flops, tokens
            flops, tokens, step = flops + more, tokens + sum(T[i] for i in docs), step + 1
    finally:
        m.reset_settings()


def argv_of(width, steps):
    return [f'--n_embd={width}', f'--n_head={N_HEAD}', f'--n_layer={N_LAYER}',
            f'--batch_size={BATCH}', f'--num_steps={steps}',
            f'--learning_rate={learning_rate(width)}', '--eval_interval=0',
            '--eval_docs=0', '--num_samples=0']


def one_run(job):
    """In a fresh process: main() trains; evaluate() scores all held-out docs. -> a row."""
    width, budget, steps, val_docs = job
    print(f'  run under way: n_embd={width:2d} budget {budget:.1e}: {steps:5d} steps\n', end='',
          flush=True)  # one write, so that two runs' lines never mix; Ctrl-C in
    # tests/test_6_readme.py waits for this line from both runs
    m.reset_settings()
    with contextlib.redirect_stdout(io.StringIO()):
        r = m.main(argv_of(width, steps))
    clock = time.time()
    val = m.evaluate(val_docs)
    tail = r['losses'][-max(1, steps // 10):]  # the training loss over the last tenth of steps
    return {'width': width, 'budget': budget, 'steps': steps, 'params': len(m.params),
            'flops': r['flops'], 'tokens': r['tokens'], 'epochs': r['epochs'], 'val': val,
            'train': sum(tail) / len(tail), 'seconds': r['seconds'],
            'eval_seconds': time.time() - clock, 'lr': learning_rate(width)}


def fit(points):
    """Least squares of loss = a + b * C^-c on points [(C, loss)]. For each floor a on a grid
    from 0 to just under the lowest loss, log(loss - a) against log C is a straight line (its
    slope -c, its intercept log b, by ordinary least squares); the floor kept is the one whose
    curve has the least squared error in the loss itself. -> (a, b, c, sse, profile), profile
    [(a, b, c, sse)] over the whole grid."""
    lo = min(loss for _, loss in points)
    profile = []
    for k in range(1000):
        a = lo * k / 1000
        xs = [math.log(C) for C, _ in points]
        ys = [math.log(loss - a) for _, loss in points]
        mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
        slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sum((x - mx) ** 2 for x in xs)
        b, c = math.exp(my - slope * mx), -slope
        sse = sum((loss - a - b * C ** -c) ** 2 for C, loss in points)
        profile.append((a, b, c, sse))
    return (*min(profile, key=lambda p: p[3]), profile)


def compute_for(loss, a, b, c):  # C at which a + b * C^-c = loss; inf if at or below the floor
    return (b / (loss - a)) ** (1 / c) if loss > a and c > 0 else math.inf


def parabola_min(points):
    """The vertex of the parabola through 3 points (x, y): x of the least y, or None if it opens
    down. Used on (log params, loss) around the best width: Hoffmann et al.'s IsoFLOP approach."""
    (x0, y0), (x1, y1), (x2, y2) = points
    d = (x0 - x1) * (x0 - x2) * (x1 - x2)
    A = (x2 * (y1 - y0) + x1 * (y0 - y2) + x0 * (y2 - y1)) / d
    B = (x2 ** 2 * (y0 - y1) + x1 ** 2 * (y2 - y0) + x0 ** 2 * (y1 - y2)) / d
    return -B / (2 * A) if A > 0 else None


def main(argv):
    started = time.time()
    given = flag_list(argv)
    widths = [int(w) for w in given.get('widths', WIDTHS)]
    budgets = given.get('budgets', BUDGETS)
    jobs = int(given.get('jobs', [JOBS])[0])
    train_docs, val_docs = the_data()
    print(f'scaling sweep: n_layer={N_LAYER}, n_head={N_HEAD}, batch_size={BATCH}, block_size='
          f'{m.block_size}, learning rate 0.015 * sqrt(16 / n_embd) decaying linearly to 0')
    print(f'{len(train_docs)} train docs, {len(val_docs)} held out (every one scored); '
          f'Python {platform.python_version()}, {os.cpu_count()} cores, runs at a time: {jobs}; '
          f'load average at the start {os.getloadavg()[0]:.2f}')
    todo = []
    for w in widths:
        for B in budgets:
            steps, flops, tokens = plan(w, B, train_docs)
            todo.append((flops, w, B, steps))
    todo.sort(reverse=True)  # the longest runs first: the two cores end together
    rows = []
    ctx = multiprocessing.get_context('fork')
    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    with ctx.Pool(jobs, signal.signal, (signal.SIGINT, signal.SIG_IGN), 1) as pool:
        work = [(w, B, steps, val_docs) for _, w, B, steps in todo]
        try:
            for row in pool.imap_unordered(one_run, work):
                rows.append(row)
                print(f'  run {len(rows):2d}/{len(work)}: n_embd={row["width"]:2d} budget '
                      f'{row["budget"]:.1e}: {row["steps"]:5d} steps, val {row["val"]:.4f} '
                      f'({row["seconds"]:.0f} s training, {row["eval_seconds"]:.0f} s scoring; '
                      f'{time.time() - started:.0f} s so far)', flush=True)
        except KeyboardInterrupt:  # a run in training takes SIGTERM as "stop after this step,
            for child in multiprocessing.active_children():  # then score": end them now
                child.kill()
            raise
        pool.close()
        pool.join()
    now = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = now.ru_utime + now.ru_stime - used.ru_utime - used.ru_stime
    for row in rows:  # the meter counted what plan() predicted: the FLOPs are known in advance
        planned = next(f for f, w, B, _ in todo if (w, B) == (row['width'], row['budget']))
        assert row['flops'] == planned, (row, planned)
    report(rows, widths, budgets)
    wall = time.time() - started
    print(f'\nwall time of the sweep: {wall:.0f} s ({wall / 60:.1f} min); CPU time of its runs '
          f'{cpu:.0f} s; load average at the end {os.getloadavg()[0]:.2f} (1 min), '
          f'{os.getloadavg()[2]:.2f} (15 min) on {os.cpu_count()} cores')


def report(rows, widths, budgets):
    at = {(r['width'], r['budget']): r for r in rows}
    best = {B: min((at[w, B] for w in widths), key=lambda r: r['val']) for B in budgets}

    print('\n1. every run (tokens: predictions trained on; tok/param: tokens per parameter)')
    print(f'{"n_embd":>6} {"params":>6} {"lr":>7} {"budget":>7} {"steps":>6} {"FLOPs (meter)":>13} '
          f'{"tokens":>8} {"tok/param":>9} {"epochs":>6} {"train":>6} {"val":>6} {"train s":>7}')
    for w in widths:
        for B in budgets:
            r = at[w, B]
            print(f'{w:6d} {r["params"]:6d} {r["lr"]:7.5f} {B:7.1e} {r["steps"]:6d} '
                  f'{r["flops"]:13.4g} {r["tokens"]:8d} {r["tokens"] / r["params"]:9.2f} '
                  f'{r["epochs"]:6.3f} {r["train"]:6.3f} {r["val"]:6.4f} {r["seconds"]:7.1f}'
                  + ('  best' if best[B] is r else ''))

    print('\n2. held-out loss on all held-out names: width (rows) against budget in FLOPs '
          '(columns); * the best of a column')
    print(f'{"n_embd":>6} {"params":>6} ' + ' '.join(f'{B:>8.1e}' for B in budgets))
    for w in widths:
        cells = [f'{at[w, B]["val"]:.4f}' + ('*' if best[B] is at[w, B] else ' ') for B in budgets]
        print(f'{w:6d} {at[w, budgets[0]]["params"]:6d} ' + ' '.join(f'{c:>8}' for c in cells))

    points = [(best[B]['flops'], best[B]['val']) for B in budgets]
    a, b, c, sse, profile = fit(points) if len(points) >= 4 else (None,) * 5  # 3 unknowns

    print('\n3. the chart: held-out loss against log10 of the FLOPs '
          '(marks: the widths; · the fit; a mark hides any it lands on: the table has them all)')
    x = {r['flops']: round(100 * math.log10(r['flops'])) for r in rows}
    curves = {}
    if a is not None:
        lo, hi = min(x.values()), max(x.values())
        curves['·'] = [(s, a + b * (10 ** (s / 100)) ** -c) for s in range(lo, hi + 1)
                       if a + b * (10 ** (s / 100)) ** -c <= max(r['val'] for r in rows)]
    for mark, w in zip(MARKS, widths):
        curves[mark] = [(x[at[w, B]['flops']], at[w, B]['val']) for B in budgets]
    lines = m.chart(curves, height=16)
    first, last = min(x.values()), max(x.values())
    ends = [f'{10 ** (s / 100):.1e} FLOPs' for s in (first, last)]  # the axis is log10 FLOPs
    lines[-1] = f'{"":12}{ends[0]:<{60 - 16}}{ends[1]:>16}'
    print('\n'.join(lines))
    fitted = '   · fit' if a is not None else ''  # a fit needs 4 budgets: 3 unknowns and a check
    print(f'{"":12}' + '   '.join(f'{mk} n_embd={w}' for mk, w in zip(MARKS, widths)) + fitted)

    print('\n4. the best width at each budget, and tokens per parameter against ~20 (Hoffmann et '
          'al. 2022)')
    print(f'{"budget":>7} {"best":>5} {"val":>6} {"params":>6} {"tokens":>8} {"tok/param":>9} '
          f'{"tok/non-emb":>11}   isoFLOP parabola (log params, 3 widths around the best)')
    for B in budgets:
        r = best[B]
        i = widths.index(r['width'])
        para = ''
        if 0 < i < len(widths) - 1:
            trio = [at[w, B] for w in widths[i - 1:i + 2]]
            v = parabola_min([(math.log(t['params']), t['val']) for t in trio])
            if v is not None and math.log(trio[0]['params']) <= v <= math.log(trio[2]['params']):
                j = 0 if v <= math.log(trio[1]['params']) else 1  # between trio[j] and trio[j+1]
                x0, x1 = (math.log(t['params']) for t in trio[j:j + 2])
                y0, y1 = (math.log(t['tokens'] / t['params']) for t in trio[j:j + 2])
                ratio = math.exp(y0 + (y1 - y0) * (v - x0) / (x1 - x0))  # log-log interpolated
                para = f'optimum ~{math.exp(v):,.0f} params, ~{ratio:.1f} tok/param'
            else:
                para = 'no minimum between its neighbours'
        else:
            para = 'best at the edge of the widths: no optimum inside them'
        non_emb = N_LAYER * 12 * r['width'] ** 2
        print(f'{B:7.1e} {r["width"]:5d} {r["val"]:6.4f} {r["params"]:6d} {r["tokens"]:8d} '
              f'{r["tokens"] / r["params"]:9.1f} {r["tokens"] / non_emb:11.1f}   {para}')
    print('  (params count every weight, embeddings too, as Hoffmann et al. do; tok/non-emb uses '
          'the 12 * n_embd^2 of the block alone)')

    if a is None:
        return
    print('\n5. the fit of the best loss per budget: loss(C) = a + b * C^-c, least squares in the '
          'loss; for each floor a on a grid of 1000 from 0 to the lowest loss, b and c are a '
          'straight-line fit of log(loss - a) on log C; the floor kept has the least squared error')
    edge = ' (at the edge of the grid: the floor is not pinned down)' if (
        a == profile[0][0] or a == profile[-1][0]) else ''
    print(f'  a = {a:.4f}{edge}, b = {b:.4g}, c = {c:.4f}; squared error {sse:.2e} over '
          f'{len(points)} points ({len(points) - 3} degrees of freedom)')
    for C, loss in points:
        print(f'    C {C:.3e}: best loss {loss:.4f}, fit {a + b * C ** -c:.4f}')
    worst = 2 * sse
    near = [p for p in profile if p[3] <= worst]
    print(f'  floors within 2x the least squared error: a from {near[0][0]:.3f} to '
          f'{near[-1][0]:.3f}' if near else '')
    print('  what the fit predicts (extrapolated far beyond the data; each row is one floor):')
    print(f'  {"floor a":>8} {"c":>7} {"sq. error":>9} {"C for 2.15":>11} {"C for 2.10":>11} '
          f'{"C for 2.00":>11} {"C for 1.90":>11}')
    picks = sorted({round(a, 3), 0.0, *(round(p[0], 3) for p in near[::max(1, len(near) // 4)])})
    for floor in picks:
        p = min(profile, key=lambda q: abs(q[0] - floor))
        need = [compute_for(L, *p[:3]) for L in (2.15, 2.10, 2.00, 1.90)]
        print(f'  {p[0]:8.3f} {p[2]:7.4f} {p[3]:9.2e} ' +
              ' '.join(f'{n:11.3g}' if n < math.inf else f'{"never":>11}' for n in need)
              + ('   <- least squares' if p[0] == a else ''))


if __name__ == '__main__':
    try:
        main(sys.argv[1:])
    except KeyboardInterrupt:  # Ctrl-C: one line; the pool's workers ignore it and are ended
        sys.exit('sweep.py: interrupted')
