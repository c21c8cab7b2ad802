"""Tests of Part 2 of microgpt.py, "everything else is just efficiency": each switch must change
only the speed. Each check is against something that shares no code with what it tests: central
finite differences, a formula computed here, the run with the switch off, or the independent forward
pass in helpers. Each prints its max difference beside its named tolerance.

    python -m unittest discover -s tests -v

The classes follow Part 2's sections: its switches, fused nodes, plain floats and the prefix cache,
the resting collector, data parallelism.
"""
import gc, itertools, math, os, random, unittest
from unittest import mock

from tests.helpers import (EXACT_TOL, FD_STEP, FD_TOL, ROOT, SAME_TOL, WORDS, Case, adam_spy,
                           doc_loss, grads, m, quiet, reference_losses, report, tiny_model)

# held out in the runs below: they share their starts with WORDS and with each other, as names do
VAL = ['emmaline', 'olive', 'ava', 'isabel', 'sophie', 'mila', 'ameliana', 'harp', 'evelyn']


def rel_diff(xs, ys):
    """The largest difference between two lists of numbers, relative to the largest of them."""
    if len(xs) != len(ys):
        raise AssertionError(f'{len(xs)} numbers against {len(ys)}')
    scale = max(max(map(abs, xs)), max(map(abs, ys))) or 1.0
    return max(abs(x - y) for x, y in zip(xs, ys)) / scale


def open_files():
    """How many files this process has open, or None where the system cannot tell."""
    for folder in ('/proc/self/fd', '/dev/fd'):
        if os.path.isdir(folder):
            return len(os.listdir(folder))
    return None


def reaped(pid):
    """Whether this process has already waited for its child pid, which then no longer exists."""
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return True
    return False


def train_spy(losses):
    """A stand-in for train() that records each step's loss as it goes."""
    real = m.train

    def spy(*args):
        for step, loss in real(*args):
            losses.append(loss)
            yield step, loss
    return mock.patch.object(m, 'train', spy)


# ---- the switches: with any one off, the same run -----------------------------------------------
class EachSwitchChangesOnlyTheSpeed(Case):
    """With each of fused, no_grad, prefix_cache and pause_gc off, one at a time, a short training
    run, evaluate() and 3 samples give what they give with all on: to the bit where the arithmetic
    is the same, else within SAME_TOL."""

    def outcome(self, off=None):
        tiny_model('--num_steps=6', '--batch_size=2', '--workers=1', vocab=''.join(WORDS), seed=5)
        if off:
            setattr(m, off, False)
        losses, record = [], []
        mm, vv = [0.0] * len(m.params), [0.0] * len(m.params)
        with train_spy(losses), adam_spy(record):
            quiet(m.run_training, WORDS, VAL, mm, vv)
        grads_ = [g for r in record for g in r[1]]  # every step's gradients, in one list
        weights = [p.data for p in m.params]
        val = m.evaluate(VAL + WORDS)
        random.seed(3)
        samples = [m.sample() for _ in range(3)]
        return {'losses': losses, 'gradients': grads_, 'weights': weights, 'adam m': mm,
                'adam v': vv, 'evaluate': [val]}, samples

    def test_each_switch_off(self):
        numbers, samples = self.outcome()
        self.assertEqual(len(numbers['losses']), 6)
        for off in ('fused', 'no_grad', 'prefix_cache', 'pause_gc'):
            numbers_off, samples_off = self.outcome(off)
            tol = SAME_TOL if off == 'fused' else 0.0  # fused=False adds up in another order;
            # no_grad=False: graph nodes do the same float arithmetic as the plain-float path
            for name, values in numbers.items():
                diff = rel_diff(values, numbers_off[name])
                report(f'{off}=False vs all on: {name} ({len(values)})', diff, tol)
                self.assertLessEqual(diff, tol, f'{off}=False: {name}')
            print(f'  {off}=False: samples {samples_off}')
            self.assertEqual(samples_off, samples, f'{off}=False')


# ---- fused nodes: one node for a dot product, a softmax output, a loss --------------------------
def fsum_dot(a, b):
    return math.fsum(x * y for x, y in zip(a, b))


def lse(logits):  # log(sum(exp(logits))), computed without overflow, summed exactly
    top = max(logits)
    return top + math.log(math.fsum(math.exp(x - top) for x in logits))


def softmax_of(logits):
    total = lse(logits)
    return [math.exp(x - total) for x in logits]


def rmsnorm_of(x):
    return [v / math.sqrt(math.fsum(u * u for u in x) / len(x) + 1e-5) for v in x]


class FusedNodes(Case):
    """Each fused node, and its atomic form (fused=False), against a formula computed here: its
    value to EXACT_TOL, each gradient against central finite differences of that formula."""

    def check(self, build, formula, points, nodes=None):
        """build(*Values) -> a Value, formula(*floats) -> a float: the same function. -> (worst
        value diff, worst gradient diff), both relative to max(1, |exact|). nodes: how many graph
        nodes build() records fused; atomic, it records more."""
        worst_value = worst_grad = 0.0
        for point in points:
            self.assertEqual(m.tape, [])
            xs = [m.Value(x) for x in point]
            out = build(*xs)
            if nodes is not None:
                (self.assertEqual if m.fused else self.assertGreater)(len(m.tape), nodes)
            out.backward()
            exact = formula(*point)
            worst_value = max(worst_value, abs(out.data - exact) / max(1.0, abs(exact)))
            for i, x in enumerate(xs):
                up, down = list(point), list(point)
                up[i] += FD_STEP
                down[i] -= FD_STEP
                numeric = (formula(*up) - formula(*down)) / (2 * FD_STEP)
                worst_grad = max(worst_grad, abs(x.grad - numeric) / max(1.0, abs(numeric)))
        return worst_value, worst_grad

    def show(self, name, worst):
        report(f'{name}: value vs the formula', worst[0], EXACT_TOL)
        report(f'{name}: gradient vs finite differences', worst[1], FD_TOL)
        self.assertLessEqual(worst[0], EXACT_TOL, name)
        self.assertLessEqual(worst[1], FD_TOL, name)

    def test_dot_softmax_and_loss_fused_and_atomic(self):
        for fused in (True, False):
            m.fused = fused
            rng = random.Random(7)
            worst = {}
            for n in (1, 2, 5, 17):
                pts = [[rng.uniform(-2, 2) for _ in range(2 * n)] for _ in range(10)]
                checks = [('dot', lambda *x: m.dot(list(x[:n]), list(x[n:])),
                           lambda *x: fsum_dot(x[:n], x[n:]), pts, 1)]
                for i in range(n):  # every softmax output, and the loss at every target
                    checks.append(('softmax', lambda *x, i=i: m.softmax(list(x))[i],
                                   lambda *x, i=i: softmax_of(x)[i], [p[:n] for p in pts], n))
                    checks.append(('cross_entropy', lambda *x, i=i: m.cross_entropy(list(x), i),
                                   lambda *x, i=i: lse(x) - x[i], [p[:n] for p in pts], 1))
                for name, build, formula, points, nodes in checks:
                    diffs = self.check(build, formula, points, nodes)
                    worst[name] = [max(a, b) for a, b in zip(worst.get(name, (0, 0)), diffs)]
            for name, diffs in worst.items():
                self.show(f'{name}, n = 1, 2, 5, 17, fused={fused}', diffs)

    def test_rmsnorm_and_linear_fused_and_atomic(self):
        for fused in (True, False):
            m.fused = fused
            rng = random.Random(8)
            pts = [[rng.uniform(-2, 2) for _ in range(4 + 12)] for _ in range(10)]
            worst = {'rmsnorm': (0, 0), 'linear': (0, 0)}
            for i in range(3):
                diffs = self.check(lambda *x, i=i: m.rmsnorm(list(x))[i],
                                   lambda *x, i=i: rmsnorm_of(x)[i], [p[:4] for p in pts])
                worst['rmsnorm'] = list(map(max, worst['rmsnorm'], diffs))
                rows = lambda x: [list(x[4 + 4 * r:8 + 4 * r]) for r in range(3)]  # noqa: E731
                diffs = self.check(lambda *x, i=i: m.linear(list(x[:4]), rows(x))[i],
                                   lambda *x, i=i: fsum_dot(rows(x)[i], x[:4]), pts, 3)
                worst['linear'] = list(map(max, worst['linear'], diffs))
            for name, diffs in worst.items():
                self.show(f'{name} (4 wide, 3 rows), fused={fused}', diffs)

    def test_fused_model_equals_atomic(self):
        tiny_model()
        for doc in ('emma', 'abcdefghijklmnop'):  # the second is cut at block_size
            tokens = m.encode(doc)
            lf, logits_f, gf = grads(tokens, True)
            la, logits_a, ga = grads(tokens, False)
            d_loss = abs(lf - la) / abs(la)
            d_logits = max(rel_diff(a, b) for a, b in zip(logits_f, logits_a))
            d_grad = rel_diff(gf, ga)
            report(f'fused vs atomic {doc!r}: loss', d_loss, SAME_TOL)
            report(f'fused vs atomic {doc!r}: logits', d_logits, SAME_TOL)
            report(f'fused vs atomic {doc!r}: {len(gf)} gradients', d_grad, SAME_TOL)
            self.assertLessEqual(max(d_loss, d_logits, d_grad), SAME_TOL)
            self.assertGreater(sum(g != 0 for g in gf), len(gf) // 2)  # not trivially zero

    def test_fused_loss_where_probabilities_underflow(self):
        """Logits spread over 1,000: exp() of the lowest minus the highest is 0.0 in floats."""
        spread = [500.0, 499.0, 498.3, -500.0, -200.0, 0.0, 100.0, 499.9]
        self.assertEqual(math.exp(min(spread) - max(spread)), 0.0)
        cases = [('the target holds the largest logit', spread, 0),
                 ('the target 1,000 below the largest', spread, 3),
                 ('the target below the largest, not underflowing', spread, 1),
                 ('all logits equal, at 1,000', [1000.0] * 6, 2),
                 ('all logits equal, at -1,000', [-1000.0] * 6, 5)]
        self.assertEqual(softmax_of(spread)[3], 0.0)  # its probability underflows
        for fused in (True, False):
            m.fused = fused
            worst_loss = worst_grad = 0.0
            for name, logits, target in cases:
                xs = [m.Value(x) for x in logits]
                loss = m.cross_entropy(xs, target)
                if fused:
                    self.assertEqual(len(m.tape), 1)  # one node
                loss.backward()
                exact = lse(logits) - logits[target]
                onehot = [float(j == target) for j in range(len(logits))]
                expected = [p - t for p, t in zip(softmax_of(logits), onehot)]
                self.assertTrue(math.isfinite(loss.data), name)
                self.assertTrue(all(math.isfinite(x.grad) for x in xs), name)
                d_loss = abs(loss.data - exact) / abs(exact)
                d_grad = max(abs(x.grad - e) for x, e in zip(xs, expected))  # |grad| <= 1
                print(f'  fused={fused}, {name}: loss {loss.data!r}, exact {exact!r}')
                self.assertLessEqual(d_loss, EXACT_TOL, name)
                self.assertLessEqual(d_grad, EXACT_TOL, name)
                worst_loss, worst_grad = max(worst_loss, d_loss), max(worst_grad, d_grad)
            report(f'fused={fused}: loss vs log-sum-exp (relative)', worst_loss, EXACT_TOL)
            report(f'fused={fused}: gradient vs softmax - onehot', worst_grad, EXACT_TOL)


# ---- plain floats (no_grad) and the prefix cache ------------------------------------------------
class PlainFloatsAndThePrefixCache(Case):
    """Evaluation and sampling on plain floats, and evaluation that reuses a shared start."""

    def docs(self):
        with open(os.path.join(ROOT, 'input.txt')) as f:
            names = f.read().split('\n')[:300]
        # in no order; repeats, prefixes of each other, longer than the context (block_size=8)
        return names + ['ann', 'anna', 'annabel', 'annabelle', 'anna', 'abcdefghijklmnopq',
                        'abcdefghijkl', 'ann', 'a']

    def test_prefix_cache_is_exact(self):
        tiny_model(seed=8)
        docs = self.docs()
        results, calls = {}, {}
        for cache in (True, False):
            m.prefix_cache = cache
            with mock.patch.object(m, 'gpt', wraps=m.gpt) as gpt:
                results[cache] = m.evaluate(docs)
            calls[cache] = gpt.call_count
        print(f'  evaluate() with and without the prefix cache: {results[True]!r} and '
              f'{results[False]!r}')
        self.assertEqual(results[True], results[False])  # to the last bit
        # the positions read: each distinct start of the docs once, or every position of each doc
        fed = [m.encode(doc)[:m.block_size + 1][:-1] for doc in docs]
        self.assertEqual(calls[False], sum(map(len, fed)))
        starts = {tuple(f[:k]) for f in fed for k in range(1, len(f) + 1)}
        self.assertEqual(calls[True], len(starts))
        print(f'  positions read: {calls[True]} with the cache, {calls[False]} without')
        weights = m.float_weights()
        losses = [loss for doc in docs for loss in reference_losses(weights, m.encode(doc))]
        exact = math.fsum(losses) / len(losses)
        diff = report('evaluate() vs the independent forward pass (relative)',
                      abs(results[True] - exact) / exact, SAME_TOL)
        self.assertLessEqual(diff, SAME_TOL)

    def test_no_graph_is_left_behind(self):
        """With fused and no_grad on or off, evaluate() and sample() leave no graph of theirs on
        the tape and move no gradient; a graph made before them is kept, and its backward() gives
        what it gives without them."""
        tiny_model('--prompt=an', seed=9)
        docs = self.docs()[-12:]  # repeats and long ones among them
        tokens = m.encode('annabel')
        for fused, no_grad in itertools.product((True, False), repeat=2):
            m.fused, m.no_grad = fused, no_grad
            where = f'fused={fused}, no_grad={no_grad}'
            for pending in (False, True):
                if pending:  # a forward pass waiting for its backward()
                    loss = doc_loss(tokens)
                before = list(m.tape)
                m.evaluate(docs)
                self.assertEqual(m.tape, before, f'evaluate(), {where}')
                random.seed(1)
                for _ in range(3):
                    m.sample()
                    self.assertEqual(m.tape, before, f'sample(), {where}')
                self.assertEqual({p.grad for p in m.params}, {0.0})
            loss.backward()
            kept = [p.grad for p in m.params]
            for p in m.params:
                p.grad = 0.0
            doc_loss(tokens).backward()  # the same, with nothing in between
            self.assertEqual(kept, [p.grad for p in m.params], where)
            for p in m.params:
                p.grad = 0.0
        print('  evaluate() and sample() leave the tape as they found it, fused and no_grad on '
              'and off')

    def test_sample_reads_the_weights_it_is_given(self):
        """sample(sd) with another model's weights draws what that model draws, on floats or not."""
        tiny_model(seed=2)
        other = m.float_weights()
        random.seed(4)
        expected = [m.sample() for _ in range(5)]
        tiny_model(seed=3)
        for no_grad in (True, False):
            m.no_grad = no_grad
            random.seed(4)
            self.assertEqual([m.sample(other) for _ in range(5)], expected, f'no_grad={no_grad}')
            random.seed(4)
            self.assertNotEqual([m.sample() for _ in range(5)], expected)  # its own weights
        print(f'  sample(sd) draws what the model of sd draws: {expected}')


# ---- the resting collector ----------------------------------------------------------------------
class TheRestingCollector(Case):
    """pause_gc: the collector rests during training, comes back after it, changes nothing."""

    def test_pause_gc_changes_nothing_and_restores_the_collector(self):
        weights = {}
        for pause, was_on in ((True, True), (False, True), (True, False)):
            tiny_model('--num_steps=5', f'--pause_gc={pause}', vocab=''.join(WORDS), seed=9)
            record = []
            gc.enable() if was_on else gc.disable()
            try:
                with adam_spy(record):
                    mm, vv = [0.0] * len(m.params), [0.0] * len(m.params)
                    quiet(m.run_training, WORDS, VAL, mm, vv)
                self.assertEqual(gc.isenabled(), was_on)  # as it was before
            finally:
                gc.enable()
            self.assertEqual({r[2] for r in record}, {was_on and not pause})  # during training
            weights[pause, was_on] = [p.data for p in m.params]
        diff = report('weights after 5 steps, pause_gc off vs on', rel_diff(
            weights[True, True], weights[False, True]), 0.0)
        self.assertEqual(diff, 0.0)

    def test_the_collector_comes_back_after_an_error(self):
        tiny_model('--num_steps=5', vocab=''.join(WORDS))
        mm, vv = [0.0] * len(m.params), [0.0] * len(m.params)
        with mock.patch.object(m, 'adam_step', side_effect=RuntimeError('a step failed')):
            with self.assertRaises(RuntimeError):
                quiet(m.run_training, WORDS, VAL, mm, vv)
        self.assertTrue(gc.isenabled())
        with self.assertRaises(ValueError), m.resting_collector():
            self.assertFalse(gc.isenabled())
            raise ValueError
        self.assertTrue(gc.isenabled())


# ---- data parallelism ---------------------------------------------------------------------------
class DataParallelism(Case):
    """Workers share each batch: the same gradients as one process, and none outlives the run."""

    def run_with(self, *argv, fail_at=None):
        """A short run_training() of a tiny model; fail_at: a step at which Adam raises
        RuntimeError. Keeps each step's gradients in self.grads, its loss in self.losses and the
        worker processes that the run had in self.workers."""
        tiny_model(*argv, vocab=''.join(WORDS), seed=10)
        self.grads, self.losses, self.workers = [], [], set()
        real = m.adam_step

        def spy(step, mm, vv, lr):
            self.grads.append([p.grad for p in m.params])
            self.workers.update(process for _, process in m.pool)
            if step == fail_at:
                raise RuntimeError('a step failed')
            real(step, mm, vv, lr)
        mm, vv = [0.0] * len(m.params), [0.0] * len(m.params)
        with mock.patch.object(m, 'adam_step', spy), train_spy(self.losses):
            quiet(m.run_training, WORDS, VAL, mm, vv)

    def assert_all_ended(self, fds):
        """Every worker of the last run has ended and been joined; once they are let go, as many
        files are open as fds (None: this system cannot tell)."""
        self.assertEqual(m.pool, [])
        # each reaped already (joined), not left running or as a zombie for the system to reap
        self.assertTrue(all([reaped(process.pid) for process in self.workers]))
        self.workers = set()  # let the Process objects go: each holds a file
        if fds is not None:
            self.assertEqual(open_files(), fds)

    def test_workers_give_the_same_gradients_as_one(self):
        runs = {}
        fds = open_files()
        for w in (1, 2, 8):
            self.run_with('--num_steps=3', '--batch_size=5', f'--workers={w}')
            runs[w] = self.grads, self.losses
            self.assertEqual(len(self.workers), min(w, 5) - 1)  # one a doc at most
            self.assert_all_ended(fds)
        for w in (2, 8):
            for step in range(3):
                diff = rel_diff(runs[1][0][step], runs[w][0][step])
                report(f'gradients at step {step + 1}, {w} workers vs 1', diff, EXACT_TOL)
                self.assertLessEqual(diff, EXACT_TOL)
            diff = report(f'losses of 3 steps, {w} workers vs 1',
                          rel_diff(runs[1][1], runs[w][1]), EXACT_TOL)
            self.assertLessEqual(diff, EXACT_TOL)

    def test_an_error_in_training_ends_every_worker(self):
        fds = open_files()
        with self.assertRaises(RuntimeError):
            self.run_with('--num_steps=5', '--batch_size=4', '--workers=3', fail_at=1)
        self.assertEqual((len(self.grads), len(self.workers)), (2, 2))
        self.assert_all_ended(fds)
        self.assertTrue(gc.isenabled())
        self.run_with('--num_steps=2', '--batch_size=4', '--workers=3')  # and it runs again
        self.assertEqual((len(self.grads), len(self.workers)), (2, 2))
        self.assert_all_ended(fds)

    def test_no_fork_falls_back_to_one_process(self):
        with mock.patch('multiprocessing.get_all_start_methods', return_value=['spawn']):
            tiny_model('--num_steps=2', '--batch_size=4', '--workers=4', vocab=''.join(WORDS))
            mm, vv = [0.0] * len(m.params), [0.0] * len(m.params)
            record = []
            with adam_spy(record):
                _, out = quiet(m.run_training, WORDS, VAL, mm, vv)
        self.assertIn('training in one process', out)
        self.assertEqual([r[3] for r in record], [0, 0])


if __name__ == '__main__':
    unittest.main()
