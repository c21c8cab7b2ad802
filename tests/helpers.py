"""What the tests share: paths, tolerances, a tiny model, an independent reference forward pass,
and ways to run microgpt.py as a user would. Every test file imports from here, and nowhere else.

Settings are module globals that stay as they were last set (as in a notebook), so every test
starts from the defaults: its class derives from Case, whose setUp calls reset().
"""
import contextlib, gc, io, math, os, random, shutil, subprocess, sys, tempfile, unittest
from unittest import mock

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(ROOT, 'microgpt.py')
sys.path.insert(0, ROOT)
import microgpt as m  # noqa: E402

FD_STEP = 1e-6   # central differences: (f(x+h) - f(x-h)) / 2h, error ~h^2 plus rounding ~1e-16/h
FD_TOL = 1e-6    # a gradient against central differences, relative to max(1, |grad|)
SAME_TOL = 1e-9  # fused vs atomic, floats vs graph: relative, the same math in another order
EXACT_TOL = 1e-12  # against an independent float computation of the same formula
TINY = ['--n_embd=8', '--n_head=2', '--n_layer=2', '--block_size=8']
WORDS = ['emma', 'olivia', 'ava', 'isabella', 'sophia', 'mia', 'amelia', 'harper', 'evelyn',
         'abigail', 'emily', 'ella', 'elizabeth', 'camila', 'luna', 'sofia', 'avery', 'mila',
         'aria', 'scarlett']
DEFAULTS = m.settings()  # as imported, before any test changed a setting


def reset():
    """Every setting back to its default, and character tokens: what a fresh
    import has (settings through microgpt's own reset_settings(), checked against DEFAULTS)."""
    m.reset_settings()
    assert m.settings() == DEFAULTS
    m.merges = {}


class Case(unittest.TestCase):
    def setUp(self):
        reset()


def slurp(path, mode='rb'):
    with open(path, mode) as f:
        return f.read()


def report(name, diff, tol):
    """Print a check's max difference beside its named tolerance; returns the difference."""
    print(f'  {name}: max diff {diff:.2e} (tolerance {tol:.2g})')
    return diff


def tiny_model(*argv, vocab='abcdefghijklmnopqrstuvwxyz', seed=0):
    """Defaults, then the TINY shape and argv; a vocabulary of vocab's characters and fresh
    weights drawn with seed."""
    reset()
    m.configure(TINY + list(argv))
    random.seed(seed)
    m.use_vocab(sorted(set(vocab)))
    m.use_merges([])
    m.use_weights()


def doc_loss(tokens, sd=None):
    losses = m.doc_losses(tokens, sd)
    return sum(losses) / len(losses)


def graph_nodes(*roots):
    """The nodes made from others that the roots were computed from, the roots among them: a
    search of the graph written here (not microgpt's), by _children alone. -> a list, once each."""
    seen, stack = {}, list(roots)
    while stack:
        v = stack.pop()
        if v._children and id(v) not in seen:
            seen[id(v)] = v
            stack.extend(v._children)
    return list(seen.values())


def live_values():
    """How many microgpt Values the garbage collector can see alive (after a collection)."""
    gc.collect()
    return sum(1 for o in gc.get_objects() if isinstance(o, m.part1_Value))


def grads(tokens, fused):
    """Loss, logits and the gradient of every parameter for one document, built fused or not."""
    m.fused = fused
    for p in m.params:
        p.grad = 0.0
    keys, values = m.empty_cache()
    logits = [[l.data for l in m.gpt(t, pos, keys, values)]
              for pos, t in enumerate(tokens[:m.block_size])]
    loss = doc_loss(tokens)
    loss.backward()
    return loss.data, logits, [p.grad for p in m.params]


def all_logits(doc):
    """The logits at every position of a document, in floats, through gpt() and its cache."""
    keys, values = m.empty_cache()
    sd = m.float_weights()
    return [m.gpt(t, pos, keys, values, sd) for pos, t in enumerate(m.encode(doc)[:-1])]


def reference_logits(sd, tokens):
    """An independent forward pass over a whole sequence at once, in plain floats, with an
    explicit causal mask instead of a KV cache: the same GPT written the textbook way, sharing no
    code with microgpt.gpt. Reads only the shape settings."""
    d = m.n_embd // m.n_head

    def matvec(W, x):
        return [sum(w * v for w, v in zip(row, x)) for row in W]

    def norm(x):
        return [v / math.sqrt(sum(u * u for u in x) / len(x) + 1e-5) for v in x]

    xs = [norm([a + b for a, b in zip(sd['wte'][tok], sd['wpe'][t])])
          for t, tok in enumerate(tokens)]
    for l in range(m.n_layer):
        Q, K, V = ([matvec(sd[f'layer{l}.attn_w{c}'], norm(x)) for x in xs] for c in 'qkv')
        attended = []
        for t in range(len(xs)):
            row = []
            for h in range(0, m.n_embd, d):
                scores = [sum(a * b for a, b in zip(Q[t][h:h + d], K[s][h:h + d])) / math.sqrt(d)
                          if s <= t else -math.inf for s in range(len(xs))]
                e = [math.exp(s - max(scores)) for s in scores]  # exp(-inf) = 0: the mask
                row += [sum(e[s] / sum(e) * V[s][h + j] for s in range(len(xs))) for j in range(d)]
            attended.append(row)
        xs = [[a + b for a, b in zip(matvec(sd[f'layer{l}.attn_wo'], o), x)]
              for o, x in zip(attended, xs)]
        mlp = [matvec(sd[f'layer{l}.mlp_fc2'],
                      [max(0.0, u) for u in matvec(sd[f'layer{l}.mlp_fc1'], norm(x))]) for x in xs]
        xs = [[a + b for a, b in zip(y, x)] for y, x in zip(mlp, xs)]
    return [matvec(sd['lm_head'], x) for x in xs]


def window_start(t):
    """Where prediction t of a document (of token t + 1) starts reading, as tests/README.md says:
    the first block_size predictions read from the start, 0; each later one from the last
    multiple of block_size - block_size // 2 that leaves it block_size // 2 tokens of past."""
    half = m.block_size // 2
    s = 0 if t < m.block_size else (t - half) // (m.block_size - half) * (m.block_size - half)
    assert t - s < m.block_size and (s == 0 or t - s >= half)  # it fits; past enough
    return s


def reference_losses(sd, tokens):
    """-log softmax(reference logits)[next] at every prediction of a document, prediction t
    reading tokens s..t at positions 0..t - s, s = window_start(t)."""
    losses, windows = [], {}
    for t in range(len(tokens) - 1):
        s = window_start(t)
        if s not in windows:  # the window's logits: causal, so each reads only up to its own t
            windows[s] = reference_logits(sd, tokens[s:s + m.block_size])
        logits = windows[s][t - s]
        losses.append(math.log(sum(math.exp(l) for l in logits)) - logits[tokens[t + 1]])
    return losses


def quiet(f, *args, **kwargs):
    """Call f with stdout captured; return (result, output)."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        result = f(*args, **kwargs)
    return result, out.getvalue()


def adam_spy(record):
    """A stand-in for adam_step that records (lr, gradients, gc on?) and then steps."""
    real = m.adam_step

    def spy(step, mm, vv, lr):
        record.append((lr, [p.grad for p in m.params], gc.isenabled()))
        real(step, mm, vv, lr)
    return mock.patch.object(m, 'adam_step', spy)


def run(*args, cwd=ROOT, timeout=300, env=None):
    """Run microgpt.py as a user would: a new interpreter. Returns (exit code, stdout, stderr)."""
    r = subprocess.run([sys.executable, SCRIPT, *args], cwd=cwd, capture_output=True, text=True,
                       timeout=timeout, env=env)
    return r.returncode, r.stdout, r.stderr


def run_python(code, *args, cwd=ROOT, stdin=None, timeout=300, env=None):
    """Run a Python program (as -c) in a new interpreter. Returns (exit code, stdout, stderr)."""
    r = subprocess.run([sys.executable, '-c', code, *args], cwd=cwd, input=stdin,
                       capture_output=True, text=True, timeout=timeout, env=env)
    return r.returncode, r.stdout, r.stderr


class InTempDir(Case):
    """A temporary folder with a file of names (self.file) and a path for a model (self.model);
    removed after each test."""

    def setUp(self):
        super().setUp()
        self.dir = tempfile.TemporaryDirectory()
        self.d = self.dir.name
        self.file = os.path.join(self.d, 'words.txt')
        with open(self.file, 'w') as f:
            f.write('\n'.join(WORDS * 3))
        self.model = os.path.join(self.d, 'model.json')

    def tearDown(self):
        self.dir.cleanup()

    def write(self, name, content):
        """A file in the temporary folder: text (UTF-8) or bytes. Returns its path."""
        path = os.path.join(self.d, name)
        with open(path, 'wb') as f:
            f.write(content if isinstance(content, bytes) else content.encode('utf-8'))
        return path


def class_folder(cls, lines=WORDS * 3):
    """A folder for a test class, as cls.class_dir, removed after the class (also if its
    setUpClass fails), with words.txt: the lines. -> the path of words.txt."""
    cls.class_dir = tempfile.mkdtemp()
    cls.addClassCleanup(shutil.rmtree, cls.class_dir)
    words = os.path.join(cls.class_dir, 'words.txt')
    with open(words, 'w') as f:
        f.write('\n'.join(lines))
    return words


def command_line(*argv):
    """microgpt's command_line(argv), what `python microgpt.py` runs, in this process: the exit
    code (0, or SystemExit's), stdout and stderr."""
    out, err, code = io.StringIO(), io.StringIO(), 0
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            m.command_line(list(argv))
        except SystemExit as e:
            code = e.code
    return code, out.getvalue(), err.getvalue()


def run_interrupted(*args, cwd=ROOT, after='step ', times=1, timeout=120, script=SCRIPT):
    """Run microgpt.py (or script) as a user would, and press Ctrl-C (SIGINT to it) as soon as
    the times-th line of its output that starts with after is read: an event, never a delay.
    -> (exit code, stdout, stderr); it never outlives this."""
    import signal, threading
    p = subprocess.Popen([sys.executable, script, *args], cwd=cwd, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True,
                         preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    # SIGINT as a terminal gives it: a suite started in the background by a shell (`... &`)
    # ignores SIGINT, its children inherit that, and Python then makes no KeyboardInterrupt
    timer = threading.Timer(timeout, p.kill)  # a hang becomes a failure, not a stuck suite
    timer.start()
    try:
        lines = []
        for line in p.stdout:
            lines.append(line)
            if line.startswith(after):
                times -= 1
                if not times:
                    p.send_signal(signal.SIGINT)
                    break
        out = ''.join(lines) + p.stdout.read()
        err = p.stderr.read()
        return p.wait(), out, err
    finally:
        timer.cancel()
        if p.poll() is None:
            p.kill()
        p.wait()
        p.stdout.close()
        p.stderr.close()


def weights_diff(a, b):
    """The largest |x - y| over two nested dicts and lists of numbers (weights, Adam's m and
    v); inf if their shapes differ."""
    if isinstance(a, dict) or isinstance(b, dict):
        if not (isinstance(a, dict) and isinstance(b, dict)) or set(a) != set(b):
            return math.inf
        return max((weights_diff(a[k], b[k]) for k in a), default=0.0)
    if isinstance(a, list) or isinstance(b, list):
        if not (isinstance(a, list) and isinstance(b, list)) or len(a) != len(b):
            return math.inf
        return max((weights_diff(x, y) for x, y in zip(a, b)), default=0.0)
    return abs(a - b)


def training_flops(*argv):
    """The meter's training FLOPs of `python microgpt.py ARGV` (on input.txt, or the
    --input_file it gives, from the repository's folder), counted without training: the
    documents a step reads are fixed, and so are the windows of long ones, drawn here from the
    same random numbers as training draws them (setup() seeds them; nothing else draws first)."""
    reset()
    flag = '--input_file='
    given = [a for a in argv if a.startswith(flag)]
    argv = [a for a in argv if not a.startswith(flag)]
    try:
        text = flag + os.path.join(ROOT, given[0][len(flag):] if given else 'input.txt')
        train_docs = quiet(m.setup, [text, *argv])[0]['train_docs']
        docs = (train_docs[i % len(train_docs)] for i in range(m.num_steps * m.batch_size))
        return sum(m.train_flops(len(m.window(m.encode(doc))) - 1) for doc in docs)
    finally:
        reset()
