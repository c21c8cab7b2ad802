"""Runs the commands that README.md shows, as a learner would, and prints their real output, block by
block, for pasting into README.md; tests/test_6_readme.py checks the README against the program.

    python tests/readme_outputs.py [BLOCK ...]   # LAYOUT OVERFIT QUICKSTART EDIT EXPLAIN ...

Each runs in a temporary folder with a copy of microgpt.py and input.txt. Standard library only.
"""
import os, shutil, signal, subprocess, sys, tempfile, time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EDIT_OLD = 'return log(sum(exp(logit - top) for logit in logits)) + top - logits[target]'
EDIT_NEW = EDIT_OLD + ' + 0.01 * sum(logit * logit for logit in logits)'

# The troubleshooting table: (the flags after `python microgpt.py`, what to do). The message is
# whatever the program prints. names.json is a saved default-shape model; chat.txt has ' :'.
TROUBLE = [
    ('--n_embdd=32', 'A typo, or a flag without `--`: `--help` lists them all.'),
    ('--n_embd 32', 'Flags are written `--name=value`.'),
    ('--n_embd=8.9', 'Give a value of the setting\'s kind.'),
    ('--n_embd=10', 'Each head reads `n_embd // n_head` numbers: the division must be exact.'),
    ('--temperature=0', 'For nearly greedy samples use a small temperature, such as 0.1.'),
    ('--prompt=Q', 'A model reads only the characters it was made with: the names are lowercase.'),
    ('--input_file=my.txt', 'Run from the folder that has the file, or give its path.'),
    ('--save=input.txt', '`--save` never writes over a file that is not a model.'),
    ('--load=names.json --n_embd=32', 'A loaded model brings its own shape: leave such flags out.'),
    ('--load=names.json --input_file=chat.txt',
     'A model keeps its characters: train a new one on the new text (see Further training).'),
    ('--load=input.txt', 'Give a file that `--save` wrote; the end of the line says what is wrong.'),
    ('--resume=names8.json', 'An 8-bit model keeps no training state: `--load` it.'),
]


def sh(args, cwd, timeout=900):
    r = subprocess.run([sys.executable, 'microgpt.py', *args], cwd=cwd, capture_output=True,
                       text=True, timeout=timeout)
    return r.returncode, r.stdout, r.stderr


def folder():
    d = tempfile.mkdtemp()
    for name in ('microgpt.py', 'input.txt'):
        shutil.copy(os.path.join(ROOT, name), d)
    with open(os.path.join(d, 'chat.txt'), 'w') as f:
        f.write('me: hi\nyou: hello\n' * 20)
    return d


def block(command, out):
    return '```\n$ ' + command + '\n' + out.rstrip('\n') + '\n```'


def quickstart(d):
    code, out, err = sh([], d)
    return block('python microgpt.py', out + err)


def part1(d):
    """The file cut at the Part 2 ruler, with main() appended: Part 1 alone (minutes)."""
    with open(os.path.join(d, 'microgpt.py'), encoding='utf-8') as f:
        text = f.read()
    with open(os.path.join(d, 'part1.py'), 'w', encoding='utf-8') as f:
        f.write(text[:text.index('# ' + '=' * 16 + ' Part 2')] + 'main()\n')
    r = subprocess.run([sys.executable, 'part1.py'], cwd=d, capture_output=True, text=True)
    lines = r.stdout.splitlines()
    return block("sed '/^# =* Part 2/,$d' microgpt.py > part1.py && echo 'main()' >> part1.py\n"
                 '$ python part1.py', '\n'.join(lines[:1] + ['...'] + lines[9:14] + ['...']))


def edit(d):
    path = os.path.join(d, 'edited.py')
    with open(os.path.join(d, 'microgpt.py')) as f:
        text = f.read()
    assert text.count(EDIT_OLD) == 1
    with open(path, 'w') as f:
        f.write(text.replace(EDIT_OLD, EDIT_NEW))
    r = subprocess.run([sys.executable, 'edited.py'], cwd=d, capture_output=True, text=True)
    return block('python microgpt.py', r.stdout + r.stderr)


def explain(d):
    sh(['--save=names.json', '--num_samples=0', '--eval_docs=0'], d)
    args = ['--load=names.json', '--num_steps=0', '--num_samples=0', '--eval_docs=0',
            '--explain=emma']
    code, out, err = sh(args, d)
    return block('python microgpt.py --save=names.json\n$ python microgpt.py ' + ' '.join(args),
                 out + err)


NOTEBOOK_CELLS = [
    "results = main(['--num_steps=300'])",
    "print(results['val_loss'], results['samples'][:3])",
    "n_embd = 32\ntry:\n    sample()\nexcept MicrogptError as e:\n    print(e)",
    "reset_settings()\nprint(n_embd, sample())",
]


def notebook(d):
    """The file pasted into a cell (its last line runs main(): skipped here, as if interrupted),
    then later cells, each run as a notebook does, printing what the cell prints."""
    code = ("import io, contextlib\nsrc = open('microgpt.py').read()\n"
            "g = {'__name__': 'notebook'}\nexec(compile(src, 'cell-1', 'exec'), g)\n"
            "cells = %r\nfor cell in cells:\n"
            "    n = str(cells.index(cell) + 2)\n"
            "    print('In [' + n + ']: ' + cell.replace(chr(10), chr(10) + '   ...: '))\n"
            "    out = io.StringIO()\n"
            "    with contextlib.redirect_stdout(out):\n"
            "        exec(cell, g)\n"
            "    lines = out.getvalue().splitlines()\n"
            "    print('\\n'.join(l for l in lines if not l.startswith(('step ', ' '))))\n"
            % (NOTEBOOK_CELLS,))
    r = subprocess.run([sys.executable, '-c', code], cwd=d, capture_output=True, text=True)
    return '```\n' + (r.stdout + r.stderr).rstrip('\n') + '\n```'


def resume(d):
    p = subprocess.Popen([sys.executable, 'microgpt.py', '--save=m.json', '--num_samples=3',
                          '--eval_docs=200'], cwd=d, stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, text=True)
    lines = []
    for line in p.stdout:
        lines.append(line)
        if line.startswith('step   400/'):
            p.send_signal(signal.SIGINT)
    p.wait()
    first = ''.join(lines)
    code, out, err = sh(['--resume=m.json', '--num_samples=3', '--eval_docs=200'], d)
    stopped = block('python microgpt.py --save=m.json --num_samples=3 --eval_docs=200   '
                    '(Ctrl-C after a few seconds)', first)
    resumed = block('python microgpt.py --resume=m.json --num_samples=3 --eval_docs=200', out + err)
    return stopped[:-len('\n```')] + '\n' + resumed[len('```\n'):]  # one block: both commands


def trouble(d):
    if not os.path.exists(os.path.join(d, 'names.json')):  # any model of the default shape
        sh(['--num_steps=0', '--save=names.json', '--eval_docs=0', '--num_samples=0'], d)
    sh(['--load=names.json', '--num_steps=0', '--int8', '--save=names8.json', '--eval_docs=0',
        '--num_samples=0'], d)
    rows = ['| `python microgpt.py ...` | prints | what to do |', '|---|---|---|']
    for args, todo in TROUBLE:
        code, out, err = sh(args.split(), d)
        message = err.strip()
        assert code == 2 and message.startswith('microgpt: ') and '\n' not in message, (args, err)
        rows.append(f'| `{args}` | `{message}` | {todo} |')
    return '\n'.join(rows)


def overfit(d):
    with open(os.path.join(d, 'input.txt')) as f, open(os.path.join(d, 'small.txt'), 'w') as g:
        g.write(''.join(f.readlines()[:60]))
    args = ['--input_file=small.txt', '--n_embd=24', '--num_steps=1000', '--eval_iters=20',
            '--num_samples=5']
    code, out, err = sh(args, d)
    return block('head -n 60 input.txt > small.txt\n$ python microgpt.py ' + ' '.join(args),
                 out + err)


SHAKESPEARE = ['--input_file=tests/data/shakespeare.txt', '--paragraphs', '--block_size=64',
               '--batch_size=2', '--num_steps=1200', '--learning_rate=0.02', '--eval_interval=300',
               '--eval_iters=30', '--eval_docs=150', '--num_samples=8']


def shakespeare(d):
    """Running text (issue 29): about 7 minutes of one core; tests/README.md has the figures."""
    os.makedirs(os.path.join(d, 'tests', 'data'))
    shutil.copy(os.path.join(ROOT, 'tests', 'data', 'shakespeare.txt'),
                os.path.join(d, 'tests', 'data'))
    code, out, err = sh(SHAKESPEARE, d, timeout=3600)
    return block('python microgpt.py ' + ' '.join(SHAKESPEARE), out + err)


def layout(d):
    """The parts of microgpt.py and their lines, from its rulers."""
    with open(os.path.join(d, 'microgpt.py'), encoding='utf-8') as f:
        lines = f.read().split('\n')[:-1]
    rulers = [i for i, line in enumerate(lines) if line.startswith('# ====')]
    rows = ['| lines | part |', '|---|---|', f'| 1-{rulers[0]} | what it is; the imports |']
    for a, b in zip(rulers, rulers[1:] + [len(lines)]):
        title = lines[a].strip('# =').split(': ', 1)[-1] if 'Part' in lines[a] else 'the guard rails'
        part = lines[a].strip('# =').split(':')[0]
        name = f'{part}: {title}' if 'Part' in part else title
        rows.append(f'| {a + 1}-{b} | {name} |')
    return '\n'.join(rows)


def recipe(d):
    """Further training on chosen data, as the README shows it: needs names.json in d (the default
    run, saved); the counts of 200 samples that end in 'a', before and after. Each command runs
    as shown plus --eval_docs=0 (and the training --eval_interval=0 --num_samples=0): what is
    counted is the samples, and the model saved, which no evaluation changes (evaluate() draws no
    random number: test_1's Evaluation; the periodic one changes no weight: test_4's
    HeldOutDuringTraining), and the evaluations were 10 s of the 13."""
    with open(os.path.join(d, 'input.txt')) as f, open(os.path.join(d, 'chosen.txt'), 'w') as g:
        g.write(''.join(line for line in f if line.rstrip('\n').endswith('a')))

    def ending_in_a(model):
        code, out, err = sh([f'--load={model}', '--num_steps=0', '--num_samples=200',
                             '--eval_docs=0'], d)
        assert code == 0, err
        return str(len([l for l in out.splitlines() if l.startswith('sample') and l.endswith('a')]))
    before = ending_in_a('names.json')
    code, out, err = sh(['--load=names.json', '--input_file=chosen.txt', '--num_steps=300',
                         '--save=tuned.json', '--eval_docs=0', '--eval_interval=0',
                         '--num_samples=0'], d)
    assert code == 0 and 'saved the model to tuned.json at step 300 of 300' in out, err
    return '\n'.join([
        '```', "$ grep 'a$' input.txt > chosen.txt       # 6,640 of the 32,033 names",
        '$ python microgpt.py --save=names.json',
        "$ python microgpt.py --load=names.json --num_steps=0 --num_samples=200 | grep -c '^sample.*a$'",
        before,
        '$ python microgpt.py --load=names.json --input_file=chosen.txt --num_steps=300 --save=tuned.json',
        "$ python microgpt.py --load=tuned.json --num_steps=0 --num_samples=200 | grep -c '^sample.*a$'",
        ending_in_a('tuned.json'), '```'])


BLOCKS = {'LAYOUT': layout, 'PART1': part1, 'OVERFIT': overfit, 'QUICKSTART': quickstart, 'EDIT': edit, 'EXPLAIN': explain, 'NOTEBOOK': notebook,
          'RESUME': resume, 'TROUBLE': trouble, 'SHAKESPEARE': shakespeare}

if __name__ == '__main__':
    for name in sys.argv[1:] or BLOCKS:
        d = folder()
        try:
            t = time.time()
            print(f'<!-- {name} -->\n{BLOCKS[name](d)}\n<!-- {name}: {time.time() - t:.0f} s -->',
                  flush=True)
        finally:
            shutil.rmtree(d)
