"""Tests for microgpt.py: every check is against something that does not share the code under test:
central finite differences, a closed form, published numbers, or a second computation path.

    python -m unittest discover -s tests -v

Each oracle check prints its max difference next to its named tolerance.
"""
import contextlib, gc, io, json, math, multiprocessing, os, random, re, subprocess, sys, tempfile, unittest
from unittest import mock

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
import microgpt as m  # noqa: E402

FD_STEP = 1e-6        # central differences: (f(x+h) - f(x-h)) / 2h, error ~h^2 plus rounding ~1e-16/h
FD_TOL = 1e-6         # tolerance for a gradient against central differences, relative to max(1, |grad|)
SAME_TOL = 1e-9       # fused vs atomic, float path vs graph path: relative, the same math in another order
TINY = ['--n_embd=8', '--n_head=2', '--n_layer=2', '--block_size=8']
WORDS = ['emma', 'olivia', 'ava', 'isabella', 'sophia', 'mia', 'amelia', 'harper', 'evelyn', 'abigail',
         'emily', 'ella', 'elizabeth', 'camila', 'luna', 'sofia', 'avery', 'mila', 'aria', 'scarlett']


def slurp(path, mode='rb'):
    with open(path, mode) as f:
        return f.read()


def report(name, diff, tol):
    print(f'  {name}: max diff {diff:.2e} (tolerance {tol:.0e})')
    return diff


def tiny_model(*argv, vocab='abcdefghijklmnopqrstuvwxyz', seed=0):
    m.configure(TINY + list(argv))
    random.seed(seed)
    m.use_model(sorted(set(vocab)))


def empty_cache():
    """Fresh keys and values for gpt(): per layer, a list that grows by one vector per position."""
    return [[] for _ in range(m.n_layer)], [[] for _ in range(m.n_layer)]


def doc_loss(tokens, sd=None):
    losses = m.doc_losses(tokens, sd)
    return sum(losses) / len(losses)


def grads(tokens, fused):
    """Loss, logits and the gradient of every parameter for one document, built fused or atomic."""
    m.fused = fused
    for p in m.params: p.grad = 0.0
    keys, values = empty_cache()
    logits = [[l.data for l in m.gpt(t, pos, keys, values)] for pos, t in enumerate(tokens[:m.block_size])]
    loss = doc_loss(tokens)
    loss.backward()
    return loss.data, logits, [p.grad for p in m.params]


def run(*args, cwd=ROOT, timeout=300):
    """Run microgpt.py as a user would; return (exit code, stdout, stderr)."""
    r = subprocess.run([sys.executable, os.path.join(ROOT, 'microgpt.py'), *args], cwd=cwd,
                       capture_output=True, text=True, timeout=timeout)
    return r.returncode, r.stdout, r.stderr


class ValueOps(unittest.TestCase):
    """1. Every op: forward value and gradient against central finite differences at random points."""

    def check(self, name, f, points, n_args, show=True):
        """f takes n_args numbers (Values or floats) and returns one; compare d f / d arg_i."""
        worst_value = worst_grad = 0.0
        for point in points:
            xs = [m.Value(x) for x in point[:n_args]]
            out = f(*xs)
            out.backward()
            worst_value = max(worst_value, abs(out.data - f(*point[:n_args])))
            for i in range(n_args):
                up, down = list(point[:n_args]), list(point[:n_args])
                up[i] += FD_STEP; down[i] -= FD_STEP
                numeric = (f(*up) - f(*down)) / (2 * FD_STEP)
                worst_grad = max(worst_grad, abs(xs[i].grad - numeric) / max(1.0, abs(numeric)))
        self.assertLessEqual(worst_value, 1e-12, name)
        self.assertLessEqual(worst_grad, FD_TOL, name)
        if show:
            report(f'{name} value vs float math', worst_value, 1e-12)
            report(f'{name} grad vs finite differences', worst_grad, FD_TOL)
        return worst_value, worst_grad

    def points(self, lo=-3.0, hi=3.0, n=50, away_from_zero=0.0):
        rng = random.Random(1234)
        pts = []
        while len(pts) < n:
            p = [rng.uniform(lo, hi) for _ in range(3)]
            if all(abs(x) > away_from_zero for x in p): pts.append(p)
        return pts

    def test_binary_ops_and_reflected_forms(self):
        m.fused = True
        ops = {'a+b': lambda a, b: a + b, 'a-b': lambda a, b: a - b, 'a*b': lambda a, b: a * b,
               'a/b': lambda a, b: a / b}
        for name, f in ops.items():
            self.check(name, f, self.points(away_from_zero=0.3), 2)
        consts = {'a+2': lambda a: a + 2, '2+a': lambda a: 2 + a, 'a-2': lambda a: a - 2, '2-a': lambda a: 2 - a,
                  'a*2': lambda a: a * 2, '2*a': lambda a: 2 * a, 'a/2': lambda a: a / 2, '2/a': lambda a: 2 / a,
                  '-a': lambda a: -a}
        for name, f in consts.items():
            self.check(name, f, self.points(away_from_zero=0.3), 1)

    def test_unary_ops(self):
        m.fused = True
        self.check('exp', lambda a: a.exp() if isinstance(a, m.Value) else math.exp(a), self.points(), 1)
        self.check('log', lambda a: a.log() if isinstance(a, m.Value) else math.log(a), self.points(0.1, 5), 1)
        self.check('relu', lambda a: a.relu() if isinstance(a, m.Value) else max(0.0, a),
                   self.points(away_from_zero=0.01), 1)
        for k in (2, 3, -1, 0.5, -0.5, -1.5):
            self.check(f'a**{k}', lambda a, k=k: a ** k, self.points(0.2, 4), 1)

    def test_fused_nodes_and_their_atomic_forms(self):
        rng = random.Random(7)
        for fused in (True, False):
            m.fused = fused
            worst = {}
            for n in (1, 2, 5, 17):
                pts = [[rng.uniform(-2, 2) for _ in range(2 * n)] for _ in range(10)]
                checks = [('dot', lambda *x: m.dot(list(x[:n]), list(x[n:])), 2 * n)]
                for i in range(n):  # every softmax output, and the loss for every target
                    checks.append(('softmax', lambda *x, i=i: m.softmax(list(x))[i], n))
                    checks.append(('cross_entropy', lambda *x, i=i: m.cross_entropy(list(x), i), n))
                for name, f, n_args in checks:
                    diffs = self.check(f'{name} n={n}', f, pts, n_args, show=False)
                    worst[name] = [max(a, b) for a, b in zip(worst.get(name, (0, 0)), diffs)]
            for name, (value, grad) in worst.items():
                report(f'{name} (n = 1, 2, 5, 17; fused={fused}) value vs float math', value, 1e-12)
                report(f'{name} (n = 1, 2, 5, 17; fused={fused}) grad vs finite differences', grad, FD_TOL)

    def test_fused_rmsnorm_and_linear(self):
        rng = random.Random(8)
        for fused in (True, False):
            m.fused = fused
            pts = [[rng.uniform(-2, 2) for _ in range(4 + 12)] for _ in range(10)]
            for i in range(3):
                self.check(f'rmsnorm[{i}] fused={fused}', lambda *x, i=i: m.rmsnorm(list(x))[i], pts, 4)
                self.check(f'linear[{i}] fused={fused}',
                           lambda *x, i=i: m.linear(list(x[:4]), [list(x[4 + 4 * r:8 + 4 * r]) for r in range(3)])[i],
                           pts, 16)

    def test_sharing_accumulates_gradients(self):
        """A node that feeds several others, a Value used twice in one op, constants on both sides."""
        for fused in (True, False):
            m.fused = fused
            f = lambda a, b: (a * b + a * a + 3 - a / b + a.relu() * 2) if isinstance(a, m.Value) else (
                a * b + a * a + 3 - a / b + max(0.0, a) * 2)
            self.check(f'shared a,b fused={fused}', f, self.points(away_from_zero=0.3), 2)
            g = lambda a: m.dot([a, a, a], [a, 2.0 * a, a * a]) if isinstance(a, m.Value) else a * a + 2 * a * a + a ** 3
            self.check(f'dot of one Value with itself fused={fused}', g, self.points(), 1)
            x = m.Value(1.5)
            (x * x).backward()
            self.assertEqual(x.grad, 3.0)  # d(x^2)/dx = 2x


class Backward(unittest.TestCase):
    """2. backward(): no recursion limit, and the numbers of a worked example."""

    def test_chain_100000_deep(self):
        x = m.Value(0.5)
        y = x
        for _ in range(100_000):
            y = y * 1.00001 + x  # y_k = c*y_(k-1) + x, so dy/dx = sum of c^j for j = 0..100000
        y.backward()
        c = 1.00001
        expected = (c ** 100_001 - 1) / (c - 1)  # closed form of the geometric sum
        report('100,000-deep chain, dy/dx vs closed form (relative)', abs(x.grad - expected) / expected, 1e-9)
        self.assertAlmostEqual(x.grad / expected, 1.0, delta=1e-9)

    def test_micrograd_worked_example(self):
        """The expression from micrograd's README, whose printed results are 24.7041, 138.8338, 645.5773."""
        a, b = m.Value(-4.0), m.Value(2.0)
        c = a + b
        d = a * b + b ** 3
        c += c + 1
        c += 1 + c + (-a)
        d += d * 2 + (b + a).relu()
        d += 3 * d + (b - a).relu()
        e = c - d
        f = e ** 2
        g = f / 2.0
        g += 10.0 / f
        g.backward()
        self.assertEqual(f'{g.data:.4f}', '24.7041')
        self.assertEqual(f'{a.grad:.4f}', '138.8338')
        self.assertEqual(f'{b.grad:.4f}', '645.5773')

    def test_by_hand(self):
        """f = x*y + exp(x) at x=2, y=3: df/dx = y + e^x, df/dy = x."""
        x, y = m.Value(2.0), m.Value(3.0)
        f = x * y + x.exp()
        f.backward()
        self.assertAlmostEqual(f.data, 6 + math.exp(2), places=12)
        self.assertAlmostEqual(x.grad, 3 + math.exp(2), places=12)
        self.assertAlmostEqual(y.grad, 2.0, places=12)


class ModelGradients(unittest.TestCase):
    """3 and 4. The model's gradients against finite differences, and fused against atomic."""

    def test_every_matrix_against_finite_differences(self):
        tiny_model()
        tokens = m.encode('abcdefghij')  # longer than block_size=8: the cut is exercised too
        rng = random.Random(3)
        for fused in (True, False):
            _, _, analytic = grads(tokens, fused)
            worst = 0.0
            index = {id(p): i for i, p in enumerate(m.params)}
            for name, mat in m.state_dict.items():
                picks = [rng.choice(rng.choice(mat)) for _ in range(4)]
                if name == 'wte':  # make sure a row the document uses is among them
                    picks.append(mat[tokens[1]][0])
                for p in picks:
                    old, h = p.data, 1e-5
                    p.data = old + h; up = doc_loss(tokens, m.float_weights())
                    p.data = old - h; down = doc_loss(tokens, m.float_weights())
                    p.data = old
                    numeric = (up - down) / (2 * h)
                    worst = max(worst, abs(analytic[index[id(p)]] - numeric) / max(1.0, abs(numeric)))
            report(f'model grad vs finite differences, fused={fused}', worst, FD_TOL)
            self.assertLessEqual(worst, FD_TOL)

    def test_fused_equals_atomic(self):
        tiny_model()
        for doc in ('emma', 'abcdefghijklmnop'):
            tokens = m.encode(doc)
            lf, logits_f, gf = grads(tokens, True)
            la, logits_a, ga = grads(tokens, False)
            scale = max(abs(g) for g in gf)
            d_loss = abs(lf - la) / abs(la)
            d_logits = max(abs(x - y) / max(abs(x), abs(y), 1e-300) for a, b in zip(logits_f, logits_a) for x, y in zip(a, b))
            d_grad = max(abs(x - y) / max(abs(x), abs(y), 1e-6 * scale) for x, y in zip(gf, ga))
            report(f'fused vs atomic {doc!r}: loss', d_loss, SAME_TOL)
            report(f'fused vs atomic {doc!r}: logits', d_logits, SAME_TOL)
            report(f'fused vs atomic {doc!r}: {len(gf)} gradients', d_grad, SAME_TOL)
            self.assertLessEqual(max(d_loss, d_logits, d_grad), SAME_TOL)
            self.assertGreater(sum(g != 0 for g in gf), len(gf) // 2)  # the gradients are not trivially zero


def all_logits(doc):
    """The logits at every position of a document, in floats."""
    keys, values = empty_cache()
    return [m.gpt(t, pos, keys, values, m.float_weights()) for pos, t in enumerate(m.encode(doc)[:-1])]


def reference_logits(sd, tokens):
    """An independent forward pass over the whole sequence at once, in plain floats, with an explicit causal
    mask instead of a KV cache: the same GPT written the textbook way, sharing no code with microgpt.gpt."""
    d = m.n_embd // m.n_head
    matvec = lambda W, x: [sum(w * v for w, v in zip(row, x)) for row in W]
    norm = lambda x: [v / math.sqrt(sum(u * u for u in x) / len(x) + 1e-5) for v in x]
    xs = [norm([a + b for a, b in zip(sd['wte'][tok], sd['wpe'][t])]) for t, tok in enumerate(tokens)]
    for l in range(m.n_layer):
        Q, K, V = ([matvec(sd[f'layer{l}.attn_w{c}'], norm(x)) for x in xs] for c in 'qkv')
        attended = []
        for t in range(len(xs)):
            row = []
            for h in range(0, m.n_embd, d):
                scores = [sum(a * b for a, b in zip(Q[t][h:h + d], K[s][h:h + d])) / math.sqrt(d) if s <= t else -math.inf
                          for s in range(len(xs))]
                e = [math.exp(s - max(scores)) for s in scores]  # exp(-inf) = 0: the mask
                row += [sum(e[s] / sum(e) * V[s][h + j] for s in range(len(xs))) for j in range(d)]
            attended.append(row)
        xs = [[a + b for a, b in zip(matvec(sd[f'layer{l}.attn_wo'], o), x)] for o, x in zip(attended, xs)]
        xs = [[a + b for a, b in zip(matvec(sd[f'layer{l}.mlp_fc2'], [max(0.0, u) for u in matvec(sd[f'layer{l}.mlp_fc1'], norm(x))]), x)]
              for x in xs]
    return [matvec(sd['lm_head'], x) for x in xs]


class ReferenceModel(unittest.TestCase):
    """3b. The model's forward pass against an independent implementation (full sequence, causal mask)."""

    def test_logits_match_reference(self):
        for argv in (TINY, TINY + ['--n_head=1'], TINY + ['--n_layer=1', '--n_head=4']):
            tiny_model(*argv[4:], seed=11)
            tokens = m.encode('abcdefg')[:m.block_size]
            expected = reference_logits(m.float_weights(), tokens)
            for fused in (True, False, None):  # Value graph fused, atomic, and plain floats
                m.fused = bool(fused)
                keys, values = empty_cache()
                sd = m.float_weights() if fused is None else None
                got = [[m.data(l) for l in m.gpt(tok, pos, keys, values, sd)] for pos, tok in enumerate(tokens)]
                diff = max(abs(a - b) for ga, ea in zip(got, expected) for a, b in zip(ga, ea))
                report(f'gpt() vs reference forward, {" ".join(argv[4:]) or "tiny"}, {"floats" if fused is None else f"fused={fused}"}',
                       diff, 1e-12)
                self.assertLessEqual(diff, 1e-12)


class Causality(unittest.TestCase):
    """5. Logits at position t depend only on tokens 0..t."""

    def test_future_tokens_do_not_change_the_past(self):
        tiny_model()
        a, b = all_logits('abcdefg'), all_logits('abcxyzq')  # the same first 3 characters
        for pos in range(4):  # positions 0..3 see BOS, a, b, c only
            self.assertEqual(a[pos], b[pos], f'position {pos}')
        self.assertNotEqual(a[4], b[4])  # position 4 sees 'd' vs 'x': the test can tell them apart
        # the same through the loss: the losses of positions 0..2 (predicting a, b, c) depend on BOS, a, b, c only
        la, lb = m.doc_losses(m.encode('abcdefg'), m.float_weights()), m.doc_losses(m.encode('abcxyzq'), m.float_weights())
        self.assertEqual(la[:3], lb[:3])
        self.assertNotEqual(la[3], lb[3])

    def test_loss_uses_the_right_targets(self):
        """The loss at each position is that of the next token: recompute it from the logits by hand."""
        tiny_model()
        tokens = m.encode('abca')
        keys, values = empty_cache()
        by_hand = []
        for pos in range(len(tokens) - 1):
            logits = m.gpt(tokens[pos], pos, keys, values, m.float_weights())
            by_hand.append(-math.log(math.exp(logits[tokens[pos + 1]]) / sum(math.exp(l) for l in logits)))
        got = m.doc_losses(tokens, m.float_weights())
        self.assertEqual(len(got), len(tokens) - 1)
        report('per-position loss vs -log(softmax) by hand', max(abs(x - y) for x, y in zip(got, by_hand)), 1e-12)
        for x, y in zip(got, by_hand): self.assertAlmostEqual(x, y, delta=1e-12)


class ClosedForms(unittest.TestCase):
    """6. Loss at init, softmax, rmsnorm, Adam's first step."""

    def test_initial_loss_is_log_vocab_size(self):
        tiny_model('--init_std=0.001')  # tiny weights: near-uniform predictions, loss -> ln(vocab_size)
        loss = sum(doc_loss(m.encode(w), m.float_weights()) for w in WORDS) / len(WORDS)
        report('initial loss vs ln(vocab_size)', abs(loss - math.log(m.vocab_size)), 1e-3)
        self.assertAlmostEqual(loss, math.log(m.vocab_size), delta=1e-3)

    def test_softmax(self):
        rng = random.Random(5)
        for fused in (True, False):
            m.fused = fused
            for n in (1, 3, 27):
                x = [rng.uniform(-5, 5) for _ in range(n)]
                for xs in (x, [m.Value(v) for v in x]):
                    p = [m.data(v) for v in m.softmax(xs)]
                    shifted = [m.data(v) for v in m.softmax([v + 100.0 for v in xs])]
                    self.assertAlmostEqual(sum(p), 1.0, delta=1e-12)
                    for a, b in zip(p, shifted): self.assertAlmostEqual(a, b, delta=1e-12)
                    exact = [math.exp(v) / sum(math.exp(u) for u in x) for v in x]
                    for a, b in zip(p, exact): self.assertAlmostEqual(a, b, delta=1e-12)
        m.fused = True
        huge = m.softmax([1000.0, 0.0])  # no overflow: the max is subtracted first
        self.assertAlmostEqual(huge[0], 1.0)
        self.assertTrue(math.isfinite(m.cross_entropy([1000.0, -1000.0], 1)))  # 2000, not inf or log(0)
        self.assertAlmostEqual(m.cross_entropy([1000.0, -1000.0], 1), 2000.0)

    def test_rmsnorm_mean_square_is_one(self):
        rng = random.Random(6)
        for n in (2, 16, 64):
            x = [rng.uniform(-10, 10) for _ in range(n)]
            for xs in (x, [m.Value(v) for v in x]):
                y = [m.data(v) for v in m.rmsnorm(xs)]
                ms = sum(v * v for v in y) / n
                self.assertAlmostEqual(ms, 1.0, delta=1e-5)
                for a, b in zip(y, x): self.assertGreater(a * b, 0)  # same direction

    def test_adam_first_step_moves_by_learning_rate(self):
        tiny_model()
        loss = doc_loss(m.encode('hello'))
        loss.backward()
        before = [(p.data, p.grad) for p in m.params]
        lr = 0.01
        m.adam_step(0, [0.0] * len(m.params), [0.0] * len(m.params), lr)
        # bias-corrected m_hat = g and v_hat = g^2 at step 1, so every parameter moves by lr * |g| / (|g| + eps) ~ lr
        moved = [(abs(p.data - d), lr * abs(g) / (abs(g) + m.eps)) for p, (d, g) in zip(m.params, before) if g != 0]
        still = [abs(p.data - d) for p, (d, g) in zip(m.params, before) if g == 0]
        self.assertGreater(len(moved), 100)
        self.assertGreater(len(still), 10)  # wte rows of letters not in 'hello'
        report('Adam step 1: |move| vs lr*|g|/(|g|+eps) (relative)', max(abs(x - e) / e for x, e in moved), 1e-9)
        for x, e in moved: self.assertAlmostEqual(x / e, 1.0, delta=1e-9)
        self.assertGreater(sum(abs(x - lr) < lr * 1e-3 for x, _ in moved), 0.9 * len(moved))  # nearly all move by lr
        self.assertEqual(max(still), 0.0)
        self.assertTrue(all(p.grad == 0.0 for p in m.params))  # and the gradients are reset

    def test_adam_matches_formula_over_steps(self):
        """Three steps on one parameter with made-up gradients, against Adam written out by hand."""
        m.configure([])
        p = m.Value(1.0)
        m.params = [p]
        ms, vs = [0.0], [0.0]
        x, mm, vv = 1.0, 0.0, 0.0
        for t, g in enumerate([0.5, -0.2, 0.1]):
            p.grad = g
            m.adam_step(t, ms, vs, 0.01)
            mm = 0.85 * mm + 0.15 * g
            vv = 0.99 * vv + 0.01 * g * g
            x -= 0.01 * (mm / (1 - 0.85 ** (t + 1))) / ((vv / (1 - 0.99 ** (t + 1))) ** 0.5 + 1e-8)
            self.assertAlmostEqual(p.data, x, delta=1e-15)


class TrainingWorks(unittest.TestCase):
    """7. A short run learns; the same seed repeats exactly; another seed differs."""

    def setUp(self):
        self.dir = tempfile.TemporaryDirectory()
        self.file = os.path.join(self.dir.name, 'words.txt')
        with open(self.file, 'w') as f: f.write('\n'.join(WORDS * 5))

    def tearDown(self):
        self.dir.cleanup()

    def test_loss_goes_down(self):
        tiny_model(vocab=''.join(WORDS))
        m.configure(TINY + ['--num_steps=300', '--learning_rate=0.02'])
        docs = WORDS * 15
        before = m.evaluate(WORDS)
        for _ in m.train(docs):
            pass
        after = m.evaluate(WORDS)
        print(f'  loss on the training words: {before:.3f} before, {after:.3f} after 300 steps')
        self.assertLess(after, before - 1.0)

    def test_same_seed_same_run_other_seed_other_run(self):
        args = [f'--input_file={self.file}', '--num_steps=30', '--num_samples=5', *TINY]
        strip = lambda out: re.sub(r'[\d.]+ ms/step \| eta \d+s', '', out)
        one, two, other = run(*args), run(*args), run(*args, '--seed=7')
        self.assertEqual(one[0], 0, one[2])
        self.assertEqual(strip(one[1]), strip(two[1]))
        self.assertNotEqual(strip(one[1]), strip(other[1]))
        self.assertIn('val loss', one[1])


class Tokenizer(unittest.TestCase):
    """8. Round trips on ASCII and non-ASCII text; BOS."""

    def test_round_trip(self):
        docs = ['hello', 'café', 'straße', 'naïve 🙂 emoji', '漢字かな', 'mixed: ñ€😀']
        m.configure(TINY)
        m.use_model(sorted(set(''.join(docs))))
        for doc in docs:
            ids = m.encode(doc)
            self.assertEqual(m.decode(ids), doc)
            self.assertEqual(len(ids), len(doc) + 2)  # one token per character, plus BOS at each end
            self.assertEqual((ids[0], ids[-1]), (m.BOS, m.BOS))
            self.assertNotIn(m.BOS, ids[1:-1])
        self.assertEqual(m.BOS, len(m.chars))
        self.assertEqual(m.vocab_size, len(set(''.join(docs))) + 1)
        self.assertEqual(len(set(m.encode(''.join(docs))[1:-1])), len(m.chars))  # each character its own id


class ShippedData(unittest.TestCase):
    def test_input_txt_is_the_names_dataset(self):
        with open(os.path.join(ROOT, 'input.txt'), 'rb') as f: raw = f.read()
        names = raw.decode('ascii').split('\n')
        self.assertEqual(len(names), 32033)  # one name per line, no newline after the last
        self.assertTrue(all(re.fullmatch('[a-z]+', n) for n in names))
        shared = os.path.join(ROOT, '..', 'shared', 'data', 'names.txt')
        if os.path.exists(shared):  # beside the repository in CI: a byte-for-byte copy
            with open(shared, 'rb') as f: self.assertEqual(raw, f.read())


class Evaluation(unittest.TestCase):
    """9. Evaluation: the mean loss per predicted token, against an independent computation."""

    def test_evaluate_against_reference_losses(self):
        """evaluate() is the mean over every prediction of -log softmax(reference logits)[next]: this
        fixes the number of predictions per document (min(block_size, len + 1)) and the mean per token."""
        tiny_model('--block_size=6', vocab=''.join(WORDS), seed=4)
        docs = WORDS[:8] + ['a', 'elizabeth']  # short, and longer than the context: cut at block_size
        losses = []
        for doc in docs:
            tokens = m.encode(doc)[:m.block_size + 1]
            for t, logits in enumerate(reference_logits(m.float_weights(), tokens[:-1])):
                losses.append(math.log(sum(math.exp(l) for l in logits)) - logits[tokens[t + 1]])
        self.assertEqual(len(losses), sum(min(m.block_size, len(doc) + 1) for doc in docs))
        for prefix_cache, no_grad in ((True, True), (False, True), (False, False)):
            m.prefix_cache, m.no_grad = prefix_cache, no_grad
            got = m.evaluate(docs)
            diff = abs(got - sum(losses) / len(losses))
            report(f'evaluate() vs reference, prefix_cache={prefix_cache} no_grad={no_grad}', diff, 1e-12)
            self.assertLessEqual(diff, 1e-12)
        self.assertEqual(m.tape, [])  # the graph-path evaluation left no graph behind

    def test_doc_losses_count(self):
        tiny_model()
        for length in range(0, 12):
            self.assertEqual(len(m.doc_losses(m.encode('a' * length))), min(m.block_size, length + 1))


class Sampling(unittest.TestCase):
    """Sampling against a stub model whose next-token distribution we choose."""

    def stub(self, choose):
        """A stand-in for gpt(): logits that put (almost) all mass on choose(pos), a character or BOS."""
        fed = []
        def gpt(token_id, pos_id, keys, values, sd=None):
            fed.append(token_id)
            target = choose(pos_id)
            return [100.0 if i == (m.BOS if target is None else m.stoi[target]) else 0.0 for i in range(m.vocab_size)]
        return gpt, fed

    def test_stops_at_bos_and_at_block_size(self):
        tiny_model()
        gpt, fed = self.stub(lambda pos: 'a' if pos < 2 else None if pos == 2 else 'b')
        with mock.patch.object(m, 'gpt', gpt):
            self.assertEqual(m.sample(), 'aa')  # BOS at position 2 ends the sample
        self.assertEqual(fed, [m.BOS, m.stoi['a'], m.stoi['a']])
        gpt, fed = self.stub(lambda pos: 'z')
        with mock.patch.object(m, 'gpt', gpt):
            self.assertEqual(m.sample(), 'z' * m.block_size)  # never BOS: cut at the context length

    def test_prompt_is_fed_then_continued(self):
        tiny_model('--prompt=cab')
        gpt, fed = self.stub(lambda pos: 'e' if pos < 5 else None)
        with mock.patch.object(m, 'gpt', gpt):
            self.assertEqual(m.sample(), 'cabee')
        self.assertEqual(fed, m.encode('cabee')[:-1])  # BOS, the prompt, then its own choices

    def test_temperature_reshapes_the_distribution(self):
        """Logits (0, ln 2): probabilities 1/3, 2/3 at temperature 1, and 1/5, 4/5 at temperature 0.5."""
        tiny_model(vocab='ab')
        rng_state = random.getstate()
        for temperature, p_b in ((1.0, 2 / 3), (0.5, 4 / 5)):
            m.temperature = temperature
            def gpt(token_id, pos_id, keys, values, sd=None):
                return [0.0, math.log(2), -1000.0] if pos_id == 0 else [-1000.0, -1000.0, 0.0]  # a, b, then BOS
            random.seed(1)
            n = 4000
            with mock.patch.object(m, 'gpt', gpt):
                share = sum(m.sample() == 'b' for _ in range(n)) / n
            sigma = math.sqrt(p_b * (1 - p_b) / n)
            report(f'share of b at temperature {temperature} vs {p_b:.3f} (in sigmas)', abs(share - p_b) / sigma, 4)
            self.assertLess(abs(share - p_b), 4 * sigma)
        random.setstate(rng_state)


class InTempDir(unittest.TestCase):
    """A temporary folder with a file of names and a path for a model; removed after each test."""

    def setUp(self):
        self.dir = tempfile.TemporaryDirectory()
        self.d = self.dir.name
        self.file = os.path.join(self.d, 'words.txt')
        with open(self.file, 'w') as f: f.write('\n'.join(WORDS * 3))
        self.model = os.path.join(self.d, 'model.json')

    def tearDown(self):
        self.dir.cleanup()


class CommandLine(InTempDir):
    """10. Overrides work; every bad setting or input gets one clear line and the right exit code."""

    def assert_clear_error(self, args, code, *needles):
        files = sorted(os.listdir(self.d))
        rc, out, err = run(*args, cwd=self.d)
        self.assertEqual(rc, code, err)
        self.assertNotIn('Traceback', err + out)
        lines = err.strip().splitlines()
        self.assertEqual(len(lines), 1, err)
        for needle in needles: self.assertIn(needle, lines[0])
        self.assertEqual(sorted(os.listdir(self.d)), files)  # nothing half-written
        return lines[0]

    def test_overrides_take_effect(self):
        rc, out, err = run(f'--input_file={self.file}', '--n_embd=12', '--n_head=3', '--n_layer=2', '--block_size=10',
                           '--num_steps=3', '--num_samples=4', '--fused=false', cwd=self.d)
        self.assertEqual(rc, 0, err)
        v = len(set(''.join(WORDS))) + 1
        n, L, b = 12, 2, 10
        self.assertIn(f'| {v * n * 2 + b * n + L * 12 * n * n} params | fused=False', out)  # wte+lm_head, wpe, blocks
        self.assertIn('step     3 / 3 |', out)
        self.assertEqual(len(re.findall(r'^sample +\d+: ', out, re.M)), 4)

    def test_bad_settings_exit_2(self):
        f = f'--input_file={self.file}'
        self.assert_clear_error([f, '--n_embdd=8'], 2, 'unknown setting', '--n_embd')
        self.assert_clear_error([f, 'n_embd=8'], 2, 'unknown setting')
        self.assert_clear_error([f, '--n_embd=eight'], 2, '--n_embd', 'whole number')
        self.assert_clear_error([f, '--learning_rate=fast'], 2, '--learning_rate', 'number')
        self.assert_clear_error([f, '--fused=maybe'], 2, '--fused', 'True or False')
        self.assert_clear_error([f, '--seed=-1'], 2, 'seed', 'negative')
        self.assert_clear_error([f, '--batch_size=0'], 2, 'batch_size', 'at least 1')
        self.assert_clear_error([f, '--workers=0'], 2, 'workers', 'at least 1')
        self.assert_clear_error([f, '--workers=-2'], 2, 'workers', 'at least 1')
        self.assert_clear_error([f, '--temperature=inf'], 2, 'temperature')
        self.assert_clear_error([f, '--n_embd=10', '--n_head=4'], 2, 'multiple of n_head')
        self.assert_clear_error([f, '--n_layer=0'], 2, 'at least 1')
        self.assert_clear_error([f, '--n_head=0'], 2, 'at least 1')  # not a division by zero
        self.assert_clear_error([f, '--learning_rate=-1'], 2, 'learning_rate')
        self.assert_clear_error([f, '--learning_rate=nan'], 2, 'learning_rate')
        self.assert_clear_error([f, '--beta2=1'], 2, 'beta2')
        self.assert_clear_error([f, '--temperature=0'], 2, 'temperature')
        self.assert_clear_error([f, '--num_steps=-5'], 2, 'negative')
        self.assert_clear_error([f, '--prompt=abcdefghijklmnopq'], 2, 'block_size')
        self.assert_clear_error([f, '--save=no/such/folder/m.json'], 2, 'cannot save', 'No such file')
        self.assert_clear_error([f, f'--save={self.d}'], 2, 'is a folder or the input file')
        self.assert_clear_error([f, f'--save={self.file}'], 2, 'is a folder or the input file')
        self.assert_clear_error([f, '--save=/proc/m.json'], 2, 'cannot save')  # not writable, even as root
        with open(self.file) as fh: self.assertEqual(fh.read(), '\n'.join(WORDS * 3))  # left as it was

    def test_bad_input_files(self):
        missing = os.path.join(self.d, 'missing.txt')
        self.assert_clear_error([f'--input_file={missing}'], 2, 'missing.txt', 'No such file')
        for name, content in (('empty.txt', b''), ('blank.txt', b'\n   \n\t\n'), ('one.txt', b'onlyone\n'),
                              ('latin1.txt', 'caf\u00e9\nna\u00efve\n'.encode('latin-1'))):
            path = os.path.join(self.d, name)
            with open(path, 'wb') as f: f.write(content)
            line = self.assert_clear_error([f'--input_file={path}', f'--save={self.d}/m.json'], 2, name)
            self.assertIn('UTF-8' if name == 'latin1.txt' else 'non-empty lines', line)
            os.remove(path)
        self.assert_clear_error([f'--input_file={self.d}'], 2, 'cannot read')  # a folder, not a file

    def test_utf8_file_with_bom_and_crlf_trains(self):
        path = os.path.join(self.d, 'bom.txt')
        with open(path, 'wb') as f: f.write('\ufeffzoë\r\nchloé\r\n\r\nrenée\r\nagnès\r\n'.encode('utf-8'))
        rc, out, err = run(f'--input_file={path}', '--num_steps=5', '--num_samples=2', cwd=self.d)
        self.assertEqual(rc, 0, err)
        vocab = len(set('zoëchloérenéeagnès')) + 1  # no BOM and no \r among the characters
        self.assertIn(f'3 train docs, 1 held out | vocab {vocab} |', out)

    def test_ctrl_c_stops_training_and_the_run_goes_on(self):
        import signal, time
        for workers in ([], ['--batch_size=4', '--workers=2']):  # one process; and a process group
            p = subprocess.Popen([sys.executable, os.path.join(ROOT, 'microgpt.py'), f'--input_file={self.file}',
                                  '--num_steps=10000000', '--num_samples=2', *TINY, *workers], cwd=self.d,
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
            self.assertIn('train docs', p.stdout.readline())  # training starts right after this line
            time.sleep(1.5)
            os.killpg(p.pid, signal.SIGINT)  # as Ctrl-C in a terminal: to every process of the group
            out, err = p.communicate(timeout=120)
            self.assertEqual(p.returncode, 0, err)
            self.assertNotIn('Traceback', err)
            self.assertRegex(out, r'stopped by Ctrl-C at step \d+\nloss, mean of the last 100 steps: .*\n'
                                  r'val loss [\d.]+ \| train loss [\d.]+\nsample  1: .*\nsample  2: ')
            with self.assertRaises(ProcessLookupError):  # no worker outlives the run
                os.killpg(p.pid, 0)

    def test_output_piped_into_head_stops_quietly(self):
        p = subprocess.Popen([sys.executable, os.path.join(ROOT, 'microgpt.py'), f'--input_file={self.file}', '--num_steps=0',
                              '--eval_docs=0', '--num_samples=5000', *TINY], cwd=self.d, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.assertIn(b'train docs', p.stdout.readline())
        p.stdout.close()  # like `| head -1`
        err = p.stderr.read().decode()
        p.stderr.close()
        p.wait(timeout=60)
        self.assertNotIn('Traceback', err)
        self.assertNotIn('BrokenPipe', err)

    def test_diverging_loss_gets_the_clear_message(self):
        rc, out, err = run(f'--input_file={self.file}', '--learning_rate=1e300', '--num_steps=50', *TINY, cwd=self.d)
        self.assertEqual(rc, 1, err)
        self.assertNotIn('Traceback', err)
        self.assertNotIn('math domain error', err)
        self.assertRegex(err.strip(), r'^microgpt: loss nan/inf at step \d+: lower --learning_rate$')


class Notebook(unittest.TestCase):
    """11. Pasting the whole file into a notebook cell: the kernel's sys.argv, no __file__."""

    def test_exec_in_fresh_namespace(self):
        src = slurp(os.path.join(ROOT, 'microgpt.py'), 'r')
        for old, new in (('num_steps = 1000 ', 'num_steps = 20 '), ('num_samples = 20 ', 'num_samples = 3 '),
                         ('eval_docs = 5000 ', 'eval_docs = 50 ')):
            self.assertIn(old, src)
            src = src.replace(old, new)
        script = ("import sys\nsys.argv = ['ipykernel_launcher.py', '-f', '/tmp/kernel-x.json']\n"
                  "ns = {'__name__': '__main__'}\nexec(compile(sys.stdin.read(), '<cell>', 'exec'), ns)\n"
                  "print('cell done', ns['num_steps'])\nns['explain']('emma')\n")
        r = subprocess.run([sys.executable, '-c', script], input=src, cwd=ROOT, capture_output=True, text=True, timeout=300)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn('val loss', r.stdout)
        self.assertIn('sample  3:', r.stdout)
        self.assertIn('cell done 20', r.stdout)
        self.assertIn('mean loss', r.stdout.split('cell done')[1])  # explain() from the next cell

    def test_import_does_not_train(self):
        r = subprocess.run([sys.executable, '-c', 'import microgpt, sys; print(len(sys.modules["microgpt"].SETTINGS))',
                            '--n_embd=bogus'], cwd=ROOT, capture_output=True, text=True, timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout.strip(), str(len(m.SETTINGS)))


class SaveLoadPrompt(InTempDir):
    """Issue 5: keep what you trained, sample without retraining, complete a prompt."""

    def train_and_save(self, *args):
        rc, out, err = run(f'--input_file={self.file}', '--num_steps=40', f'--save={self.model}', *TINY, *args, cwd=self.d)
        self.assertEqual(rc, 0, err)
        return out

    def test_round_trip_bit_identical(self):
        """In process: the loaded weights give bit-identical logits; out of process: identical samples."""
        tiny_model(vocab=''.join(WORDS), seed=3)
        before = m.float_weights()
        with contextlib.redirect_stdout(io.StringIO()): m.save_model(self.model)
        logits_before = all_logits('sophia')
        tiny_model(vocab='xyz', seed=99)  # something else entirely, to be overwritten by the load
        m.load_model(self.model, {})
        self.assertEqual(m.float_weights(), before)
        self.assertEqual(all_logits('sophia'), logits_before)
        self.assertEqual(json.loads(slurp(self.model))['config'], {'n_layer': 2, 'n_embd': 8, 'n_head': 2, 'block_size': 8})

        trained = self.train_and_save('--num_samples=8')
        rc, loaded, err = run(f'--input_file={self.file}', f'--load={self.model}', '--num_steps=0', '--num_samples=8', cwd=self.d)
        self.assertEqual(rc, 0, err)
        samples = lambda out: re.findall(r'^sample.*$', out, re.M)
        self.assertEqual(len(samples(trained)), 8)
        self.assertEqual(samples(trained), samples(loaded))
        self.assertEqual(re.search(r'val loss \S+', trained).group(), re.search(r'val loss \S+', loaded).group())
        self.assertNotIn('step ', loaded)  # --num_steps=0: no training

    def test_load_restores_shapes_and_rejects_contradictions(self):
        self.train_and_save()
        rc, out, err = run(f'--input_file={self.file}', f'--load={self.model}', '--num_steps=0', '--num_samples=1', cwd=self.d)
        self.assertEqual(rc, 0, err)  # n_embd=8 etc. come from the file
        rc, out, err = run(f'--input_file={self.file}', f'--load={self.model}', '--n_embd=16', cwd=self.d)
        self.assertEqual(rc, 2)
        self.assertIn('--n_embd=16 contradicts', err)
        self.assertNotIn('Traceback', err)

    def test_bad_model_files(self):
        self.train_and_save()
        good = json.loads(slurp(self.model))
        bad = {'missing': None, 'not json': '{"config": ', 'a list': [1, 2],
               'no weights': {k: v for k, v in good.items() if k != 'state_dict'},
               'wrong shape': dict(good, state_dict=dict(good['state_dict'], wte=good['state_dict']['wte'][:-1])),
               'short row': dict(good, state_dict=dict(good['state_dict'], lm_head=[r[:-1] for r in good['state_dict']['lm_head']])),
               'not numbers': dict(good, state_dict=dict(good['state_dict'], wpe=[['x'] * 8] * 8)),
               'bad config': dict(good, config=dict(good['config'], n_embd='8')),
               'impossible config': dict(good, config=dict(good['config'], n_head=3))}
        for name, content in bad.items():
            path = os.path.join(self.d, 'bad.json')
            if os.path.exists(path): os.remove(path)
            if content is not None:
                with open(path, 'w') as f: f.write(content if isinstance(content, str) else json.dumps(content))
            rc, out, err = run(f'--input_file={self.file}', f'--load={path}', '--num_steps=0', cwd=self.d)
            self.assertEqual(rc, 2, f'{name}: {err}')
            self.assertNotIn('Traceback', err, name)
            self.assertEqual(len(err.strip().splitlines()), 1, f'{name}: {err}')
            self.assertIn('bad.json', err, name)

    def test_prompt(self):
        self.train_and_save()
        rc, out, err = run(f'--input_file={self.file}', f'--load={self.model}', '--num_steps=0', '--prompt=so', cwd=self.d)
        self.assertEqual(rc, 0, err)
        samples = re.findall(r'^sample +\d+: (.*)$', out, re.M)
        self.assertEqual(len(samples), 20)
        self.assertTrue(all(s.startswith('so') for s in samples), samples)
        for prompt, needle in (('sQ', "'Q'"), ('abcdefgh', 'block_size=8')):
            rc, out, err = run(f'--input_file={self.file}', f'--load={self.model}', '--num_steps=0', f'--prompt={prompt}', cwd=self.d)
            self.assertEqual(rc, 2, err)
            self.assertIn(needle, err)
            self.assertNotIn('Traceback', err)

    def test_interrupted_save_keeps_the_old_file(self):
        tiny_model(vocab=''.join(WORDS))
        with contextlib.redirect_stdout(io.StringIO()): m.save_model(self.model)
        old = slurp(self.model)
        for p in m.params: p.data += 1.0
        for failure in (OSError(28, 'No space left on device'), KeyboardInterrupt()):  # disk full, Ctrl-C
            with mock.patch('os.fsync', side_effect=failure), contextlib.redirect_stderr(io.StringIO()) as err:
                with self.assertRaises(SystemExit if isinstance(failure, OSError) else KeyboardInterrupt):
                    m.save_model(self.model)
            self.assertEqual(slurp(self.model), old)  # the old model, whole
            self.assertEqual(sorted(os.listdir(self.d)), ['model.json', 'words.txt'])  # no temporary file left
            if isinstance(failure, OSError): self.assertIn('No space left on device', err.getvalue())



def quiet(f, *args):
    """Call f with stdout captured; return (result, output)."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        result = f(*args)
    return result, out.getvalue()


def adam_spy(record):
    """A stand-in for adam_step that records (lr, gradients, gc on?, workers) and then steps."""
    real = m.adam_step
    def spy(step, mm, vv, lr):
        record.append((lr, [p.grad for p in m.params], gc.isenabled(), len(m.pool or [])))
        real(step, mm, vv, lr)
    return mock.patch.object(m, 'adam_step', spy)


class ClosedFormModel(unittest.TestCase):
    """A second, independent line of defence for the forward pass: weights chosen so that the model's
    output has a closed form. q = k = 0 makes attention a plain average of the values so far;
    v = o = identity; the MLP computes relu(-x). Then, at position t,
        x0 = rms(wte[tok_t] + wpe[t]),  x1 = x0 + mean over s <= t of rms(x0_s),  x2 = x1 + relu(-rms(x1)),
    and the logits are lm_head @ x2."""

    def test_logits_have_the_closed_form(self):
        tiny_model('--n_layer=1', '--n_embd=4', '--n_head=2', '--block_size=5', vocab='abc', seed=21)
        eye = lambda n: [[float(i == j) for j in range(n)] for i in range(n)]
        zeros = lambda r, c: [[0.0] * c for _ in range(r)]
        sd = m.float_weights()
        sd.update({'layer0.attn_wq': zeros(4, 4), 'layer0.attn_wk': zeros(4, 4), 'layer0.attn_wv': eye(4),
                   'layer0.attn_wo': eye(4), 'layer0.mlp_fc1': [[-v for v in r] for r in eye(4)] + zeros(12, 4),
                   'layer0.mlp_fc2': [r + [0.0] * 12 for r in eye(4)]})
        rms = lambda x: [v / math.sqrt(sum(u * u for u in x) / len(x) + 1e-5) for v in x]
        tokens = m.encode('abca')[:-1]
        x0 = [rms([a + b for a, b in zip(sd['wte'][tok], sd['wpe'][t])]) for t, tok in enumerate(tokens)]
        worst = 0.0
        for fused in (True, False):
            m.fused = fused
            keys, values = empty_cache()
            for t, tok in enumerate(tokens):
                avg = [sum(rms(x0[s])[i] for s in range(t + 1)) / (t + 1) for i in range(4)]
                x1 = [a + b for a, b in zip(x0[t], avg)]
                x2 = [a + max(0.0, -b) for a, b in zip(x1, rms(x1))]
                expected = [sum(w * x for w, x in zip(row, x2)) for row in sd['lm_head']]
                got = m.gpt(tok, t, keys, values, sd)
                worst = max(worst, max(abs(a - b) for a, b in zip(got, expected)))
        report('gpt() vs closed form (uniform attention, relu(-x) MLP)', worst, 1e-12)
        self.assertLessEqual(worst, 1e-12)
        self.assertNotEqual(sd['lm_head'], sd['wte'])  # so that a tied output layer would show


class TrainingSchedule(unittest.TestCase):
    """Issue 9's missing tests: the learning-rate schedule, the step loss, the split, hash seeds."""

    def test_learning_rate_decays_linearly(self):
        tiny_model('--num_steps=10', '--learning_rate=0.02')
        record = []
        with adam_spy(record):
            for _ in m.train(WORDS):
                pass
        lrs = [r[0] for r in record]
        self.assertEqual(len(lrs), 10)
        self.assertAlmostEqual(lrs[0], 0.02, delta=1e-15)          # step 1: the full rate
        self.assertAlmostEqual(lrs[5], 0.02 * (1 - 5 / 10), delta=1e-15)  # halfway: half of it
        self.assertAlmostEqual(lrs[-1], 0.02 / 10, delta=1e-15)    # last step: one step's worth above 0

    def test_printed_step_loss_is_the_mean_over_positions(self):
        tiny_model('--num_steps=1', vocab=''.join(WORDS), seed=5)
        tokens = m.encode('sophia')  # short enough to be read whole
        logits = reference_logits(m.float_weights(), tokens[:-1])
        per_position = [math.log(sum(math.exp(l) for l in lg)) - lg[tokens[t + 1]] for t, lg in enumerate(logits)]
        _, out = quiet(m.run_training, ['sophia'])
        printed = float(re.search(r'\| loss ([\d.]+) \|', out).group(1))
        self.assertEqual(f'{printed:.4f}', f'{sum(per_position) / len(per_position):.4f}')
        self.assertNotEqual(f'{printed:.4f}', f'{sum(per_position):.4f}')

    def test_batch_size_1_is_one_document_per_step(self):
        """train() with batch_size=1 against the textbook loop written here: identical weights."""
        docs = ['emma', 'olivia', 'ava', 'sophia', 'mia', 'amelia']  # each fits in the context
        tiny_model('--num_steps=6', vocab=''.join(WORDS), seed=6)
        for _ in m.train(docs):
            pass
        trained = m.float_weights()
        tiny_model('--num_steps=6', vocab=''.join(WORDS), seed=6)
        mm, vv = [0.0] * len(m.params), [0.0] * len(m.params)
        for step, doc in enumerate(docs):
            losses = m.doc_losses(m.encode(doc))
            (sum(losses) / len(losses)).backward()
            m.adam_step(step, mm, vv, m.learning_rate * (1 - step / 6))
        self.assertEqual(m.float_weights(), trained)

    def test_batch_gradient_is_the_mean_of_the_documents_gradients(self):
        tiny_model(vocab=''.join(WORDS), seed=7)
        batch = [m.encode(w) for w in WORDS[:5]]
        singles = []
        for tokens in batch:
            for p in m.params: p.grad = 0.0
            m.batch_loss([tokens])
            singles.append([p.grad for p in m.params])
        for p in m.params: p.grad = 0.0
        m.batch_loss(batch)
        mean = [sum(g) / len(batch) for g in zip(*singles)]
        scale = max(abs(g) for g in mean)
        diff = max(abs(p.grad - g) / max(abs(g), 1e-6 * scale) for p, g in zip(m.params, mean))
        report('batch gradient vs mean of single-document gradients (relative)', diff, 1e-12)
        self.assertLessEqual(diff, 1e-12)

    def test_split_is_shuffled_disjoint_and_seeded(self):
        docs = [f'doc{i}' for i in range(200)]
        random.seed(1)
        train, val = m.split_docs('\n'.join(docs) + '\n\n  \n')
        self.assertEqual(len(val), 20)  # 10% held out
        self.assertEqual(sorted(train + val), sorted(docs))  # every document once: disjoint, complete
        self.assertNotEqual(train + val, docs)  # shuffled
        random.seed(1)
        self.assertEqual(m.split_docs('\n'.join(docs)), (train, val))
        random.seed(2)
        self.assertNotEqual(m.split_docs('\n'.join(docs))[1], val)

    def test_val_loss_scores_the_held_out_documents(self):
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, 'words.txt')
            with open(path, 'w') as f: f.write('\n'.join(WORDS * 3))
            seen = []
            real = m.evaluate
            with mock.patch.object(m, 'evaluate', lambda docs: seen.append(list(docs)) or real(docs)):
                quiet(m.main, [f'--input_file={path}', '--num_steps=3', '--num_samples=0', *TINY])
        random.seed(m.seed)
        train, val = m.split_docs('\n'.join(WORDS * 3))
        self.assertEqual(seen, [val, train[:len(val)]])  # val loss on the held-out part, train loss on train

    def test_vocabulary_does_not_depend_on_hash_seeds(self):
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, 'words.txt')
            with open(path, 'w', encoding='utf-8') as f: f.write('\n'.join(WORDS + ['zoë', 'øre', 'ñu']))
            outs = []
            for hash_seed in ('1', '2', '3'):
                model = os.path.join(d, f'm{hash_seed}.json')
                r = subprocess.run([sys.executable, os.path.join(ROOT, 'microgpt.py'), f'--input_file={path}',
                                    '--num_steps=2', '--num_samples=5', f'--save={model}', *TINY], cwd=d,
                                   capture_output=True, text=True, timeout=120, env=dict(os.environ, PYTHONHASHSEED=hash_seed))
                self.assertEqual(r.returncode, 0, r.stderr)
                with open(model) as f: outs.append((json.load(f)['chars'], re.findall('sample.*', r.stdout)))
            self.assertEqual(outs[0], outs[1])
            self.assertEqual(outs[0], outs[2])


class Switches(unittest.TestCase):
    """Part 2: each switch changes only the speed."""

    def test_prefix_cache_is_exact(self):
        tiny_model(vocab='abcdefghijklmnopqrstuvwxyz', seed=8)
        with open(os.path.join(ROOT, 'input.txt')) as f:
            docs = f.read().split('\n')[:400]
        results = {}
        for cache in (True, False):
            m.prefix_cache = cache
            results[cache] = m.evaluate(docs)
        print(f'  evaluate() with and without prefix caching: {results[True]!r} and {results[False]!r}')
        self.assertEqual(results[True], results[False])  # to the last bit

    def test_pause_gc_changes_nothing_and_restores_the_collector(self):
        weights = {}
        for pause, was_on in ((True, True), (False, True), (True, False)):
            tiny_model('--num_steps=5', f'--pause_gc={pause}', vocab=''.join(WORDS), seed=9)
            record = []
            gc.enable() if was_on else gc.disable()
            try:
                with adam_spy(record):
                    quiet(m.run_training, WORDS)
                self.assertEqual(gc.isenabled(), was_on)  # as it was before
            finally:
                gc.enable()
            self.assertEqual({r[2] for r in record}, {was_on and not pause})  # during training
            weights[pause, was_on] = m.float_weights()
        self.assertEqual(weights[True, True], weights[False, True])

    def test_two_workers_give_the_same_gradients_as_one(self):
        grads, losses = {}, {}
        for w in (1, 2, 8):
            tiny_model('--num_steps=2', '--batch_size=5', f'--workers={w}', vocab=''.join(WORDS), seed=10)
            record = []
            with adam_spy(record):
                _, out = quiet(m.run_training, WORDS)
            grads[w] = record[-1][1]
            losses[w] = re.findall(r'\| loss ([\d.]+)', out)
            self.assertEqual(record[0][3], min(w, 5) - 1)  # pipes to the other workers: at most one a document
            self.assertEqual(m.pool, [])
            self.assertEqual(multiprocessing.active_children(), [])  # every worker has ended
        scale = max(abs(g) for g in grads[1])
        for w in (2, 8):
            diff = max(abs(a - b) / max(abs(a), 1e-6 * scale) for a, b in zip(grads[1], grads[w]))
            report(f'gradients with {w} workers vs 1 (relative)', diff, 1e-12)
            self.assertLessEqual(diff, 1e-12)
            self.assertEqual(losses[w], losses[1])

    def test_no_fork_falls_back_to_one_process(self):
        tiny_model('--num_steps=2', '--batch_size=4', '--workers=4', vocab=''.join(WORDS))
        record = []
        with mock.patch('multiprocessing.get_all_start_methods', return_value=['spawn']), adam_spy(record):
            _, out = quiet(m.run_training, WORDS)
        self.assertIn('training in one process', out)
        self.assertEqual([r[3] for r in record], [0, 0])


class Explain(unittest.TestCase):
    """Issue 10: the x-ray shows the numbers gpt() computes; the loss chart; new names vs copies."""

    def test_explain_shows_what_gpt_computes(self):
        tiny_model(vocab=''.join(WORDS), seed=12)
        rows, out = quiet(m.explain, 'emma')
        tokens = m.encode('emma')
        sd = m.float_weights()
        d = m.n_embd // m.n_head
        norm = lambda x: [v / math.sqrt(sum(u * u for u in x) / len(x) + 1e-5) for v in x]
        matvec = lambda W, x: [sum(w * v for w, v in zip(row, x)) for row in W]
        x = [norm([a + b for a, b in zip(sd['wte'][tok], sd['wpe'][t])]) for t, tok in enumerate(tokens[:-1])]
        worst = 0.0
        for t, row in enumerate(rows):
            logits = reference_logits(sd, tokens[:t + 1])[t]
            p = [math.exp(l) / sum(math.exp(u) for u in logits) for l in logits]
            worst = max(worst, max(abs(a - b) for a, b in zip(row['probs'], p)))
            worst = max(worst, abs(row['loss'] + math.log(p[tokens[t + 1]])))
            q = matvec(sd['layer0.attn_wq'], norm(x[t]))  # layer 0's attention, by hand
            ks = [matvec(sd['layer0.attn_wk'], norm(x[s])) for s in range(t + 1)]
            for h in range(m.n_head):
                scores = [sum(a * b for a, b in zip(q[h * d:h * d + d], k[h * d:h * d + d])) / math.sqrt(d) for k in ks]
                e = [math.exp(s - max(scores)) for s in scores]
                worst = max(worst, max(abs(a - b / sum(e)) for a, b in zip(row['attention'][h], e)))
            self.assertEqual(len(row['attention']), m.n_layer * m.n_head)
            self.assertIn(f'{p[tokens[t + 1]]:7.4f} {-math.log(p[tokens[t + 1]]):6.3f} |', out)
        report('explain(): probabilities, loss and attention vs an independent computation', worst, 1e-12)
        self.assertLessEqual(worst, 1e-12)
        self.assertEqual(len(rows), 5)  # e, m, m, a and the end
        self.assertIn(f'mean loss {sum(r["loss"] for r in rows) / 5:.4f} over 5 predictions', out)
        self.assertLessEqual(max(map(len, out.splitlines())), 100)
        self.assertIs(m.softmax.__name__, 'softmax')  # put back as it was

    def test_chart(self):
        ramp = m.chart([float(i) for i in range(40)])
        self.assertEqual(list(ramp), sorted(ramp))  # rises with the series
        self.assertEqual(set(ramp), set('▁▂▃▄▅▆▇█'))  # from the lowest bar to the highest
        self.assertEqual(m.chart([5.0] * 20 + [1.0] * 20), '█' * 20 + '▁' * 20)
        self.assertEqual(m.chart([1.0, 2.0, 1.5]), '▁█▄')  # 1.5 is halfway: int(7 * 0.5) = 3
        self.assertEqual(m.chart([2.0] * 7), '▁' * 7)
        self.assertEqual(len(m.chart([3.0 - i / 1000 for i in range(1000)])), 40)

    def test_running_mean_and_chart_of_a_known_series(self):
        tiny_model('--num_steps=150')
        series = [float(i % 7) for i in range(150)]
        with mock.patch.object(m, 'train', lambda docs: enumerate(series)):
            _, out = quiet(m.run_training, WORDS)
        for step, mean in re.findall(r'step +(\d+) / 150 .*\| mean ([\d.]+) \|', out):
            recent = series[max(0, int(step) - 100):int(step)]
            self.assertEqual(mean, f'{sum(recent) / len(recent):.4f}')
        means = [sum(series[max(0, i - 99):i + 1]) / len(series[max(0, i - 99):i + 1]) for i in range(150)]
        self.assertIn(f'loss, mean of the last 100 steps: {means[0]:.2f} {m.chart(means)} {means[-1]:.2f}', out)

    def test_new_names_and_copies(self):
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, 'words.txt')
            with open(path, 'w') as f: f.write('\n'.join(WORDS * 4))
            rc, out, err = run(f'--input_file={path}', '--num_steps=300', '--num_samples=40', '--eval_docs=0', cwd=d)
        self.assertEqual(rc, 0, err)
        random.seed(m.seed)
        train, _ = m.split_docs('\n'.join(WORDS * 4))
        samples = re.findall(r'^sample +\d+: (.*)$', out, re.M)
        copies = sum(s in set(train) for s in samples)
        self.assertGreater(copies, 0)  # a model trained hard on 20 names repeats some of them
        self.assertIn(f'{40 - copies} of 40 samples are new, {copies} copy a train doc', out)

    def test_evaluation_shows_progress_in_a_terminal_when_slow(self):
        tiny_model(vocab=''.join(WORDS))
        clock = iter(range(0, 10000, 2))  # every reading of the clock is 2 s later
        class Terminal(io.StringIO):
            def isatty(self): return True
        out = Terminal()
        with mock.patch.object(m.time, 'time', lambda: next(clock)), contextlib.redirect_stdout(out):
            m.evaluate(WORDS[:3])
        self.assertEqual(out.getvalue(), ''.join(f'evaluating {i} / 3 docs\r' for i in (1, 2, 3)))
        _, piped = quiet(m.evaluate, WORDS[:3])
        self.assertEqual(piped, '')


class LongDocuments(unittest.TestCase):
    """Issue 10: a document longer than the context trains on a random window of it."""

    def test_window(self):
        tiny_model('--block_size=4')
        tokens = m.encode('abcdefghij')  # 12 tokens; a window is 5 of them, from offsets 0..7
        random.seed(3)
        starts = set()
        for _ in range(400):
            w = m.window(tokens)
            self.assertEqual(len(w), 5)
            text = ''.join('^' if t == m.BOS else m.chars[t] for t in w)
            self.assertIn(text, '^abcdefghij^')  # a piece of the document, in order
            starts.add('^abcdefghij^'.index(text))
        self.assertEqual(starts, set(range(8)))  # every offset, the end included
        state = random.getstate()
        self.assertEqual(m.window(m.encode('abc')), m.encode('abc'))  # fits: as it is, and no draw
        self.assertEqual(random.getstate(), state)

    def test_long_documents_are_counted(self):
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, 'lines.txt')
            lines = WORDS + ['the quick brown fox jumps', 'over the lazy dog again and again'] * 3
            with open(path, 'w') as f: f.write('\n'.join(lines))
            rc, out, err = run(f'--input_file={path}', '--num_steps=20', '--num_samples=2', *TINY, cwd=d)
        self.assertEqual(rc, 0, err)
        random.seed(m.seed)
        train, _ = m.split_docs('\n'.join(lines))
        self.assertIn(f'{sum(len(t) >= 8 for t in train)} train docs are longer than the context', out)


class Hostile(InTempDir):
    """Issue 9: hostile model files, numbers, signals, consoles and inputs."""

    def setUp(self):
        super().setUp()
        rc, _, err = run(f'--input_file={self.file}', '--num_steps=5', f'--save={self.model}', '--eval_docs=0',
                         '--num_samples=0', *TINY, cwd=self.d)
        self.assertEqual(rc, 0, err)
        with open(self.model) as f: self.good = json.load(f)

    def run_model(self, text, *args, code=2):
        path = os.path.join(self.d, 'bad.json')
        with open(path, 'w') as f: f.write(text)
        before = sorted(os.listdir(self.d))
        rc, out, err = run(f'--input_file={self.file}', f'--load={path}', '--num_steps=0', *args, cwd=self.d, timeout=60)
        self.assertEqual(rc, code, err)
        self.assertNotIn('Traceback', err)
        self.assertEqual(len(err.strip().splitlines()), 1, err)
        self.assertEqual(sorted(os.listdir(self.d)), before)
        return err

    def test_hostile_model_files(self):
        g = self.good
        sd = g['state_dict']
        # one number in the last position's row: no logit at position 0 depends on it
        big_row = lambda x: dict(g, state_dict=dict(sd, wpe=sd['wpe'][:-1] + [[x] + sd['wpe'][-1][1:]]))
        cases = {
            'a billion wide': json.dumps(dict(g, config=dict(g['config'], n_embd=10 ** 9, n_head=1))),
            'a billion layers': json.dumps(dict(g, config=dict(g['config'], n_layer=10 ** 9))),
            'NaN weight': json.dumps(big_row(float('nan'))),
            'Infinity weight': json.dumps(big_row(float('inf'))),
            '400-digit weight': json.dumps(big_row(0.5)).replace('[0.5,', '[' + '9' * 400 + ',', 1),
            'chars as numbers': json.dumps(dict(g, chars=list(range(len(g['chars']))))),
            'a repeated char': json.dumps(dict(g, chars=g['chars'][:-1] + g['chars'][:1])),
            'a two-char string': json.dumps(dict(g, chars=['ab'] + g['chars'][1:])),
            'bool config': json.dumps(dict(g, config=dict(g['config'], n_layer=True))),
            'a missing key': json.dumps({k: v for k, v in g.items() if k != 'chars'}),
            'nested 100,000 deep': '[' * 100000 + ']' * 100000,
            'not UTF-8': '\udcff',
        }
        for name, text in cases.items():
            with self.subTest(name):
                if name == 'not UTF-8':
                    path = os.path.join(self.d, 'bad.json')
                    with open(path, 'wb') as f: f.write(b'{"config": "\xff"}')
                    rc, _, err = run(f'--input_file={self.file}', f'--load={path}', cwd=self.d)
                    self.assertEqual(rc, 2, err)
                    self.assertNotIn('Traceback', err)
                    continue
                err = self.run_model(text)
                self.assertIn('bad.json', err)
                if name.endswith('weight'):
                    self.assertIn('wpe holds something other than finite decimal numbers', err)

    def test_non_finite_numbers(self):
        rc, out, err = run(f'--input_file={self.file}', f'--load={self.model}', '--num_steps=0', '--temperature=1e-310', cwd=self.d)
        self.assertEqual(rc, 0, err)  # nearly greedy, no overflow: scaled after subtracting the max
        self.assertEqual(len(re.findall('^sample', out, re.M)), 20)
        sd = self.good['state_dict']  # finite weights whose logits overflow to inf and nan
        huge = dict(self.good, state_dict=dict(sd, lm_head=[[1.5e308 * (-1) ** i for i in range(8)] for _ in sd['lm_head']]))
        err = self.run_model(json.dumps(huge), '--eval_docs=0')
        self.assertIn('nan or inf', err)

    def test_console_that_cannot_show_the_characters(self):
        path = os.path.join(self.d, 'cjk.txt')
        with open(path, 'w', encoding='utf-8') as f: f.write('\n'.join(['王芳', '李娜', '张伟', '刘洋', '陈静'] * 6))
        r = subprocess.run([sys.executable, os.path.join(ROOT, 'microgpt.py'), f'--input_file={path}', '--num_steps=20',
                            '--num_samples=3', *TINY], cwd=self.d, capture_output=True, timeout=120,
                           env=dict(os.environ, PYTHONIOENCODING='cp1252'))
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertNotIn(b'Traceback', r.stderr)
        self.assertIn(b'sample  1: ?', r.stdout)

    def test_an_endless_input(self):
        rc, out, err = run('--input_file=/dev/zero', cwd=self.d, timeout=120)
        self.assertEqual(rc, 2, err)
        self.assertIn('over 256 MB', err)

    def test_out_of_memory(self):
        import resource
        limit = 600 * 2 ** 20
        r = subprocess.run([sys.executable, os.path.join(ROOT, 'microgpt.py'), f'--input_file={self.file}', '--n_embd=4096'],
                           cwd=self.d, capture_output=True, text=True, timeout=120,
                           preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_AS, (limit, limit)))
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertEqual(r.stderr.strip(), 'microgpt: out of memory: the model or the data is too big for this machine')

    def test_sigterm_during_a_save_keeps_the_old_file(self):
        old = slurp(self.model)
        script = ('import os, runpy, signal, sys\n'
                  'os.fsync = lambda fd: os.kill(os.getpid(), signal.SIGTERM)\n'
                  f'sys.argv = ["microgpt.py", "--input_file={self.file}", "--num_steps=2", "--save={self.model}",'
                  f' "--n_embd=8", "--n_head=2", "--n_layer=2", "--block_size=8"]\n'
                  f'runpy.run_path({os.path.join(ROOT, "microgpt.py")!r}, run_name="__main__")\n')
        r = subprocess.run([sys.executable, '-c', script], cwd=self.d, capture_output=True, text=True, timeout=120)
        self.assertEqual(r.returncode, 130, r.stderr)
        self.assertEqual(r.stderr.strip(), 'microgpt: interrupted')
        self.assertEqual(slurp(self.model), old)
        self.assertEqual(sorted(os.listdir(self.d)), ['model.json', 'words.txt'])

    def test_sigterm_during_training_stops_it_like_ctrl_c(self):
        import signal, time
        p = subprocess.Popen([sys.executable, os.path.join(ROOT, 'microgpt.py'), f'--input_file={self.file}',
                              '--num_steps=10000000', '--num_samples=2', '--batch_size=4', '--workers=2', *TINY],
                             cwd=self.d, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.assertIn('train docs', p.stdout.readline())
        time.sleep(1.5)
        p.send_signal(signal.SIGTERM)
        out, err = p.communicate(timeout=120)
        self.assertEqual(p.returncode, 0, err)
        self.assertRegex(out, r'stopped by SIGTERM at step \d+\n(.*\n)+val loss .*\nsample  1: ')
        for pid in filter(str.isdigit, os.listdir('/proc')):  # no worker left behind
            try:
                with open(f'/proc/{pid}/cmdline', 'rb') as f: self.assertNotIn(self.d.encode(), f.read())
            except OSError:
                pass

    def test_ctrl_c_in_the_middle_of_adam_finishes_the_step(self):
        import signal
        tiny_model('--num_steps=50', vocab=''.join(WORDS), seed=13)
        real = m.adam_step
        def interrupted(step, mm, vv, lr):
            os.kill(os.getpid(), signal.SIGINT)  # arrives while Adam runs
            real(step, mm, vv, lr)
        with mock.patch.object(m, 'adam_step', interrupted):
            _, out = quiet(m.run_training, WORDS)
        self.assertIn('stopped by Ctrl-C at step 1', out)
        after = m.float_weights()
        tiny_model('--num_steps=50', vocab=''.join(WORDS), seed=13)
        m.batch_loss([m.encode(WORDS[0])])
        m.adam_step(0, [0.0] * len(m.params), [0.0] * len(m.params), m.learning_rate)
        self.assertEqual(after, m.float_weights())  # the whole of step 1, no more, no less


if __name__ == '__main__':
    unittest.main()
