"""Part 1 of microgpt.py, the GPT: data and tokenizer, autograd, model, loss, Adam and its
schedule, training, evaluation and sampling; and Part 1 cut from the file, running on its own,
and each part reading only names defined before it.

Every check is against something that shares no code with what it tests: central finite
differences, a closed form, published numbers, helpers.reference_logits (the same GPT written
the textbook way), or a second computation path. Each prints its max difference beside a named
tolerance. The classes follow Part 1's sections, in order. Part 1 on its own runs in a second
interpreter, started by setUpModule so that it runs beside the other tests.

    python -m unittest discover -s tests -p 'test_1*' -v
"""
import builtins, collections, math, os, random, re, shutil, subprocess, symtable, sys, tempfile
import tracemalloc, unittest, zlib
from unittest import mock

from tests.helpers import (Case, ROOT, SCRIPT, FD_STEP, FD_TOL, EXACT_TOL, WORDS, m, report,
                           tiny_model, doc_loss, grads, all_logits, reference_logits,
                           reference_losses, adam_spy, slurp, graph_nodes, live_values,
                           window_start)

SAME = 0.0            # two paths through the same operations in the same order: bit for bit
CHAIN_TOL = 1e-9      # a gradient through 100,000 nodes vs its closed form, relative
HELD_OUT_TOL = 0.01   # the share of input.txt's distinct names held out vs 10%
UNIFORM_TOL = 1e-3    # loss vs ln(vocab_size) with weights of std 0.001: logits ~1e-3
INIT_LOSS_TOL = 0.15  # untrained loss vs ln(vocab_size): logits of variance ~0.1, and few targets
STD_TOL = 0.004       # sample std of ~4,200 weights vs 0.08: ~4.5 of its standard errors
REL_STD_TOL = 0.06    # sample std vs 0.08 * sqrt(16 / n_embd), relative: 1,300 weights at least
SHARE_SIGMAS = 4      # a share of samples vs its probability, in binomial standard deviations
BITES = 1e-6          # a deliberately broken cache must be at least this far from the reference
LN27 = math.log(27)   # a uniform guess over input.txt's 26 letters and BOS


def weights():
    """The model's weights as plain floats, read off state_dict (not through Part 2)."""
    return {name: [[p.data for p in row] for row in mat] for name, mat in m.state_dict.items()}


def weight_diff(a, b):
    """The max difference between two sets of float weights."""
    return max(abs(x - y) for name in a for ra, rb in zip(a[name], b[name]) for x, y in zip(ra, rb))


def softmax(logits, temperature=1.0):
    top = max(logits)
    e = [math.exp((l - top) / temperature) for l in logits]
    return [x / sum(e) for x in e]


def tiny(*argv, vocab='abcdefghijklmnopqrstuvwxyz', seed=0):
    """tiny_model(), then argv, which may change TINY's shape too, and weights drawn anew."""
    tiny_model(vocab=vocab, seed=seed)
    m.configure(list(argv))
    random.seed(seed)
    m.use_weights()


def source_before(ruler):
    """microgpt.py up to the line that starts a ruler: 'Part 2', 'Part 3', 'Part 4' or 'The guard
    rails'; None: the whole file."""
    lines = slurp(SCRIPT, 'r').splitlines(keepends=True)
    if ruler is None:
        return ''.join(lines)
    cut = [i for i, line in enumerate(lines) if re.match(rf'# =+ {ruler}\b', line)]
    assert len(cut) == 1, f'one {ruler} ruler'
    return ''.join(lines[:cut[0]])


class Part1Case(Case):
    """Defaults; and a check that a call leaves a caller's pending graph as it was."""

    def check_caller_graph_survives(self, name, call):
        """A forward pass, then call(), then the pass's backward(): the same gradients as with
        nothing in between, with no_grad off and on."""
        tiny_model(vocab=''.join(WORDS))
        m.fused = False
        tokens = m.encode('sophia')
        doc_loss(tokens).backward()
        expected = [p.grad for p in m.params]
        for no_grad in (False, True):
            with self.subTest(no_grad=no_grad):
                m.no_grad = no_grad
                for p in m.params:
                    p.grad = 0.0
                loss = doc_loss(tokens)
                call()
                loss.backward()
                diff = max(abs(p.grad - g) for p, g in zip(m.params, expected))
                report(f'gradients with {name} between forward and backward, '
                       f'no_grad={no_grad}', diff, SAME)
                self.assertEqual(diff, SAME)


# --- data and tokenizer ------------------------------------------------------------------------

class ShippedData(Part1Case):
    def test_input_txt_is_the_names_dataset(self):
        raw = slurp(os.path.join(ROOT, 'input.txt'))
        names = raw.decode('ascii').split('\n')
        self.assertEqual(len(names), 32033)  # one name per line, no newline after the last
        self.assertTrue(all(re.fullmatch('[a-z]+', n) for n in names))
        shared = os.path.join(ROOT, '..', 'shared', 'data', 'names.txt')
        if os.path.exists(shared):  # beside the repository in CI: a byte-for-byte copy
            self.assertEqual(raw, slurp(shared))


class Split(Part1Case):
    """split_docs(): the documents are exactly the lines that are not blank (empty or whitespace
    only); a checksum of its text, not the seed, picks a document's side; the seed only shuffles
    the training documents."""

    def names(self):
        return slurp(os.path.join(ROOT, 'input.txt'), 'r').split('\n')

    def test_documents_are_exactly_the_lines(self):
        odd = ['\u2028', '\u2029', '\x85', '\x0c', '\x0b', '\x1c', '\x1d', '\x1e', '\r']
        lines = [f'a{c}b' for c in odd] + [' lead', 'trail ', '\ttab\t', ' \x0cx\u2028', 'x\r\ry']
        lines += ['cr\r', 'z']  # joined by CRLF below: 'cr\r\r\n' is the document 'cr\r'
        blank = ['  ', '\t', ' \x0c\t', '\u2028', '\x1c\x85', '\r']  # whitespace only: skipped
        text = ('\n'.join(lines[:6]) + '\r\n' + '\r\n'.join(lines[6:]) + '\n\n\r\n'
                + '\n'.join(blank) + '\n\r\n\n' + 'last\r')  # LF, CRLF, a final lone CR
        expected = [line for line in re.split(r'\r?\n', text) if line and not line.isspace()]
        self.assertEqual(expected, lines + ['last\r'])  # the oracle reads the text as meant
        random.seed(1)
        train, val = m.split_docs(text)
        self.assertEqual(sorted(train + val), sorted(expected))
        m.use_vocab(sorted(set(''.join(train + val))))
        self.assertTrue(set(odd + [' ', '\t']) <= set(m.chars))  # each one a token of its own
        for doc in expected:
            self.assertEqual(m.decode(m.encode(doc)), doc)
            self.assertEqual(len(m.encode(doc)), len(doc) + 2)

    def test_repeats_land_on_one_side(self):
        names = self.names()
        rng = random.Random(4)
        text = '\n'.join(names + rng.sample(names, 5000) + names[:300])
        random.seed(1)
        train, val = m.split_docs(text)
        self.assertEqual(set(train) & set(val), set())
        self.assertEqual(sorted(train + val), sorted(text.split('\n')))  # each line, as often

    def test_the_seed_shuffles_but_does_not_choose(self):
        text = '\n'.join(self.names()[:3000])
        splits = []
        for seed in (1, 2, 3):
            random.seed(seed)
            splits.append(m.split_docs(text))
        (t1, v1), (t2, v2), (t3, v3) = splits
        self.assertEqual(v1, v2)
        self.assertEqual(v1, v3)
        self.assertEqual(sorted(t1), sorted(t2))
        self.assertNotEqual(t1, t2)  # another order
        self.assertNotEqual(t1, t3)
        held = set(v1)
        self.assertEqual(v1, [d for d in text.split('\n') if d in held])  # in file order

    def test_held_out_by_checksum_in_any_file(self):
        names = self.names()
        random.seed(1)
        train, val = m.split_docs('\n'.join(names))
        distinct = set(names)
        by_crc = {d for d in distinct if zlib.crc32(d.encode('utf-8')) % 10 == 0}
        self.assertEqual(set(val), by_crc)  # recomputed here
        share = len(by_crc) / len(distinct)
        diff = report('share of distinct names held out vs 10%', abs(share - 0.1), HELD_OUT_TOL)
        self.assertLessEqual(diff, HELD_OUT_TOL)
        subset = random.Random(5).sample(sorted(distinct), 2000)
        sub_train, sub_val = m.split_docs('\n'.join(subset))
        self.assertEqual(set(sub_val), set(subset) & set(val))  # held out there: held out here
        self.assertEqual(set(sub_train), set(subset) & set(train))

    def test_paragraphs_a_closed_example(self):
        """paragraphs=True: each run of lines up to an empty line is one document, its line
        breaks kept; several empty lines end one paragraph; CRLF is a line break; a line of
        spaces is a line of the paragraph (only an empty line ends it)."""
        text = 'A:\nhi\n\nB:\nho\nhum\n\n\n\nA:\nhi\r\n\r\nC:\n  \nend\n'
        for paragraphs, expected in ((True, ['A:\nhi', 'B:\nho\nhum', 'A:\nhi', 'C:\n  \nend']),
                                     (False, ['A:', 'hi', 'B:', 'ho', 'hum', 'A:', 'hi', 'C:',
                                              'end'])):
            m.paragraphs = paragraphs
            random.seed(1)
            train, val = m.split_docs(text)
            self.assertEqual(sorted(train + val), sorted(expected), paragraphs)
        m.paragraphs = True
        m.use_vocab(sorted(set(text) - {'\r'}))
        self.assertEqual(m.decode(m.encode('B:\nho')), 'B:\nho')  # '\n': a token, kept
        self.assertEqual(len(m.encode('B:\nho')), 7)

    def test_paragraphs_are_held_out_by_checksum_as_lines_are(self):
        names = self.names()[:3000]
        paras = ['\n'.join(names[i:i + 3]) for i in range(0, len(names), 3)]
        m.paragraphs = True
        random.seed(1)
        train, val = m.split_docs('\n\n'.join(paras + paras[:50]))  # and 50 repeats
        self.assertEqual(sorted(train + val), sorted(paras + paras[:50]))
        self.assertEqual(set(val), {p for p in paras if zlib.crc32(p.encode('utf-8')) % 10 == 0})
        self.assertEqual(set(train) & set(val), set())
        self.assertGreater(len(set(val)), 60)  # about a tenth of 1,000

    def test_a_tiny_file_gets_one_document_on_each_side(self):
        names = sorted(set(self.names()))
        held = [d for d in names if zlib.crc32(d.encode('utf-8')) % 10 == 0]
        kept = [d for d in names if zlib.crc32(d.encode('utf-8')) % 10 != 0]
        for pair in (held[:2], kept[:2], [held[0], kept[0]]):  # both, neither, one by checksum
            random.seed(1)
            train, val = m.split_docs('\n'.join(pair + pair[:1]) + '\n')
            self.assertEqual(len(set(train)), 1, pair)
            self.assertEqual(len(set(val)), 1, pair)
            self.assertEqual(set(train) | set(val), set(pair))


class Tokenizer(Part1Case):
    def test_round_trip(self):
        docs = ['hello', 'café', 'straße', 'naïve 🙂 emoji', '漢字かな', 'mixed: ñ€😀']
        m.use_vocab(sorted(set(''.join(docs))))
        for doc in docs:
            ids = m.encode(doc)
            self.assertEqual(m.decode(ids), doc)
            self.assertEqual(len(ids), len(doc) + 2)  # a token per character, and BOS at each end
            self.assertEqual((ids[0], ids[-1]), (m.BOS, m.BOS))
            self.assertNotIn(m.BOS, ids[1:-1])
        self.assertEqual(m.BOS, len(m.chars))
        self.assertEqual(m.vocab_size, len(set(''.join(docs))) + 1)
        self.assertEqual(len(set(m.encode(''.join(docs))[1:-1])), len(m.chars))  # each its own id
        self.assertEqual([m.chars[i] for i in m.encode('straße')[1:-1]], list('straße'))


# --- autograd ----------------------------------------------------------------------------------

class ValueOps(Part1Case):
    """Every op, and Part 1's unfused building blocks: the value against float math, the gradient
    against central finite differences, at random points."""

    def setUp(self):
        super().setUp()
        m.fused = False  # Part 1's graph: a node per operation

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
                up[i] += FD_STEP
                down[i] -= FD_STEP
                numeric = (f(*up) - f(*down)) / (2 * FD_STEP)
                worst_grad = max(worst_grad, abs(xs[i].grad - numeric) / max(1.0, abs(numeric)))
        if show:
            report(f'{name} value vs float math', worst_value, EXACT_TOL)
            report(f'{name} grad vs finite differences', worst_grad, FD_TOL)
        self.assertLessEqual(worst_value, EXACT_TOL, name)
        self.assertLessEqual(worst_grad, FD_TOL, name)
        return worst_value, worst_grad

    def points(self, lo=-3.0, hi=3.0, n=50, away_from_zero=0.0):
        rng = random.Random(1234)
        pts = []
        while len(pts) < n:
            p = [rng.uniform(lo, hi) for _ in range(3)]
            if all(abs(x) > away_from_zero for x in p):
                pts.append(p)
        return pts

    def test_binary_ops_and_reflected_forms(self):
        ops = {'a+b': lambda a, b: a + b, 'a-b': lambda a, b: a - b,
               'a*b': lambda a, b: a * b, 'a/b': lambda a, b: a / b}
        for name, f in ops.items():
            self.check(name, f, self.points(away_from_zero=0.3), 2)
        consts = {'a+2': lambda a: a + 2, '2+a': lambda a: 2 + a, 'a-2': lambda a: a - 2,
                  '2-a': lambda a: 2 - a, 'a*2': lambda a: a * 2, '2*a': lambda a: 2 * a,
                  'a/2': lambda a: a / 2, '2/a': lambda a: 2 / a, '-a': lambda a: -a}
        for name, f in consts.items():
            self.check(name, f, self.points(away_from_zero=0.3), 1)

    def test_unary_ops(self):
        self.check('exp', lambda a: m.exp(a), self.points(), 1)
        self.check('log', lambda a: m.log(a), self.points(0.1, 5), 1)
        self.check('relu', lambda a: m.relu(a), self.points(away_from_zero=0.01), 1)
        for k in (2, 3, -1, 0.5, -0.5, -1.5):
            self.check(f'a**{k}', lambda a, k=k: a ** k, self.points(0.2, 4), 1)
        self.assertEqual(m.relu(m.Value(-1.0)).data, 0.0)
        self.assertEqual(m.data(m.Value(2.5)), m.data(2.5))

    def test_dot_softmax_and_cross_entropy(self):
        rng = random.Random(7)
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
            report(f'{name} (n = 1, 2, 5, 17) value vs float math', value, EXACT_TOL)
            report(f'{name} (n = 1, 2, 5, 17) grad vs finite differences', grad, FD_TOL)

    def test_rmsnorm_and_linear(self):
        rng = random.Random(8)
        pts = [[rng.uniform(-2, 2) for _ in range(4 + 12)] for _ in range(10)]
        for i in range(3):
            self.check(f'rmsnorm[{i}]', lambda *x, i=i: m.rmsnorm(list(x))[i], pts, 4)
            self.check(f'linear[{i}]', lambda *x, i=i: m.linear(
                list(x[:4]), [list(x[4 + 4 * r:8 + 4 * r]) for r in range(3)])[i], pts, 16)

    def test_sharing_accumulates_gradients(self):
        """A node that feeds several others, a Value used twice in one op, constants both sides."""
        def f(a, b):
            return a * b + a * a + 3 - a / b + m.relu(a) * 2
        self.check('shared a, b', f, self.points(away_from_zero=0.3), 2)

        def g(a):
            return m.dot([a, a, a], [a, 2.0 * a, a * a])  # a^2 + 2a^2 + a^3
        self.check('dot of one Value with itself', g, self.points(), 1)
        x = m.Value(1.5)
        (x * x).backward()
        self.assertEqual(x.grad, 3.0)  # d(x^2)/dx = 2x

    def test_relu_gradient_at_0_is_0(self):
        """relu has no derivative at 0; micrograd and PyTorch use 0 there (the check above steps
        around it). Value.relu, relu() on a Value, and both inside a graph: by hand."""
        for x, value, grad in ((-1e-300, 0.0, 0.0), (-0.0, 0.0, 0.0), (0.0, 0.0, 0.0),
                               (1e-300, 1e-300, 1.0), (2.0, 2.0, 1.0)):
            for relu in (m.Value.relu, m.relu):
                v = m.Value(x)
                out = relu(v)
                out.backward()
                self.assertEqual((out.data, v.grad), (value, grad), (relu, x))
            self.assertEqual(m.relu(x), value)  # on a float
        # f(a) = relu(3a) + 2 relu(relu(a)) + a at a = 0, where every relu meets its kink:
        # df/da = 0 + 0 + 1
        a = m.Value(0.0)
        f = m.relu(a * 3) + m.relu(a).relu() * 2 + a
        f.backward()
        self.assertEqual((f.data, a.grad), (0.0, 1.0))
        b = m.Value(1.0)  # and at b = 1, where both are open: 3 + 2 + 1
        g = m.relu(b * 3) + m.relu(b).relu() * 2 + b
        g.backward()
        self.assertEqual((g.data, b.grad), (6.0, 6.0))


class Backward(Part1Case):
    """backward(): no recursion limit, the numbers of a worked example, a graph by hand."""

    def test_chain_100000_deep(self):
        x = m.Value(0.5)
        y = x
        for _ in range(100000):
            y = y * 1.00001 + x  # y_k = c * y_(k-1) + x, so dy/dx = sum of c^j for j = 0..100000
        y.backward()
        c = 1.00001
        expected = (c ** 100001 - 1) / (c - 1)  # the geometric sum's closed form
        diff = report('100,000-deep chain, dy/dx vs closed form (relative)',
                      abs(x.grad - expected) / expected, CHAIN_TOL)
        self.assertLessEqual(diff, CHAIN_TOL)
        grad = x.grad
        with self.assertRaises(RuntimeError):  # the graph is used up...
            y.backward()
        self.assertEqual(x.grad, grad)  # ...and the failed call added nothing

    def test_micrograd_worked_example(self):
        """The expression in micrograd's README, whose printed results are 24.7041, 138.8338
        and 645.5773."""
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
        diff = max(abs(f.data - (6 + math.exp(2))), abs(x.grad - (3 + math.exp(2))),
                   abs(y.grad - 2.0))
        report('x*y + exp(x): value and gradients vs by hand', diff, EXACT_TOL)
        self.assertLessEqual(diff, EXACT_TOL)

    def test_a_used_up_graph_raises(self):
        """backward() twice on one root raises RuntimeError, as PyTorch does, in one line, and adds
        nothing: no silent second 2a. b and c are both a * a, made before b.backward(): c is its
        own graph, and its backward() adds its 2a = 6 (12), as in micrograd and PyTorch."""
        a = m.Value(3.0)
        b = a * a
        c = a * a
        b.backward()
        self.assertEqual(a.grad, 2 * 3.0)  # d(a^2)/da = 2a
        with self.assertRaises(RuntimeError) as cm:
            b.backward()
        self.assertIn('compute it again', str(cm.exception))
        self.assertNotIn('\n', str(cm.exception))
        self.assertEqual(a.grad, 6.0)  # the failed call added nothing
        c.backward()
        self.assertEqual(a.grad, 2 * 3.0 + 2 * 3.0)  # gradients add up: 6 + 6
        leaf = m.Value(2.0)  # a leaf has no graph to use up: its gradient is 1, no error
        leaf.backward()
        self.assertEqual(leaf.grad, 1.0)


class LikeMicrogradAndPyTorch(Part1Case):
    """The contract learners bring from micrograd and PyTorch (README, autograd): graphs are
    backpropagated on their own, in any order; a graph used up by backward() raises if used
    again, never passes on a wrong gradient; forward-only use keeps no memory; repr() shows data
    and grad; a Value exponent is a one-line error. Each against a closed form."""

    def test_graphs_from_the_same_leaves_are_independent(self):
        """y1 = x * x, y2 = x * 5 at x = 3: d(y1 + y2)/dx = 2x + 5 = 11, in either order."""
        for first in (0, 1):
            x = m.Value(3.0)
            ys = [x * x, x * 5]
            ys[first].backward()
            ys[1 - first].backward()
            self.assertEqual(x.grad, 2 * 3.0 + 5)

    def test_a_leafs_backward_touches_no_other_graph(self):
        """A pending loss, then backward() on an unrelated leaf: the loss's gradient is whole."""
        x = m.Value(3.0)
        loss = x * x * x  # d/dx = 3x^2 = 27
        other = m.Value(5.0)
        other.backward()
        self.assertEqual((other.grad, x.grad), (1.0, 0.0))
        loss.backward()
        self.assertEqual(x.grad, 3 * 3.0 ** 2)

    def test_a_used_up_node_in_a_new_graph_is_never_silently_wrong(self):
        """w = 2, h = w * w; (h * 3).backward(), then (h * 5).backward(): h was used up. The true
        sum is (3 + 5) * 2w = 32; the first alone 12. It raises (as PyTorch does) or gives 32."""
        w = m.Value(2.0)
        h = w * w
        (h * 3).backward()
        self.assertEqual(w.grad, 3 * 2 * 2.0)
        try:
            (h * 5).backward()
        except RuntimeError as e:
            self.assertNotIn('\n', str(e))
            self.assertEqual(w.grad, 12.0)  # nothing added by the call that raised
            print(f'  a used-up node in a new graph: RuntimeError({str(e)!r})')
        else:
            self.assertEqual(w.grad, (3 + 5) * 2 * 2.0)

    def test_forward_only_use_keeps_memory_bounded(self):
        """300,000 operations without backward(): the traced peak does not grow with the loop's
        length (against 3,000), and no Value made in the loop outlives it but the last y."""
        def peak(n):
            x = m.Value(2.0)
            before = live_values()
            tracemalloc.start()
            try:
                for _ in range(n // 2):
                    y = x * 2.0 + 1.0  # two operations, four Values
                size = tracemalloc.get_traced_memory()[1]
            finally:
                tracemalloc.stop()
            self.assertEqual(live_values() - before, 4)  # y, its two nodes, the constants
            return size
        short, long = peak(3000), peak(300000)
        print(f'  traced peak, 3,000 operations {short / 1e3:.1f} kB, 300,000 '
              f'{long / 1e3:.1f} kB')
        self.assertLess(long, 2 * short + 10000)

    def test_repr_shows_data_and_grad(self):
        x = m.Value(-1.5)
        self.assertEqual(repr(x), 'Value(data=-1.5, grad=0.0)')
        y = x * x
        y.backward()
        self.assertEqual(repr(x), f'Value(data={-1.5}, grad={2 * -1.5})')
        self.assertEqual(repr(y), f'Value(data={2.25}, grad={1.0})')

    def test_a_value_exponent_is_a_one_line_error(self):
        """x ** y with y a Value (and a number ** a Value): TypeError, one line, that says what
        to write instead; a number exponent is unchanged."""
        for base in (m.Value(2.0), 2.0):
            with self.assertRaises(TypeError) as cm:
                base ** m.Value(3.0)
            self.assertIn('(y * log(x)).exp()', str(cm.exception))
            self.assertNotIn('\n', str(cm.exception))
        self.assertEqual((m.Value(2.0) ** 3).data, 8.0)

# --- model -------------------------------------------------------------------------------------

class Initialization(Part1Case):
    """A sensible start at any width: init_std=None scales the std as 0.08 * sqrt(16 / n_embd),
    so the logits' variance, and the untrained loss, do not grow with the width."""

    def test_untrained_loss_is_near_a_uniform_guess_at_any_width(self):
        """Three corners of widths 8 to 256 and depths 1 to 8: the width alone (256 x 1, where
        an unscaled std 0.08 is off by 4.2) and the depth alone (8 x 8). The fourth, 256 x 8, took
        6 s (6 million weights drawn) and checks no line that these two do not."""
        vocab = sorted(set(''.join(WORDS)))
        for n_embd, n_layer, docs in ((8, 1, WORDS), (8, 8, WORDS), (256, 1, WORDS[:6])):
            m.n_embd, m.n_layer = n_embd, n_layer
            m.use_vocab(vocab)
            random.seed(m.seed)
            sd = m.init_weights()  # floats: no Value graph for 6 million weights
            if n_layer == 1:  # the std does not depend on the depth
                drawn = [x for mat in sd.values() for row in mat for x in row]
                std = math.sqrt(sum(x * x for x in drawn) / len(drawn))  # about the mean, 0
                expected_std = 0.08 * math.sqrt(16 / n_embd)
                rel = report(f'{n_embd} x 1: std of the weights vs 0.08 * sqrt(16 / n_embd) '
                             f'(relative)', abs(std / expected_std - 1), REL_STD_TOL)
                self.assertLessEqual(rel, REL_STD_TOL)
            losses = [loss for doc in docs for loss in m.doc_losses(m.encode(doc), sd)]
            loss = sum(losses) / len(losses)
            diff = report(f'{n_embd} x {n_layer}: untrained loss {loss:.3f} vs ln({m.vocab_size})',
                          abs(loss - math.log(m.vocab_size)), INIT_LOSS_TOL)
            self.assertLessEqual(diff, INIT_LOSS_TOL)

    def test_default_std_at_width_16_is_0_08(self):
        m.use_vocab('abcdefghijklmnopqrstuvwxyz')
        self.assertIsNone(m.init_std)
        random.seed(3)
        default = m.init_weights()
        m.init_std = 0.08
        random.seed(3)
        self.assertEqual(m.init_weights(), default)  # the same numbers, drawn the same way
        drawn = [x for mat in default.values() for row in mat for x in row]
        self.assertEqual(len(drawn), 4192)
        std = math.sqrt(sum(x * x for x in drawn) / len(drawn))  # about the mean, 0
        diff = report('sample std of the default weights at n_embd=16 vs 0.08', abs(std - 0.08),
                      STD_TOL)
        self.assertLessEqual(diff, STD_TOL)

    def test_tiny_weights_predict_uniformly(self):
        tiny_model('--init_std=0.001')  # near-uniform predictions: loss -> ln(vocab_size)
        loss = sum(doc_loss(m.encode(w), weights()) for w in WORDS) / len(WORDS)
        diff = report('loss with init_std=0.001 vs ln(vocab_size)',
                      abs(loss - math.log(m.vocab_size)), UNIFORM_TOL)
        self.assertLessEqual(diff, UNIFORM_TOL)

    def test_use_weights_makes_the_parameters(self):
        tiny_model(seed=2)
        given = weights()
        shapes = m.shapes()
        self.assertEqual({k: (len(v), len(v[0])) for k, v in given.items()}, shapes)
        n = 8  # TINY: n_embd=8, n_layer=2, block_size=8; 26 letters and BOS
        self.assertEqual(len(m.params), 27 * n * 2 + 8 * n + 2 * 12 * n * n)
        random.seed(9)
        m.use_weights()  # new random ones
        self.assertNotEqual(weights(), given)
        m.use_weights(given)  # these ones, exactly
        self.assertEqual(weights(), given)
        self.assertEqual(len(m.params), sum(r * c for r, c in shapes.values()))
        self.assertEqual(len(set(map(id, m.params))), len(m.params))  # each weight one Value


class SoftmaxAndRmsnorm(Part1Case):
    """softmax and rmsnorm against their definitions."""

    def test_softmax(self):
        rng = random.Random(5)
        worst = 0.0
        for fused in (False, True):
            m.fused = fused
            for n in (1, 3, 27):
                x = [rng.uniform(-5, 5) for _ in range(n)]
                exact = [math.exp(v) / sum(math.exp(u) for u in x) for v in x]
                for xs in (x, [m.Value(v) for v in x]):
                    p = [m.data(v) for v in m.softmax(xs)]
                    shifted = [m.data(v) for v in m.softmax([v + 100.0 for v in xs])]
                    worst = max([worst, abs(sum(p) - 1)] + [abs(a - b) for a, b in zip(p, exact)]
                                + [abs(a - b) for a, b in zip(shifted, exact)])
        report('softmax (and shifted by 100) vs exp(x_i) / sum exp(x_j)', worst, EXACT_TOL)
        self.assertLessEqual(worst, EXACT_TOL)
        self.assertAlmostEqual(m.softmax([1000.0, 0.0])[0], 1.0)  # no overflow: max subtracted

    def test_rmsnorm_mean_square_is_one(self):
        rng = random.Random(6)
        worst = 0.0
        for n in (2, 16, 64):
            x = [rng.uniform(-10, 10) for _ in range(n)]
            exact = [v / math.sqrt(sum(u * u for u in x) / n + 1e-5) for v in x]
            for xs in (x, [m.Value(v) for v in x]):
                y = [m.data(v) for v in m.rmsnorm(xs)]
                worst = max([worst] + [abs(a - b) for a, b in zip(y, exact)])
                self.assertAlmostEqual(sum(v * v for v in y) / n, 1.0, delta=1e-5)
        report('rmsnorm vs x / sqrt(mean(x^2) + 1e-5)', worst, EXACT_TOL)
        self.assertLessEqual(worst, EXACT_TOL)

    def test_softmax_where_logits_tie(self):
        """softmax subtracts max(logits), a float: where two logits tie for the max it has no
        derivative, but the shift cancels, so the gradient is p_i (1[i = j] - p_j) there as
        anywhere. Checked by that closed form at exact ties (where p = 1/n), and by central
        differences where the max changes inside the differences' step (a tie 1e-7 apart)."""
        cases = [[0.0] * 3, [5.0] * 4, [-300.0] * 2, [2.0, 2.0, 0.0, -1.0],
                 [2.0, 2.0 + 1e-7, 0.0], [1.0 - 1e-7, 1.0, 1.0 + 1e-7]]
        worst_closed = worst_fd = 0.0
        for fused in (False, True):
            m.fused = fused
            for logits in cases:
                n = len(logits)
                p = softmax(logits)
                if len(set(logits)) == 1:
                    worst_closed = max([worst_closed] + [abs(q - 1 / n) for q in p])
                for i in range(n):
                    xs = [m.Value(x) for x in logits]
                    out = m.softmax(xs)[i]
                    out.backward()
                    closed = [p[i] * ((i == j) - p[j]) for j in range(n)]
                    worst_closed = max([worst_closed, abs(out.data - p[i])] +
                                       [abs(x.grad - g) for x, g in zip(xs, closed)])
                    for j in range(n):
                        up, down = list(logits), list(logits)
                        up[j] += FD_STEP
                        down[j] -= FD_STEP
                        numeric = (softmax(up)[i] - softmax(down)[i]) / (2 * FD_STEP)
                        worst_fd = max(worst_fd, abs(xs[j].grad - numeric))
        report('softmax at ties: value and gradient vs p_i (1[i=j] - p_j)', worst_closed,
               EXACT_TOL)
        report('softmax at ties: gradient vs finite differences', worst_fd, FD_TOL)
        self.assertLessEqual(worst_closed, EXACT_TOL)
        self.assertLessEqual(worst_fd, FD_TOL)

    def test_rmsnorm_of_zeros_is_finite(self):
        """At x = 0 the mean square is 0, and the 1e-5 keeps the scale finite: s = 1e-5 ** -0.5.
        Its derivative is then s on the diagonal and 0 elsewhere (each term of d s / d x_j
        carries an x): d sum(w_i y_i) / d x_j = s w_j."""
        s = 1e-5 ** -0.5
        w = [1.0, -2.0, 0.5, 3.0]
        worst = 0.0
        for fused in (False, True):
            m.fused = fused
            xs = [m.Value(0.0) for _ in w]
            y = m.rmsnorm(xs)
            self.assertEqual([v.data for v in y], [0.0] * len(w))
            sum(yi * wi for yi, wi in zip(y, w)).backward()
            self.assertTrue(all(math.isfinite(x.grad) for x in xs))
            worst = max([worst] + [abs(x.grad - s * wj) / s for x, wj in zip(xs, w)])
        self.assertEqual(m.rmsnorm([0.0] * 4), [0.0] * 4)  # on floats
        report('rmsnorm at 0: gradient vs 1e-5 ** -0.5 * w (relative)', worst, EXACT_TOL)
        self.assertLessEqual(worst, EXACT_TOL)


class ReferenceModel(Part1Case):
    """gpt() against an independent forward pass: the whole sequence at once, a causal mask."""

    def test_logits_match_reference(self):
        for argv in ([], ['--n_head=1'], ['--n_layer=1', '--n_head=4'], ['--n_layer=3']):
            tiny(*argv, seed=11)
            tokens = m.encode('abcdefg')[:m.block_size]
            expected = reference_logits(weights(), tokens)
            for fused in (False, True, None):  # Value graph unfused, fused; plain floats
                m.fused = bool(fused)
                keys, values = m.empty_cache()
                sd = weights() if fused is None else None
                got = [[m.data(l) for l in m.gpt(tok, pos, keys, values, sd)]
                       for pos, tok in enumerate(tokens)]
                diff = max(abs(a - b) for ga, ea in zip(got, expected) for a, b in zip(ga, ea))
                path = 'floats' if fused is None else f'Values, fused={fused}'
                report(f'gpt() vs reference forward, {" ".join(argv) or "tiny"}, {path}', diff,
                       EXACT_TOL)
                self.assertLessEqual(diff, EXACT_TOL)

    def test_attention_weights_are_each_heads_softmax(self):
        tiny('--n_layer=1', seed=12)
        sd = weights()
        d = m.n_embd // m.n_head
        tokens = m.encode('emma')[:-1]

        def norm(x):
            return [v / math.sqrt(sum(u * u for u in x) / len(x) + 1e-5) for v in x]

        def matvec(w, x):
            return [sum(a * b for a, b in zip(row, x)) for row in w]
        x = [norm([a + b for a, b in zip(sd['wte'][tok], sd['wpe'][t])])
             for t, tok in enumerate(tokens)]
        keys, values = m.empty_cache()
        worst = 0.0
        for t, tok in enumerate(tokens):
            attention = []
            m.gpt(tok, t, keys, values, sd, attention)
            self.assertEqual(len(attention), m.n_layer * m.n_head)
            q = matvec(sd['layer0.attn_wq'], norm(x[t]))
            ks = [matvec(sd['layer0.attn_wk'], norm(x[s])) for s in range(t + 1)]
            for h in range(m.n_head):
                scores = [sum(a * b for a, b in zip(q[h * d:h * d + d], k[h * d:h * d + d]))
                          / math.sqrt(d) for k in ks]
                worst = max([worst] + [abs(a - b) for a, b in zip(attention[h], softmax(scores))])
                self.assertEqual(len(attention[h]), t + 1)  # the positions so far, no more
        report('attention weights vs softmax(q.k / sqrt(head_dim)) by hand', worst, EXACT_TOL)
        self.assertLessEqual(worst, EXACT_TOL)


class ClosedFormModel(Part1Case):
    """Weights chosen so that the output has a closed form. q = k = 0 makes attention a plain
    average of the values so far; v = o = identity; the MLP computes relu(-x). At position t,
        x0 = rms(wte[tok_t] + wpe[t]),  x1 = x0 + mean over s <= t of rms(x0_s),
        x2 = x1 + relu(-rms(x1)),
    and the logits are lm_head @ x2."""

    def test_logits_have_the_closed_form(self):
        tiny('--n_layer=1', '--n_embd=4', '--n_head=2', '--block_size=5', vocab='abc', seed=21)

        def eye(n):
            return [[float(i == j) for j in range(n)] for i in range(n)]

        def zeros(r, c):
            return [[0.0] * c for _ in range(r)]

        def rms(x):
            return [v / math.sqrt(sum(u * u for u in x) / len(x) + 1e-5) for v in x]
        sd = weights()
        sd.update({'layer0.attn_wq': zeros(4, 4), 'layer0.attn_wk': zeros(4, 4),
                   'layer0.attn_wv': eye(4), 'layer0.attn_wo': eye(4),
                   'layer0.mlp_fc1': [[-v for v in r] for r in eye(4)] + zeros(12, 4),
                   'layer0.mlp_fc2': [r + [0.0] * 12 for r in eye(4)]})
        tokens = m.encode('abca')[:-1]
        x0 = [rms([a + b for a, b in zip(sd['wte'][tok], sd['wpe'][t])])
              for t, tok in enumerate(tokens)]
        worst = 0.0
        m.use_weights(sd)
        for fused in (None, False, True):  # plain floats; Values unfused and fused
            m.fused = bool(fused)
            keys, values = m.empty_cache()
            for t, tok in enumerate(tokens):
                avg = [sum(rms(x0[s])[i] for s in range(t + 1)) / (t + 1) for i in range(4)]
                x1 = [a + b for a, b in zip(x0[t], avg)]
                x2 = [a + max(0.0, -b) for a, b in zip(x1, rms(x1))]
                expected = [sum(w * x for w, x in zip(row, x2)) for row in sd['lm_head']]
                got = m.gpt(tok, t, keys, values, sd if fused is None else None)
                worst = max([worst] + [abs(m.data(a) - b) for a, b in zip(got, expected)])
        report('gpt() vs closed form (uniform attention, relu(-x) MLP)', worst, EXACT_TOL)
        self.assertLessEqual(worst, EXACT_TOL)
        self.assertNotEqual(sd['lm_head'], sd['wte'])  # so that a tied output layer would show


class Causality(Part1Case):
    """The logits at position t depend only on tokens 0..t."""

    def test_future_tokens_do_not_change_the_past(self):
        tiny_model()
        a, b = all_logits('abcdefg'), all_logits('abcxyzq')  # the same first 3 characters
        for pos in range(4):  # positions 0..3 see BOS, a, b, c only
            self.assertEqual(a[pos], b[pos], f'position {pos}')
        self.assertNotEqual(a[4], b[4])  # position 4 sees 'd' vs 'x': the test tells them apart
        la = m.doc_losses(m.encode('abcdefg'), weights())
        lb = m.doc_losses(m.encode('abcxyzq'), weights())
        self.assertEqual(la[:3], lb[:3])  # predicting a, b, c reads BOS, a, b, c only
        self.assertNotEqual(la[3], lb[3])


class ModelGradients(Part1Case):
    def test_every_matrix_against_finite_differences(self):
        tiny_model()
        tokens = m.encode('abcdefghij')  # longer than block_size=8: the cut is exercised too
        rng = random.Random(3)
        for fused in (False, True):  # Part 1's graph, and the fused nodes training uses
            _, _, analytic = grads(tokens, fused)
            self.assertGreater(sum(g != 0 for g in analytic), len(analytic) // 2)
            worst = 0.0
            index = {id(p): i for i, p in enumerate(m.params)}
            for name, mat in m.state_dict.items():
                picks = [rng.choice(rng.choice(mat)) for _ in range(4)]
                if name == 'wte':  # a row the document uses is among them
                    picks.append(mat[tokens[1]][0])
                for p in picks:
                    old = p.data
                    p.data = old + FD_STEP
                    up = doc_loss(tokens, weights())
                    p.data = old - FD_STEP
                    down = doc_loss(tokens, weights())
                    p.data = old
                    numeric = (up - down) / (2 * FD_STEP)
                    worst = max(worst, abs(analytic[index[id(p)]] - numeric)
                                / max(1.0, abs(numeric)))
            report(f'model grad vs finite differences, fused={fused}', worst, FD_TOL)
            self.assertLessEqual(worst, FD_TOL)


# --- loss --------------------------------------------------------------------------------------

class Loss(Part1Case):
    def test_loss_is_that_of_the_next_token(self):
        tiny_model(vocab=''.join(WORDS), seed=5)
        for doc in ('abca', 'elizabeth', ''):  # short, longer than the context (8), empty
            tokens = m.encode(doc)
            expected = reference_losses(weights(), tokens)
            for fused in (False, True, None):
                m.fused = bool(fused)
                got = [m.data(loss) for loss in m.doc_losses(tokens, weights() if fused is None
                                                            else None)]
                self.assertEqual(len(got), len(doc) + 1)  # every prediction, once
                diff = max(abs(a - b) for a, b in zip(got, expected))
                report(f'doc_losses({doc!r}) vs -log softmax(reference)[next], fused={fused}',
                       diff, EXACT_TOL)
                self.assertLessEqual(diff, EXACT_TOL)
        for length in range(30):  # a prediction per token but the first, however long
            self.assertEqual(len(m.doc_losses(m.encode('a' * length), weights())), length + 1)

    def test_cross_entropy_never_takes_log_of_0(self):
        for fused in (False, True):
            m.fused = fused
            for xs in ([1000.0, -1000.0], [m.Value(1000.0), m.Value(-1000.0)]):
                loss = m.data(m.cross_entropy(xs, 1))  # -log(e^-2000 / (e^1000 + e^-1000))
                report(f'cross_entropy of logits +-1000 vs 2000, fused={fused}',
                       abs(loss - 2000.0), EXACT_TOL)
                self.assertAlmostEqual(loss, 2000.0, delta=EXACT_TOL)
                self.assertAlmostEqual(m.data(m.cross_entropy(xs, 0)), 0.0, delta=EXACT_TOL)

    def test_cross_entropy_where_logits_tie(self):
        """cross_entropy also shifts by a max that has no derivative at a tie. n equal logits:
        the loss is ln n and its gradient p - onehot = 1/n - 1[j = target]; ties for the max
        with other logits below: p - onehot with p computed here; and where the max changes
        inside the differences' step, central differences agree."""
        cases = [([0.0] * 3, 1), ([7.0] * 5, 4), ([2.0, 2.0, 0.0, -1.0], 0),
                 ([2.0, 2.0, 0.0, -1.0], 2), ([2.0, 2.0 + 1e-7, 0.0], 1)]

        def loss_of(logits, target):  # -log softmax(logits)[target], by the test's softmax
            return -math.log(softmax(logits)[target])
        worst_closed = worst_fd = 0.0
        for fused in (False, True):
            m.fused = fused
            for logits, target in cases:
                n = len(logits)
                xs = [m.Value(x) for x in logits]
                loss = m.cross_entropy(xs, target)
                loss.backward()
                p = [1 / n] * n if len(set(logits)) == 1 else softmax(logits)
                exact = math.log(n) if len(set(logits)) == 1 else loss_of(logits, target)
                closed = [q - (j == target) for j, q in enumerate(p)]
                worst_closed = max([worst_closed, abs(loss.data - exact)] +
                                   [abs(x.grad - g) for x, g in zip(xs, closed)])
                for j in range(n):
                    up, down = list(logits), list(logits)
                    up[j] += FD_STEP
                    down[j] -= FD_STEP
                    numeric = (loss_of(up, target) - loss_of(down, target)) / (2 * FD_STEP)
                    worst_fd = max(worst_fd, abs(xs[j].grad - numeric))
        report('cross_entropy at ties: loss and gradient vs ln n, p - onehot', worst_closed,
               EXACT_TOL)
        report('cross_entropy at ties: gradient vs finite differences', worst_fd, FD_TOL)
        self.assertLessEqual(worst_closed, EXACT_TOL)
        self.assertLessEqual(worst_fd, FD_TOL)

    def test_window(self):
        """A long document trains on one of the windows that doc_losses() reads, each as
        likely: 12 tokens (11 predictions), block_size 4: windows start every 2 tokens, the last
        one before 11 - 2 = 9: at 0, 2, 4, 6, 8, so a document's start (BOS) is one in 5."""
        tiny('--block_size=4')
        tokens = m.encode('abcdefghij')
        random.seed(3)
        starts = collections.Counter()
        for _ in range(1000):
            w = m.window(tokens)
            text = ''.join('^' if t == m.BOS else m.chars[t] for t in w)
            self.assertIn(text, '^abcdefghij^')  # a piece of the document, in order
            start = '^abcdefghij^'.index(text)
            starts[start] += 1
            self.assertEqual(len(w), min(5, 12 - start))
        self.assertEqual(sorted(starts), [0, 2, 4, 6, 8])  # those of window_start()
        self.assertEqual(sorted(starts), sorted({window_start(i) for i in range(11)}))
        self.assertGreater(min(starts.values()), 150)  # each about 200 times
        state = random.getstate()
        for doc in ('', 'abc'):  # fits (block_size + 1 tokens at most): as it is, no draw
            self.assertEqual(m.window(m.encode(doc)), m.encode(doc))
        self.assertEqual(random.getstate(), state)


# --- Adam and the schedule ---------------------------------------------------------------------

class Adam(Part1Case):
    def test_first_step_moves_by_the_learning_rate(self):
        tiny_model()
        m.fused = False
        loss = doc_loss(m.encode('hello'))
        loss.backward()
        before = [(p.data, p.grad) for p in m.params]
        lr = 0.01
        m.adam_step(0, [0.0] * len(m.params), [0.0] * len(m.params), lr)
        # at step 1, m_hat = g and v_hat = g^2: each parameter moves by lr * |g| / (|g| + eps)
        moved = [(abs(p.data - d), lr * abs(g) / (abs(g) + m.eps))
                 for p, (d, g) in zip(m.params, before) if g != 0]
        still = [abs(p.data - d) for p, (d, g) in zip(m.params, before) if g == 0]
        self.assertGreater(len(moved), 100)
        self.assertGreater(len(still), 10)  # wte rows of letters not in 'hello'
        diff = report('Adam step 1: |move| vs lr*|g|/(|g|+eps) (relative)',
                      max(abs(x - e) / e for x, e in moved), EXACT_TOL)
        self.assertLessEqual(diff, EXACT_TOL)
        self.assertGreater(sum(abs(x - lr) < lr * 1e-3 for x, _ in moved), 0.9 * len(moved))
        self.assertEqual(max(still), 0.0)
        self.assertTrue(all(p.grad == 0.0 for p in m.params))  # and the gradients are reset

    def test_matches_the_formula_over_steps(self):
        """Three steps on one parameter with made-up gradients, against Adam written out."""
        p = m.Value(1.0)
        with mock.patch.object(m, 'params', [p], create=True):
            ms, vs = [0.0], [0.0]
            x, mm, vv = 1.0, 0.0, 0.0
            worst = 0.0
            b1, b2, eps = m.beta1, m.beta2, m.eps
            for t, g in enumerate([0.5, -0.2, 0.1]):
                p.grad = g
                m.adam_step(t, ms, vs, 0.01)
                mm = b1 * mm + (1 - b1) * g
                vv = b2 * vv + (1 - b2) * g * g
                x -= 0.01 * (mm / (1 - b1 ** (t + 1))) / (math.sqrt(vv / (1 - b2 ** (t + 1))) + eps)
                worst = max(worst, abs(p.data - x))
        report('Adam over 3 steps vs the formula', worst, EXACT_TOL)
        self.assertLessEqual(worst, EXACT_TOL)

    def test_learning_rate_decays_linearly(self):
        tiny_model('--num_steps=10', '--learning_rate=0.02', vocab=''.join(WORDS))
        record = []
        with adam_spy(record):
            steps = [step for step, _, _ in m.train(WORDS, [0.0] * len(m.params),
                                                    [0.0] * len(m.params))]
        self.assertEqual(steps, list(range(10)))
        expected = [0.02 * (1 - s / 10) for s in range(10)]  # 0.02 at step 1, 0.002 at the last
        diff = report('learning rate vs 0.02 * (1 - step / 10)',
                      max(abs(r[0] - e) for r, e in zip(record, expected)), EXACT_TOL)
        self.assertEqual(len(record), 10)
        self.assertLessEqual(diff, EXACT_TOL)


# --- training ----------------------------------------------------------------------------------

class Training(Part1Case):
    def fresh(self, seed, *argv):
        tiny_model(*argv, vocab=''.join(WORDS), seed=seed)
        return [0.0] * len(m.params), [0.0] * len(m.params)

    def test_loss_goes_down(self):
        mm, vv = self.fresh(0, '--num_steps=150', '--learning_rate=0.02')
        m.no_grad = False  # Part 1's own evaluate()
        before = m.evaluate(WORDS)
        losses = [loss for _, loss, _ in m.train(WORDS * 8, mm, vv)]
        after = m.evaluate(WORDS)
        print(f'  loss on the training words: {before:.3f} before, {after:.3f} after 150 steps')
        self.assertEqual(len(losses), 150)
        self.assertLess(after, before - 1.0)
        self.assertLess(sum(losses[-30:]) / 30, sum(losses[:30]) / 30 - 0.5)

    def test_batch_size_1_is_one_document_per_step(self):
        """train() with batch_size=1 against the textbook loop written here: the same weights
        (Part 2's fused nodes and tape off: the same additions in the same order)."""
        docs = ['emma', 'olivia', 'ava', 'sophia', 'mia', 'amelia']  # each fits in the context
        mm, vv = self.fresh(6, '--num_steps=6', '--fused=False', '--tape=False')
        losses = [loss for _, loss, _ in m.train(docs, mm, vv)]
        trained = weights()
        mm, vv = self.fresh(6, '--num_steps=6', '--fused=False', '--tape=False')
        by_hand = []
        for step, doc in enumerate(docs):
            loss = doc_loss(m.encode(doc))
            by_hand.append(loss.data)
            loss.backward()
            m.adam_step(step, mm, vv, m.learning_rate * (1 - step / 6))
        report('train(), batch_size=1, vs a loop by hand: weights after 6 steps',
               weight_diff(weights(), trained), SAME)
        self.assertEqual(weights(), trained)
        self.assertEqual(losses, by_hand)

    def test_batch_gradient_is_the_mean_of_the_documents_gradients(self):
        self.fresh(7, '--fused=False')
        batch = [m.encode(w)[:m.block_size + 1] for w in WORDS[:5]]  # windows, as train() makes
        singles, single_losses = [], []
        for tokens in batch:
            single_losses.append(m.batch_loss([tokens]))
            singles.append([p.grad for p in m.params])
            for p in m.params:
                p.grad = 0.0
        loss = m.batch_loss(batch)
        mean = [sum(g) / len(batch) for g in zip(*singles)]
        scale = max(abs(g) for g in mean)
        diff = max(abs(p.grad - g) / max(abs(g), 1e-6 * scale) for p, g in zip(m.params, mean))
        report('batch gradient vs mean of single-document gradients (relative)', diff, EXACT_TOL)
        self.assertLessEqual(diff, EXACT_TOL)
        report('batch loss vs mean of single-document losses', abs(loss - sum(single_losses) / 5),
               EXACT_TOL)
        self.assertAlmostEqual(loss, sum(single_losses) / 5, delta=EXACT_TOL)

    def test_start_goes_on_where_it_stopped(self):
        """Six steps at once, and three then three more from start=3 with the same m and v."""
        docs = WORDS[:4]
        mm, vv = self.fresh(8, '--num_steps=6', '--batch_size=2')
        whole = [loss for _, loss, _ in m.train(docs, mm, vv)]
        once = weights()
        mm, vv = self.fresh(8, '--num_steps=6', '--batch_size=2')
        parts = []
        for step, loss, _ in m.train(docs, mm, vv):
            parts.append(loss)
            if step == 2:
                break
        parts += [loss for _, loss, _ in m.train(docs, mm, vv, start=3)]
        report('6 steps at once vs 3, then 3 from start=3: weights', weight_diff(weights(), once),
               SAME)
        self.assertEqual(parts, whole)
        self.assertEqual(weights(), once)

    def test_yields_the_batch_it_trained_on(self):
        """Each step yields its batch: the documents in turn, batch_size of them, a long one
        as one of its windows (block_size + 1 of its tokens, or its end); and the loss it yields is the reference
        model's mean loss on that batch, with the weights the step started from."""
        docs = ['emma', 'elizabeth', 'ava', 'abigail', 'scarlett']  # 2 longer than the context
        mm, vv = self.fresh(9, '--num_steps=4', '--batch_size=2')
        start = weights()
        seen = 0
        for step, loss, batch in m.train(docs, mm, vv):
            self.assertEqual(len(batch), 2)
            for j, tokens in enumerate(batch):
                whole = m.encode(docs[(2 * step + j) % len(docs)])
                full = min(len(whole), m.block_size + 1)  # the last window may be shorter
                self.assertTrue(len(tokens) == full or whole[-len(tokens):] == tokens)
                self.assertTrue(any(whole[k:k + len(tokens)] == tokens for k in range(len(whole))))
                seen += len(whole) > len(tokens)
            expected = sum(sum(ls) / len(ls) for ls in (reference_losses(start, t)
                                                        for t in batch)) / len(batch)
            diff = report(f'step {step + 1}: loss vs the reference on the batch it yields',
                          abs(loss - expected), EXACT_TOL)
            self.assertLessEqual(diff, EXACT_TOL)
            start = weights()  # after the step's update: where the next one starts
        self.assertEqual(step, 3)
        self.assertGreater(seen, 1)  # windows were cut


# --- evaluation --------------------------------------------------------------------------------

class Evaluation(Part1Case):
    def test_evaluate_against_reference_losses(self):
        """The mean over every prediction of -log softmax(reference logits)[next]: this fixes the
        number of predictions per document (len + 1, every one) and the mean per token."""
        tiny('--block_size=6', vocab=''.join(WORDS), seed=4)
        docs = WORDS[:8] + ['a', 'elizabeth']  # short, and longer than the context: windows
        losses = [loss for doc in docs for loss in reference_losses(weights(), m.encode(doc))]
        self.assertEqual(len(losses), sum(len(doc) + 1 for doc in docs))
        for part2, no_grad, fused in ((True, True, True), (True, False, False),
                                      (True, False, True), (False, True, True)):  # Part 1's
            m.part2, m.no_grad, m.fused = part2, no_grad, fused
            state = random.getstate()
            diff = abs(m.evaluate(docs) - sum(losses) / len(losses))
            self.assertEqual(random.getstate(), state)  # no number drawn: the samples after a
            # final evaluation are those without it (test_5's recipe counts them with none)
            report(f'evaluate() vs reference, part2={part2} no_grad={no_grad} fused={fused}',
                   diff, EXACT_TOL)
            self.assertLessEqual(diff, EXACT_TOL)

    def test_a_document_three_contexts_long_is_scored_token_for_token(self):
        """Each of its 3 * block_size predictions scored once, against the reference forward pass
        over the tokens it reads (helpers.window_start), by doc_losses on Values, fused or not,
        and on floats; and evaluate(), Part 1's and Part 2's, is their mean. An even, an odd
        and the smallest block_size."""
        text = 'elizabethscarlettabigailharperevelyn'
        for block_size in (8, 5, 1):
            tiny(f'--block_size={block_size}', vocab=text, seed=6)
            doc = text[:3 * block_size - 1]  # and the end: 3 * block_size predictions
            want = reference_losses(weights(), m.encode(doc))
            self.assertEqual(len(want), 3 * block_size)
            for fused, sd in ((False, None), (True, None), (False, weights())):
                m.fused = fused
                got = [m.data(loss) for loss in m.doc_losses(m.encode(doc), sd)]
                self.assertEqual(len(got), len(want))
                diff = report(f'block_size={block_size}: doc_losses, fused={fused}, floats='
                              f'{sd is not None}, vs the reference, token for token',
                              max(abs(a - b) for a, b in zip(got, want)), EXACT_TOL)
                self.assertLessEqual(diff, EXACT_TOL)
            both = want + reference_losses(weights(), m.encode('ella'))
            for part2 in (False, True):
                m.part2 = part2
                diff = abs(m.evaluate([doc, 'ella']) - math.fsum(both) / len(both))
                report(f'block_size={block_size}: evaluate(), part2={part2}', diff, EXACT_TOL)
                self.assertLessEqual(diff, EXACT_TOL)

    def test_no_graph_is_left_behind(self):
        tiny_model(vocab=''.join(WORDS))
        alive = live_values()
        for fused in (False, True):
            m.no_grad, m.fused = False, fused  # Part 1's evaluate(), on Values
            made = []
            real = m.doc_losses

            def doc_losses(tokens, sd=None):
                losses = real(tokens, sd)
                made.append(len(graph_nodes(*losses)))
                return losses
            with mock.patch.object(m, 'doc_losses', doc_losses):
                m.evaluate(WORDS[:5])
            self.assertEqual(len(made), 5)
            self.assertGreater(min(made), 100)  # a graph was built for each document...
            self.assertEqual(live_values(), alive)  # ...and none is left

    def test_a_graph_built_before_survives(self):
        """evaluate() leaves alone a graph the caller built before and has not yet used: the
        caller's backward() after it gives the gradients it gives without it."""
        self.check_caller_graph_survives('evaluate()', lambda: m.evaluate(WORDS[:3]))


# --- sampling ----------------------------------------------------------------------------------

class Sampling(Part1Case):
    """sample() against a stub model whose next-token distribution the test chooses."""

    def stub(self, choose):
        """A stand-in for gpt(): logits that put (almost) all mass on choose(pos): a character,
        or None for BOS."""
        fed = []

        def gpt(token_id, pos_id, keys, values, sd=None, attention=None):
            fed.append(token_id)
            target = choose(pos_id)
            hot = m.BOS if target is None else m.stoi[target]
            return [100.0 if i == hot else 0.0 for i in range(m.vocab_size)]
        return gpt, fed

    def test_stops_at_bos_and_at_block_size(self):
        tiny_model()
        gpt, fed = self.stub(lambda pos: 'a' if pos < 2 else None if pos == 2 else 'b')
        with mock.patch.object(m, 'gpt', gpt):
            self.assertEqual(m.sample(), 'aa')  # BOS at position 2 ends the sample
        self.assertEqual(fed, [m.BOS, m.stoi['a'], m.stoi['a']])
        gpt, fed = self.stub(lambda pos: 'z')
        with mock.patch.object(m, 'gpt', gpt):
            self.assertEqual(m.sample(), 'z' * m.block_size)  # never BOS: cut at the context
        self.assertEqual(len(fed), m.block_size)

    def test_prompt_is_fed_then_continued(self):
        tiny_model('--prompt=cab')
        gpt, fed = self.stub(lambda pos: 'e' if pos < 5 else None)
        with mock.patch.object(m, 'gpt', gpt):
            self.assertEqual(m.sample(), 'cabee')
        self.assertEqual(fed, m.encode('cabee')[:-1])  # BOS, the prompt, then its own choices

    def test_the_prompt_goes_through_encode(self):
        """The real gpt(), watched: it reads BOS and the prompt's ids, at positions 0, 1, ...
        With character tokens, the ids are the characters' places in the vocabulary; with a
        merge of 'a' and 'b' (Part 3's encode), 'ab' is read as one token: the new id, 26."""
        letters = 'abcdefghijklmnopqrstuvwxyz'
        for merged in (False, True):
            tiny_model('--prompt=cab', seed=3)
            if merged:
                m.use_merges([(letters.index('a'), letters.index('b'))])
                m.use_weights()
            expected = [m.BOS] + ([2, 26] if merged else [letters.index(c) for c in 'cab'])
            for part2 in (True, False):
                m.part2 = part2
                random.seed(1)
                with mock.patch.object(m, 'gpt', wraps=m.gpt) as gpt:
                    text = m.sample()
                read = [(c.args[0], c.args[1]) for c in gpt.call_args_list]
                self.assertEqual(read[:len(expected)], list(zip(expected, range(len(expected)))),
                                 f'merged={merged} part2={part2}')
                self.assertEqual([pos for _, pos in read], list(range(len(read))))
                self.assertTrue(text.startswith('cab'), text)
        self.assertEqual(m.BOS, 27)  # 26 letters, 'ab', then BOS

    def test_a_prompt_one_shorter_than_the_context(self):
        """A prompt of block_size - 1 characters (the longest allowed): the model reads BOS and
        the prompt, block_size positions, draws one token there and stops: prompt + 1 character
        (or the prompt alone if it draws BOS), never a position past the context."""
        prompt = 'abcdefg'
        tiny_model(f'--prompt={prompt}')
        self.assertEqual(len(prompt), m.block_size - 1)
        gpt, fed = self.stub(lambda pos: 'z')
        with mock.patch.object(m, 'gpt', gpt):
            self.assertEqual(m.sample(), prompt + 'z')
        self.assertEqual(fed, m.encode(prompt)[:-1])  # block_size tokens read
        gpt, fed = self.stub(lambda pos: None)
        with mock.patch.object(m, 'gpt', gpt):
            self.assertEqual(m.sample(), prompt)
        for part2 in (True, False):  # the real model, on floats and on Values
            m.part2 = part2
            random.seed(2)
            with mock.patch.object(m, 'gpt', wraps=m.gpt) as real:
                text = m.sample()
            self.assertEqual([c.args[1] for c in real.call_args_list], list(range(m.block_size)))
            self.assertIn(text[len(prompt):], [''] + list('abcdefghijklmnopqrstuvwxyz'))
            self.assertTrue(text.startswith(prompt))

    def test_temperature_reshapes_the_distribution(self):
        """Logits (0, ln 2): probabilities 1/3, 2/3 at temperature 1, 1/5, 4/5 at 0.5."""
        tiny_model(vocab='ab')

        def gpt(token_id, pos_id, keys, values, sd=None, attention=None):
            return [0.0, math.log(2), -1000.0] if pos_id == 0 else [-1000.0, -1000.0, 0.0]
        for temperature, p_b in ((1.0, 2 / 3), (0.5, 4 / 5)):
            m.temperature = temperature
            random.seed(1)
            n = 2000
            with mock.patch.object(m, 'gpt', gpt):
                share = sum(m.sample() == 'b' for _ in range(n)) / n
            sigma = math.sqrt(p_b * (1 - p_b) / n)
            diff = report(f'share of b at temperature {temperature} vs {p_b:.3f} (in sigmas)',
                          abs(share - p_b) / sigma, SHARE_SIGMAS)
            self.assertLess(diff, SHARE_SIGMAS)


class SamplingMatchesReference(Part1Case):
    """What sample() draws each token from, through gpt() and its KV cache, against
    softmax(reference_logits(the whole prefix so far)[-1] / temperature) computed here."""

    def drawn(self):
        """One sample(), and the probabilities it drew each token from."""
        with mock.patch.object(random, 'choices', wraps=random.choices) as spy:
            text = m.sample()
        return text, [call[1]['weights'] for call in spy.call_args_list]

    def worst(self, n_samples=3):
        """The max difference over n_samples samples, and how many draws it covers."""
        sd = weights()
        worst, draws = 0.0, 0
        for _ in range(n_samples):
            text, probs = self.drawn()
            p = len(m.prompt)
            self.assertTrue(text.startswith(m.prompt))
            self.assertEqual(len(probs), len(text) - p + (len(text) < m.block_size))
            tokens = [m.BOS] + [m.stoi[c] for c in text]
            for i, got in enumerate(probs):
                logits = reference_logits(sd, tokens[:p + i + 1])[-1]
                expected = softmax(logits, m.temperature)
                worst = max([worst] + [abs(a - b) for a, b in zip(got, expected)])
            draws += len(probs)
        return worst, draws

    def test_kv_cache_against_reference(self):
        for n_layer in (1, 2, 3):
            for prompt in ('', 'em'):
                for no_grad, fused in ((True, True), (False, False), (False, True)):
                    tiny(f'--n_layer={n_layer}', f'--prompt={prompt}', '--temperature=0.7',
                         seed=n_layer)
                    m.no_grad, m.fused = no_grad, fused
                    random.seed(5)
                    worst, draws = self.worst()
                    report(f'sample() draws vs reference, n_layer={n_layer} prompt={prompt!r} '
                           f'no_grad={no_grad} fused={fused} ({draws} draws)', worst, EXACT_TOL)
                    self.assertLessEqual(worst, EXACT_TOL)
                    self.assertGreaterEqual(draws, 8)  # positions beyond the first are read

    def test_the_check_catches_a_broken_cache(self):
        """The comparison above fails for a cache shared by all layers, and for one that does not
        carry from one position to the next."""
        real_gpt, real_cache = m.gpt, m.empty_cache

        def shared():
            return [[]] * m.n_layer, [[]] * m.n_layer

        def forgetful(token_id, pos_id, keys, values, sd=None, attention=None):
            return real_gpt(token_id, pos_id, *real_cache(), sd, attention)
        for name, target, broken, layers in (('one cache for all layers', 'empty_cache', shared,
                                              (2, 3)),
                                             ('a cache that forgets', 'gpt', forgetful, (1, 2))):
            for n_layer in layers:
                for no_grad in (True, False):
                    tiny(f'--n_layer={n_layer}', '--temperature=0.7', seed=n_layer)
                    m.no_grad = no_grad
                    random.seed(5)
                    with mock.patch.object(m, target, broken):
                        worst, _ = self.worst(n_samples=1)
                    print(f'  {name}, n_layer={n_layer}, no_grad={no_grad}: max diff '
                          f'{worst:.2e} (must exceed {BITES:.0e})')
                    self.assertGreater(worst, BITES)

    def test_a_tiny_temperature_is_greedy(self):
        """At temperature 1e-310 (allowed: finite and > 0) every draw is the most likely token:
        the sample is the reference model's greedy continuation, on floats and on Values."""
        for no_grad in (True, False):
            tiny_model('--prompt=e', seed=13)
            m.temperature, m.no_grad = 1e-310, no_grad
            sd = weights()
            tokens = [m.BOS, m.stoi['e']]
            while len(tokens) <= m.block_size:
                logits = reference_logits(sd, tokens)[-1]
                best = max(range(m.vocab_size), key=logits.__getitem__)
                if best == m.BOS:
                    break
                tokens.append(best)
            random.seed(0)
            with self.subTest(no_grad=no_grad):
                try:
                    got = m.sample()
                except ArithmeticError as e:
                    self.fail(f'sample() raised {e!r}')
                self.assertEqual(got, m.decode(tokens))

    def test_no_graph_is_left_behind(self):
        for fused in (False, True):
            tiny_model(seed=3)
            alive = live_values()
            m.no_grad, m.fused = False, fused  # Part 1's sample(), on Values
            sizes = []
            real = random.choices

            def choices(*args, **kwargs):
                sizes.append(live_values() - alive)
                return real(*args, **kwargs)
            with mock.patch.object(random, 'choices', choices):
                for _ in range(3):
                    m.sample()
            self.assertGreater(min(sizes), 100)  # a graph was there at each draw...
            self.assertEqual(live_values(), alive)  # ...and none is left

    def test_a_graph_built_before_survives(self):
        """sample() leaves alone a graph the caller built before and has not yet used: the
        caller's backward() after it gives the gradients it gives without it."""
        self.check_caller_graph_survives('sample()', m.sample)


# --- Part 1 on its own, and the file cut at every ruler ---------------------------------------

CUT_SETTINGS = """
input_file = 'small.txt'
num_steps = 20
num_samples = 3
main()
"""  # appended to each cut: a later assignment wins, as a learner's edit would
FOLDER = []  # the cuts' folder, with small.txt: the first 80 names
CUTS = {}  # ruler -> the process running the file cut there; None: the whole file, as run


def setUpModule():  # the runs start here, so that they go on beside the tests
    FOLDER.append(tempfile.mkdtemp())
    with open(os.path.join(FOLDER[0], 'small.txt'), 'w') as f:
        f.writelines(slurp(os.path.join(ROOT, 'input.txt'), 'r').splitlines(True)[:80])
    lines = slurp(SCRIPT, 'r').splitlines(keepends=True)
    rulers = [i for i, line in enumerate(lines) if line.startswith('# ====')]
    for i in rulers[1:]:
        ruler = lines[i].strip('# =\n').split(':')[0]  # 'Part 2', ..., 'The guard rails'
        path = os.path.join(FOLDER[0], f'cut{i}.py')
        with open(path, 'w', encoding='utf-8') as f:
            f.write(''.join(lines[:i]) + CUT_SETTINGS)
        CUTS[ruler] = subprocess.Popen([sys.executable, path], cwd=FOLDER[0], text=True,
                                       stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    CUTS[None] = subprocess.Popen(
        [sys.executable, SCRIPT, '--input_file=small.txt', '--num_steps=20', '--num_samples=3'],
        cwd=FOLDER[0], text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def tearDownModule():  # whatever the tests did: every process ended and waited for
    for process in CUTS.values():
        process.kill()
        process.communicate()
    CUTS.clear()
    for folder in FOLDER:
        shutil.rmtree(folder)
    FOLDER.clear()


class EveryRulerIsACut(Part1Case):
    """The file cut at each `# ====` ruler, with main() appended, trains and samples in a fresh
    interpreter: the cuts at Parts 2, 3 and 4 with Part 1's main(), the cut at the guard rails
    with Part 4's. Each reports what the whole file reports for the same settings given as
    flags: the same training losses, the same held-out loss."""

    def finished(self, ruler):
        out, err = CUTS[ruler].communicate(timeout=600)
        self.assertEqual((CUTS[ruler].returncode, err), (0, ''), ruler)
        return out

    @staticmethod
    def numbers(out):
        """The held-out loss and {step: loss} of each step line that a run prints."""
        return (re.findall(r'^val loss (\d+\.\d+)', out, re.M),
                dict(re.findall(r'^step +(\d+)/20 \| loss (\d+\.\d+)', out, re.M)))

    def test_each_cut_trains_and_samples_as_the_whole_file_does(self):
        val, steps = self.numbers(self.finished(None))
        self.assertEqual(len(val), 1)
        self.assertEqual(len(steps), 10)  # a line every tenth of the run
        self.assertEqual(list(CUTS), ['Part 2', 'Part 3', 'Part 4', 'The guard rails', None])
        for ruler in ['Part 2', 'Part 3', 'Part 4', 'The guard rails']:
            with self.subTest(cut_at=ruler):
                out = self.finished(ruler)
                self.assertEqual(self.numbers(out), (val, steps), out)
                self.assertEqual(len(re.findall(r'^sample +\d+: [a-z]+$', out, re.M)), 3, out)
                part4 = ruler == 'The guard rails'  # Part 4's main(), else Part 1's
                self.assertEqual('check: Part 2 equals Part 1' in out, part4, out)
        print(f'  the file cut at each of the 4 rulers, and whole: val loss {val[0]}, the same '
              f'10 step losses')


    def test_a_flag_given_to_the_cut_without_guard_rails_is_refused_not_ignored(self):
        """Part 4 alone reads no flag: main(['--num_steps=5']) says so in one line, rather
        than training 1000 steps as if the flag were not there."""
        source = source_before('The guard rails')
        ns = {'__name__': 'cut'}
        exec(compile(source, 'cut.py', 'exec'), ns)
        with self.assertRaises(ns['MicrogptError']) as cm:
            ns['main'](['--num_steps=5'])
        self.assertEqual(str(cm.exception), "'--num_steps=5': the guard rails that read flags are "
                         "cut from this file; assign the setting before main() instead (name = value)")


class PartsReadOnlyWhatIsAbove(Part1Case):
    """No part reads a name that only a later part defines (checked with symtable)."""

    @staticmethod
    def foreign_reads(source):
        """{name: scopes} of the global names that source reads but does not define: not
        assigned or imported at its top level, nor declared global and assigned in one of its
        functions; builtins excepted. Scopes: the functions that read it, or 'top'."""
        top = symtable.symtable(source, 'top', 'exec')
        tables, i = list(top.get_children()), 0
        while i < len(tables):
            tables += tables[i].get_children()
            i += 1
        defined = {s.get_name() for s in top.get_symbols() if s.is_assigned() or s.is_imported()}
        defined |= {s.get_name() for t in tables for s in t.get_symbols()
                    if s.is_declared_global() and s.is_assigned()}
        foreign = {}
        for t in [top] + tables:
            for s in t.get_symbols():
                name = s.get_name()
                if s.is_referenced() and (t is top or s.is_global()) and name not in defined and (
                        not hasattr(builtins, name)):
                    foreign.setdefault(name, set()).add(t.get_name())
        return foreign

    def test_each_part_reads_only_names_defined_before_it(self):
        """Part 1 reads no name that only Parts 2-4 or the guard rails define; Parts 1-2 none
        that only Parts 3-4 or the guard rails define; Parts 1-3 none that only Part 4 or the
        guard rails define; Parts 1-4 none that only the guard rails define; and the whole file
        none that it does not define. Each check can
        tell: a function (or a top-level line) added at the cut that reads names the next parts
        define is caught, and the same names are defined in the whole file."""
        peeks = {'Part 2': ('no_grad', 'float_weights'), 'Part 3': ('merges', 'quantize'),
                 'Part 4': ('fail', 'prove_part2'), 'The guard rails': ('KIND', 'check_settings'),
                 None: ()}
        whole = source_before(None)
        for ruler, names in peeks.items():
            source = source_before(ruler)
            with self.subTest(before=ruler or 'the end'):
                self.assertEqual(self.foreign_reads(source), {})
                if not names:
                    continue
                bad = source + f'\ndef peek():\n    return {names[0]}\nlater = {names[1]}\n'
                self.assertEqual(self.foreign_reads(bad), {names[0]: {'peek'}, names[1]: {'top'}})
                self.assertEqual(self.foreign_reads(whole + bad[len(source):]), {})
        print(f'  names read before they are defined: none, at each of the {len(peeks) - 1} cuts '
              f'and in the whole file')

if __name__ == '__main__':
    import unittest
    unittest.main()
