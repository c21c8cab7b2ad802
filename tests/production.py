"""What Part 3 of microgpt.py ("what production changes") costs or buys, measured (issue 21).
Every figure of tests/README.md's section "What production changes (Part 3), measured" comes
from one of these commands, run from anywhere:

    python tests/production.py code_data    # remake tests/data/code.txt (on CPython 3.11.7)
    python tests/production.py bpe names    # 1. subword tokens on the names (input.txt)
    python tests/production.py bpe code     # 1. subword tokens on lines of Python (code.txt)
    python tests/production.py reload       # 1. a --bpe_merges model reloads bit-identical
    python tests/production.py int8         # 2. 8-bit weights: file sizes and held-out loss
    python tests/production.py tune         # 3. further training on chosen data
    python tests/production.py int8 tune    # several parts in one go (they share one model)
    python tests/production.py all          # all of the above but code_data (~35 minutes)

Losses, bits per character, FLOPs, vocabularies and file sizes are seeded: the same on any
machine with the same microgpt.py. Wall and CPU times are printed too; on a shared machine only
the CPU times mean much. Standard library only; imports microgpt as tests/bench.py does. Runs
happen in this process through main() (settings reset before each) or, where the output lines
are the point, as `python microgpt.py ...` in a temporary folder that is removed at the end.
"""
import contextlib, io, json, os, platform, re, resource, shutil, statistics, subprocess, sys
import sysconfig, tempfile, time, zlib

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(ROOT, 'microgpt.py')
NAMES = os.path.join(ROOT, 'input.txt')
CODE = os.path.join(ROOT, 'tests', 'data', 'code.txt')
sys.path.insert(0, ROOT)
import microgpt as m  # noqa: E402

# --- the code data set: lines of Python from the standard library -------------
CODE_MODULES = ('textwrap', 'shlex', 'fnmatch', 'glob', 'heapq', 'bisect', 'copy', 'csv',
                'functools', 'random', 'statistics', 'fractions', 'queue', 'contextlib',
                'pprint', 'difflib')  # Lib/<name>.py, in this order
CODE_PYTHON = '3.11.7'  # the CPython whose Lib/ made tests/data/code.txt
CODE_MAX = 60           # the longest line kept, in characters: block_size 64 holds every line


def code_text(stdlib=None):
    """The code data set, from this Python's standard library (or the Lib folder stdlib): the
    lines of CODE_MODULES in order, trailing spaces stripped; blank lines, lines over CODE_MAX
    characters, lines with a non-ASCII character and repeats of an earlier line dropped.
    Indentation stays: it is part of the code."""
    stdlib = stdlib or sysconfig.get_paths()['stdlib']
    seen, lines = set(), []
    for name in CODE_MODULES:
        with open(os.path.join(stdlib, f'{name}.py'), encoding='utf-8') as f:
            for line in f:
                line = line.rstrip()
                if line.strip() and len(line) <= CODE_MAX and line.isascii() and line not in seen:
                    seen.add(line)
                    lines.append(line)
    return '\n'.join(lines) + '\n'


def code_data():
    """Writes tests/data/code.txt from this Python's stdlib, or says how it differs."""
    text = code_text()
    crc = lambda t: f'{zlib.crc32(t.encode()):08x}'
    print(f'code.txt from the stdlib of Python {platform.python_version()}: '
          f'{text.count(chr(10))} lines, {len(text.encode())} bytes, CRC-32 {crc(text)}')
    if os.path.exists(CODE):
        with open(CODE, encoding='utf-8', newline='') as f:
            saved = f.read()
        if saved == text:
            return print(f'  identical to {CODE}: nothing to do')
        if platform.python_version() != CODE_PYTHON:
            sys.exit(f'  {CODE} differs (CRC-32 {crc(saved)}): it was made with Python '
                     f'{CODE_PYTHON}, whose stdlib differs; run this with that Python')
        print(f'  {CODE} differs (CRC-32 {crc(saved)}): overwritten')
    os.makedirs(os.path.dirname(CODE), exist_ok=True)
    with open(CODE, 'w', encoding='utf-8', newline='\n') as f:
        f.write(text)
    print(f'  wrote {CODE}')


# --- running microgpt ---------------------------------------------------------
def quiet_main(*argv):
    """main(argv) in this process, from the default settings, printing nowhere. -> (its
    result, its output, wall s, CPU s)."""
    m.reset_settings()
    out = io.StringIO()
    wall, cpu = time.perf_counter(), time.process_time()
    with contextlib.redirect_stdout(out):
        result = m.main(list(argv))
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return result, out.getvalue(), wall, cpu


def cli(folder, *args, expect=0):
    """`python microgpt.py args` as a user runs it, in folder; prints the command. -> (stdout,
    stderr, wall s, CPU s)."""
    print(f'  $ python microgpt.py {" ".join(args)}'.rstrip())
    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    wall = time.perf_counter()
    p = subprocess.run([sys.executable, SCRIPT, *args], cwd=folder, capture_output=True,
                       text=True)
    wall = time.perf_counter() - wall
    now = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = now.ru_utime + now.ru_stime - used.ru_utime - used.ru_stime
    if p.returncode != expect:
        sys.exit(f'exit code {p.returncode}, not {expect}:\n{p.stdout}\n{p.stderr}')
    return p.stdout, p.stderr, wall, cpu


def echo(out, starts):  # the output lines that start with starts (a text or a tuple), indented
    for line in out.splitlines():
        if line.startswith(starts):
            print(f'    {line}')


def split(path):  # the documents of path, split and shuffled as main() does
    m.random.seed(m.seed)
    return m.split_docs(m.read_text(path))


def val_loss_of(out):  # 'val loss 2.3738 (3.425 bits/char) | ...' -> (2.3738, 3.425)
    loss, bits = re.search(r'^val loss ([\d.]+) \(([\d.]+) bits/char\)', out, re.M).groups()
    return float(loss), float(bits)


def printed_samples(out):  # the text of each 'sample  N: ...' line; a cut sample keeps its '…'
    return [s if s != '(empty)' else '' for s in re.findall(r'^sample +\d+: (.*)$', out, re.M)]


def header():
    head = subprocess.run(['git', 'log', '-1', '--format=%h %cs'], cwd=ROOT, text=True,
                          capture_output=True).stdout.strip()
    dirty = subprocess.run(['git', 'status', '--porcelain', 'microgpt.py'], cwd=ROOT, text=True,
                           capture_output=True).stdout.strip()
    with open(SCRIPT, 'rb') as f:
        crc = zlib.crc32(f.read())
    print(f'microgpt.py at commit {head}{" + uncommitted changes" if dirty else ""} (CRC-32 '
          f'{crc:08x}); Python {platform.python_version()}; {os.cpu_count()} cores; '
          f'{time.strftime("%Y-%m-%d %H:%M")}')


# --- 1. subword tokens ----------------------------------------------------------
BPE = {  # data set: (file, block_size, steps of the equal-steps runs, merges to try)
    'names': (NAMES, 16, 1000, (0, 50, 150, 400)),
    'code': (CODE, 64, 500, (0, 50, 150, 400)),
}


def bpe_run(path, block, steps, merges):
    """One run: train, then score every held-out doc (as main()'s final evaluation does, without
    its train-loss half). -> a row of figures, and the FLOPs of each step of a longer run."""
    argv = [f'--input_file={path}', f'--block_size={block}', f'--bpe_merges={merges}',
            f'--num_steps={steps}', '--eval_interval=0', '--eval_docs=0', '--num_samples=5']
    result, out, wall, cpu = quiet_main(*argv)
    train_docs, val_docs = split(path)
    clock, clock_cpu = time.perf_counter(), time.process_time()
    loss = m.evaluate(val_docs)  # what final_losses() scores with eval_docs >= len(val_docs)
    bits = m.bits_per_char(loss, val_docs)
    wall, cpu = wall + time.perf_counter() - clock, cpu + time.process_time() - clock_cpu
    n_tokens = [len(m.encode(doc)) - 2 for doc in train_docs]  # without the two BOS
    # the compute meter of a run of any length: step s trains on train_docs[s % len]
    lengths = [min(len(m.encode(doc)) - 1, m.block_size) for doc in train_docs]
    per_step = [m.train_flops(lengths[s % len(lengths)]) for s in range(20 * steps)]
    assert sum(per_step[:steps]) == result['flops'], 'the FLOPs replay is not the run'
    return {'merges': merges, 'steps': steps, 'vocab': m.vocab_size, 'params': len(m.params),
            'tokens': statistics.mean(n_tokens),
            'chars_per_token': sum(map(len, train_docs)) / sum(n_tokens),
            'loss': loss, 'bits': bits, 'flops': result['flops'], 'epochs': result['epochs'],
            'samples': result['samples'], 'wall': wall, 'cpu': cpu, 'per_step': per_step}


def bpe(name):
    path, block, steps, tries = BPE[name]
    train_docs, val_docs = split(path)
    print(f'1. subword tokens on {os.path.relpath(path, ROOT)}: {len(train_docs)} train docs, '
          f'{len(val_docs)} held out, block_size={block}, n_embd={m.n_embd}, batch_size=1; '
          f'every held-out doc scored; bits/char = loss per token x tokens / characters / ln 2')
    started = time.perf_counter()
    rows = []
    for merges in tries:
        row = bpe_run(path, block, steps, merges)
        if merges == 0:
            budget = row['flops']
            row['same'] = row
        else:  # as many training FLOPs as the character run: the step count that comes closest
            total, best = 0, None
            for k, f in enumerate(row['per_step'], 1):
                total += f
                if best is None or abs(total - budget) < abs(best[1] - budget):
                    best = (k, total)
            row['same'] = bpe_run(path, block, best[0], merges)
        rows.append(row)
        for r in (row, row['same']) if merges else (row,):
            print(f'  --bpe_merges={merges} --num_steps={r["steps"]}: vocab {r["vocab"]}, '
                  f'{r["params"]} params, {r["tokens"]:.2f} tokens a train doc, val loss '
                  f'{r["loss"]:.4f}/token = {r["bits"]:.4f} bits/char, {r["flops"]:.4g} FLOPs '
                  f'({r["flops"] / budget:.4f} x the characters), {r["epochs"]:.3f} epochs; '
                  f'wall {r["wall"]:.0f} s, CPU {r["cpu"]:.0f} s')
            print(f'    samples: {r["samples"]!r}')
    argv = (f'--input_file={os.path.relpath(path, ROOT)} --block_size={block} '
            '--bpe_merges=N --num_steps=S')
    print(f'\n  README table (python microgpt.py {argv}; held-out loss of every held-out doc):\n')
    print(f'| `--bpe_merges` | vocab | params | tokens per train doc | characters per token '
          f'| bits/char, {steps} steps | steps for {budget:.3g} FLOPs | bits/char, equal FLOPs |')
    print('|---|---|---|---|---|---|---|---|')
    for r in rows:
        s = r['same']
        print(f'| {r["merges"]} | {r["vocab"]} | {r["params"]:,} | {r["tokens"]:.2f} | '
              f'{r["chars_per_token"]:.2f} | {r["bits"]:.3f} | {s["steps"]:,} | {s["bits"]:.3f} |')
    print(f'\n  part 1 ({name}): wall {time.perf_counter() - started:.0f} s (busy machine)\n')
    return rows


def reload(merges=150, steps=300):
    """A --bpe_merges model saved and loaded: the same tokens for every doc, the same held-out
    loss and the same samples, bit for bit; as 8-bit too, with the same tokens."""
    print(f'1. reload: --bpe_merges={merges} --num_steps={steps} --save, then --load '
          f'--num_steps=0; then the same as 8-bit')
    started = time.perf_counter()
    train_docs, val_docs = split(NAMES)
    with tempfile.TemporaryDirectory() as d:
        saved, small = os.path.join(d, 'bpe.json'), os.path.join(d, 'bpe8.json')
        a = quiet_main(f'--bpe_merges={merges}', f'--num_steps={steps}', f'--save={saved}',
                       '--eval_interval=0')[0]
        tokens_a, weights_a = [m.encode(doc) for doc in train_docs + val_docs], m.float_weights()
        b = quiet_main(f'--load={saved}', '--num_steps=0')[0]
        tokens_b, weights_b = [m.encode(doc) for doc in train_docs + val_docs], m.float_weights()
        quiet_main(f'--load={saved}', '--num_steps=0', '--int8', f'--save={small}',
                   '--eval_docs=0', '--num_samples=0')
        c = quiet_main(f'--load={small}', '--num_steps=0')[0]
        tokens_c = [m.encode(doc) for doc in train_docs + val_docs]
        print(f'  trained: val loss {a["val_loss"]!r}, {a["val_bits_per_char"]!r} bits/char, '
              f'samples {a["samples"][:5]} ...')
        print(f'  reloaded: val loss {b["val_loss"]!r}, {b["val_bits_per_char"]!r} bits/char')
        print(f'  same tokens for all {len(tokens_a)} docs: {tokens_a == tokens_b}; same weights: '
              f'{weights_a == weights_b}; same val loss: {a["val_loss"] == b["val_loss"]}; same '
              f'train loss: {a["train_loss"] == b["train_loss"]}; same {len(a["samples"])} '
              f'samples: {a["samples"] == b["samples"]}')
        print(f'  8-bit: same tokens: {tokens_a == tokens_c}; val loss {c["val_loss"]:.6f} '
              f'({c["val_loss"] - a["val_loss"]:+.6f}); samples that differ: '
              f'{sum(x != y for x, y in zip(a["samples"], c["samples"]))} of {len(c["samples"])}')
        ok = tokens_a == tokens_b == tokens_c and weights_a == weights_b and (
            a['val_loss'] == b['val_loss'] and a['samples'] == b['samples'])
    print(f'  part 1 (reload): {"bit-identical" if ok else "NOT IDENTICAL"}; wall '
          f'{time.perf_counter() - started:.0f} s (busy machine)\n')
    return ok


# --- 2. 8-bit weights -----------------------------------------------------------
def default_model(d):
    """`python microgpt.py --save=names.json` in folder d (with a copy of input.txt), once."""
    if not os.path.exists(os.path.join(d, 'names.json')):
        shutil.copy(NAMES, d)
        out, _, wall, cpu = cli(d, '--save=names.json')
        echo(out, ('saved', 'val loss', 'compute'))
        print(f'    (wall {wall:.0f} s, CPU {cpu:.0f} s)')
    return os.path.join(d, 'names.json')


def int8(d):
    print('2. 8-bit weights (--int8 with --save), the default model')
    started = time.perf_counter()
    default_model(d)
    out, *_ = cli(d, '--load=names.json', '--num_steps=0', '--int8', '--save=names8.json',
                  '--eval_docs=0', '--num_samples=0')
    echo(out, 'saved')
    with open(os.path.join(d, 'names.json'), encoding='utf-8') as f:
        blob = json.load(f)
    del blob['training']  # the weights alone: what --int8 keeps too
    with open(os.path.join(d, 'weights.json'), 'w', encoding='utf-8') as f:
        f.write(json.dumps(blob))  # as save_model() writes
    print('  weights.json: names.json without its "training" key (Adam m and v, random state)')
    files = {'names.json': 'float64, with the training state (--save)',
             'weights.json': 'float64, weights only',
             'names8.json': '8-bit, one scale per row (--int8 --save)'}
    rows = {}
    for name in files:
        out, _, wall, cpu = cli(d, f'--load={name}', '--num_steps=0', '--num_samples=0')
        echo(out, 'val loss')
        with open(os.path.join(d, name), 'rb') as f:
            raw = f.read()
        rows[name] = (len(raw), len(zlib.compress(raw, 9)), *val_loss_of(out))
    # the same losses unrounded, in this process; and the largest rounding of a weight
    exact, weights, drawn = {}, {}, {}
    for name in ('weights.json', 'names8.json'):
        result = quiet_main(f'--load={os.path.join(d, name)}', '--num_steps=0')[0]
        exact[name], drawn[name] = result['val_loss'], result['samples']
        weights[name] = m.float_weights()  # names8.json's dequantized
    floats = weights['names8.json']
    worst = max(abs(a - b) / (max(map(abs, row_a)) / 127)
                for k, mat in weights['weights.json'].items()
                for row_a, row_b in zip(mat, floats[k]) for a, b in zip(row_a, row_b))
    n = len(m.params)
    print(f'\n  README table ({n} weights; held-out loss of all held-out names):\n')
    print('| file | what it holds | bytes | bytes a weight | zlib -9 bytes | val loss | bits/char |')
    print('|---|---|---|---|---|---|---|')
    for name, (size, packed, loss, bits) in rows.items():
        print(f'| `{name}` | {files[name]} | {size:,} | {size / n:.1f} | {packed:,} | '
              f'{loss:.4f} | {bits:.3f} |')
    big, small = rows['weights.json'][0], rows['names8.json'][0]
    print(f'\n  weights only: float64 / 8-bit = {big / small:.2f}x; with the training state '
          f'{rows["names.json"][0] / small:.2f}x; zlib -9: '
          f'{rows["weights.json"][1] / rows["names8.json"][1]:.2f}x')
    print(f'  val loss unrounded: float64 {exact["weights.json"]:.6f}, 8-bit '
          f'{exact["names8.json"]:.6f} ({exact["names8.json"] - exact["weights.json"]:+.6f}); '
          f'largest rounding of a weight: {worst:.4f} of its row\'s scale (at most 0.5)')
    a, b = drawn['weights.json'], drawn['names8.json']
    print(f'  the {len(a)} default samples (same seed): {sum(x != y for x, y in zip(a, b))} differ; '
          f'the first that does: {next(((x, y) for x, y in zip(a, b) if x != y), None)}')
    print(f'  part 2: wall {time.perf_counter() - started:.0f} s (busy machine)\n')


# --- 3. further training on chosen data -------------------------------------------
CHOSEN_END = 'a'  # the chosen data: the names of input.txt that end in this letter
TUNE_STEPS = 300
TUNE_RATES = (None, 0.003, 0.001)  # None: the default learning_rate, 0.01


def ends(out):  # how many printed samples end in CHOSEN_END: | grep -c '^sample.*a$'
    return len(re.findall(f'^sample.*{CHOSEN_END}$', out, re.M))  # not those cut with '…'


def tune(d):
    print(f'3. further training on chosen data: the names ending in {CHOSEN_END!r}')
    started = time.perf_counter()
    default_model(d)
    names = [line for line in m.read_text(NAMES).split('\n') if line.strip()]
    chosen = [name for name in names if name.endswith(CHOSEN_END)]
    with open(os.path.join(d, 'chosen.txt'), 'w', encoding='utf-8', newline='\n') as f:
        f.write('\n'.join(chosen) + '\n')
    print(f"  $ grep '{CHOSEN_END}$' input.txt > chosen.txt    # {len(chosen)} of {len(names)} "
          f'names ({len(chosen) / len(names):.1%})')
    train_docs, val_docs = split(NAMES)
    c_train, c_val = split(os.path.join(d, 'chosen.txt'))
    print(f'  chosen.txt splits into {len(c_train)} train and {len(c_val)} held out; its held-out '
          f'names are held out in input.txt too: {set(c_val) <= set(val_docs)}; none of them '
          f'trained on: {not set(c_val) & set(train_docs)}')
    v_end = [doc for doc in val_docs if doc.endswith(CHOSEN_END)]
    v_other = [doc for doc in val_docs if not doc.endswith(CHOSEN_END)]

    def measure(model):  # 200 samples and the original held-out loss, as a user gets them
        out, _, wall, cpu = cli(d, f'--load={model}', '--num_steps=0', '--num_samples=200')
        echo(out, ('val loss', 'sample  1:', 'sample  2:', 'sample  3:'))
        echo(out, tuple(line for line in out.splitlines() if ' distinct samples | ' in line))
        samples = printed_samples(out)
        assert len(samples) == 200 and ends(out) == sum(s.endswith(CHOSEN_END) for s in samples)
        quiet_main(f'--load={os.path.join(d, model)}', '--num_steps=0', '--eval_docs=0',
                   '--num_samples=0')
        return {'ends': ends(out), 'val': val_loss_of(out)[0],
                'v_end': m.evaluate(v_end), 'v_other': m.evaluate(v_other),
                'new': sum(s not in set(names) for s in samples)}

    rows = {'before: names.json': measure('names.json')}
    for rate in TUNE_RATES:
        tuned = f'tuned_lr{rate}.json' if rate else 'tuned.json'
        out, _, wall, cpu = cli(d, '--load=names.json', '--input_file=chosen.txt',
                                f'--num_steps={TUNE_STEPS}',
                                *[f'--learning_rate={rate}'] * bool(rate), f'--save={tuned}')
        echo(out, (f'{len(c_train)} train docs', 'check', 'step', 'saved', 'val loss',
                   'compute'))
        print(f'    (wall {wall:.0f} s, CPU {cpu:.0f} s)')
        rows[f'after: {TUNE_STEPS} steps at learning_rate {rate or m.learning_rate}'] = (
            measure(tuned))
    train_end = sum(doc.endswith(CHOSEN_END) for doc in train_docs) / len(train_docs)
    print(f'\n  README table (200 samples at the default temperature 0.5; held-out losses on '
          f'input.txt\'s {len(val_docs)} held-out names: {len(v_end)} end in {CHOSEN_END!r}):\n')
    print(f'| model | samples ending in {CHOSEN_END!r} | new names (not in input.txt) | '
          f'held-out loss, all | ending in {CHOSEN_END!r} | the others |')
    print('|---|---|---|---|---|---|')
    for name, r in rows.items():
        print(f'| {name} | {r["ends"]} of 200 | {r["new"]} of 200 | {r["val"]:.4f} | '
              f'{r["v_end"]:.4f} | {r["v_other"]:.4f} |')
    print(f'\n  for scale: {train_end:.1%} of the training names end in {CHOSEN_END!r}')
    out, *_ = cli(d, '--load=names.json', '--num_steps=0', '--num_samples=200', '--eval_docs=0',
                  '--temperature=1.0')
    print(f'    {ends(out)} of 200 samples end in {CHOSEN_END!r} at temperature 1.0 (before)')

    with open(os.path.join(d, 'chat.txt'), 'w', encoding='utf-8') as f:
        f.write('user: hello\nbot: hi there\n')
    print("  $ printf 'user: hello\\nbot: hi there\\n' > chat.txt")
    _, err, *_ = cli(d, '--load=names.json', '--input_file=chat.txt', f'--num_steps={TUNE_STEPS}',
                     '--save=chat.json', expect=2)
    print(f'    {err.strip()}    (exit code 2; chat.json not made: '
          f'{not os.path.exists(os.path.join(d, "chat.json"))})')
    print(f'  part 3: wall {time.perf_counter() - started:.0f} s (busy machine)\n')


def main(argv):  # parts, in order: int8 tune reload bpe names bpe code, or all, or code_data
    if argv == ['code_data']:
        return code_data()
    parts = ' '.join(argv or ['all']).replace('all', 'int8 tune reload bpe names bpe code')
    parts = parts.replace('bpe names', 'bpe_names').replace('bpe code', 'bpe_code').split()
    if not set(parts) <= {'int8', 'tune', 'reload', 'bpe_names', 'bpe_code'}:
        sys.exit(__doc__)
    header()
    with tempfile.TemporaryDirectory() as d:  # int8 and tune share the default model
        for part in parts:
            {'int8': lambda: int8(d), 'tune': lambda: tune(d), 'reload': reload,
             'bpe_names': lambda: bpe('names'), 'bpe_code': lambda: bpe('code')}[part]()
    header()  # again: the same microgpt.py from start to end?


if __name__ == '__main__':
    try:
        main(sys.argv[1:])
    except KeyboardInterrupt:  # Ctrl-C between two runs (in one, it stops that run's training)
        sys.exit('production.py: interrupted')
