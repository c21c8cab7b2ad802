"""Tests of Part 2 of microgpt.py, "everything else is just efficiency": each switch must change
only the speed. Each check is against something that shares no code with what it tests: central
finite differences, a formula computed here, the run with the switch off, or the independent forward
pass in helpers. Each prints its max difference beside its named tolerance.

    python -m unittest discover -s tests -v

The classes follow Part 2's sections: its switches (each one, and part2 for all), fused nodes, the
tape, plain floats, the resting collector, and the proof: self_check() in this process, then in
runs of copies of microgpt.py with a learner's edit to Part 1 (new interpreters, started by
setUpModule so that they run beside the other tests).
"""
import contextlib, gc, itertools, math, os, random, re, subprocess, sys, tempfile, unittest
from unittest import mock

from tests.helpers import (EXACT_TOL, FD_STEP, FD_TOL, ROOT, SAME_TOL, WORDS, Case, adam_spy,
                           doc_loss, grads, m, quiet, reference_losses, report, run, tiny_model,
                           graph_nodes, live_values, window_start)

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
        for step, loss, batch in real(*args):
            losses.append(loss)
            yield step, loss, batch
    return mock.patch.object(m, 'train', spy)


def adam():
    """Adam's state at step 0, as setup() makes it for run_training()."""
    return {'step': 0, 'm': [0.0] * len(m.params), 'v': [0.0] * len(m.params)}


def train(train_docs=WORDS, val_docs=VAL):
    """run_training() of the model as it stands, quietly. Returns Adam's state after it."""
    state = adam()
    quiet(m.run_training, train_docs, val_docs, state)
    return state


# ---- the switches: with any one off, the same run -----------------------------------------------
class EachSwitchChangesOnlyTheSpeed(Case):
    """With each of fused, tape, no_grad and pause_gc off, one at a time, and all of
    them (part2=False), a short training run, evaluate() and 3 samples give what they give with
    all on: to the bit where the arithmetic is the same, else within SAME_TOL."""

    def outcome(self, off=None):
        tiny_model('--num_steps=6', '--batch_size=2', vocab=''.join(WORDS), seed=5)
        if off:
            setattr(m, off, False)
        losses, record = [], []
        with train_spy(losses), adam_spy(record):
            state = train()
        grads_ = [g for r in record for g in r[1]]  # every step's gradients, in one list
        weights = [p.data for p in m.params]
        val = m.evaluate(VAL + WORDS)
        random.seed(3)
        samples = [m.sample() for _ in range(3)]
        return {'losses': losses, 'gradients': grads_, 'weights': weights, 'adam m': state['m'],
                'adam v': state['v'], 'evaluate': [val]}, samples

    def test_each_switch_off(self):
        numbers, samples = self.outcome()
        self.assertEqual(len(numbers['losses']), 6)
        for off in ('fused', 'tape', 'no_grad', 'pause_gc', 'part2'):
            numbers_off, samples_off = self.outcome(off)
            tol = SAME_TOL if off in ('fused', 'tape', 'part2') else 0.0  # in another order
            # no_grad=False: graph nodes do the same float arithmetic as the plain-float path
            for name, values in numbers.items():
                diff = rel_diff(values, numbers_off[name])
                report(f'{off}=False vs all on: {name} ({len(values)})', diff, tol)
                self.assertLessEqual(diff, tol, f'{off}=False: {name}')
            print(f'  {off}=False: samples {samples_off}')
            self.assertEqual(samples_off, samples, f'{off}=False')


class TheMasterSwitch(Case):
    """part2=False turns every item of Part 2 off together; with part2 on, each item turns off
    alone. Each item is seen at work, not read off its setting: fused nodes by the size of the
    graph, the tape by training's backward() calling no search (Part 1's backward), no_grad by
    the weights evaluate() and sample() give Part 1's (part1_) functions, the resting collector by
    gc during training."""

    ITEMS = ('fused', 'tape', 'no_grad', 'pause_gc')

    def at_work(self, *argv):
        """{item: whether it is at work} in a model with these flags."""
        tiny_model('--num_steps=2', '--batch_size=2', '--eval_interval=0', *argv,
                   vocab=''.join(WORDS))
        nodes = len(graph_nodes(doc_loss(m.encode('olivia'))))
        with mock.patch.object(m, 'part1_evaluate', wraps=m.part1_evaluate) as part1_evaluate:
            m.evaluate(['emma', 'olivia'])
        (_, eval_sd), _ = part1_evaluate.call_args
        with mock.patch.object(m, 'part1_sample', wraps=m.part1_sample) as part1_sample:
            m.sample()
        (sd,), _ = part1_sample.call_args
        record, searched = [], []
        search = m.part1_Value.backward

        def backward(root):
            searched.append(root)
            return search(root)
        self.assertTrue(gc.isenabled())
        with adam_spy(record), mock.patch.object(m.part1_Value, 'backward', backward):
            train()
        self.assertEqual(len(record), 2)
        on_values = (eval_sd is None, sd is None)  # Part 1's evaluate(), sample() on the Values
        self.assertEqual(on_values[0], on_values[1])
        return {'fused': nodes < self.atomic, 'tape': not searched, 'no_grad': not on_values[0],
                'pause_gc': not any(r[2] for r in record)}

    def test_part2_false_turns_every_item_off(self):
        tiny_model(vocab=''.join(WORDS))
        m.fused = False
        self.atomic = len(graph_nodes(doc_loss(m.encode('olivia'))))  # a node per operation
        on = self.at_work()
        print(f'  at work with every switch on: {on}')
        self.assertEqual(on, dict.fromkeys(self.ITEMS, True))
        off = self.at_work('--part2=False')
        print(f'  at work with --part2=False: {off}')
        self.assertEqual(off, dict.fromkeys(self.ITEMS, False))
        tiny_model('--part2=False', vocab=''.join(WORDS))
        loss = doc_loss(m.encode('olivia'))
        self.assertEqual(len(graph_nodes(loss)), self.atomic)  # Part 1's graph, node for node
        for item in self.ITEMS:
            flag = f'--{item}=False'
            alone = self.at_work(flag)
            expected = dict.fromkeys(self.ITEMS, True)
            expected[item] = False
            self.assertEqual(alone, expected, flag)


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
        value diff, worst gradient diff), both relative to max(1, |exact|). nodes: how many nodes
        made from others its Value's graph holds fused (helpers.graph_nodes); atomic, more."""
        worst_value = worst_grad = 0.0
        for point in points:
            xs = [m.Value(x) for x in point]
            out = build(*xs)
            if nodes is not None:
                (self.assertEqual if m.fused else self.assertGreater)(len(graph_nodes(out)),
                                                                     nodes)
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
                                   lambda *x, i=i: softmax_of(x)[i], [p[:n] for p in pts], 1))
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
                                   lambda *x, i=i: fsum_dot(rows(x)[i], x[:4]), pts, 1)
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
                    self.assertEqual(len(graph_nodes(loss)), 1)  # one node
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


# ---- the tape: batch_loss's nodes recorded as made; backward() reads them newest first ----------
def per_doc_backward(batch):
    """batch_loss() as a learner might rewrite it: a backward() per document, of its share of the
    mean (less memory): two or more backward() calls in one batch_loss()."""
    total = 0.0
    for tokens in batch:
        losses = m.doc_losses(tokens)
        loss = sum(losses) / len(losses) / len(batch)
        loss.backward()
        total += loss.data
    return total


def all_then_each_backward(batch):
    """Another rewrite a newcomer's reader tried: every document's graph built first, then a
    backward() of each one's share in turn: each backward() must leave the graphs it does not
    reach on the tape, for theirs."""
    shares = [sum(ls) / len(ls) / len(batch) for ls in map(m.doc_losses, batch)]
    for share in shares:
        share.backward()
    return sum(share.data for share in shares)


class TheTape(Case):
    """tape: in batch_loss() each node made from others is recorded, and backward() reads the
    record newest first instead of searching the graph. Against the search (tape off): the same
    loss to the bit and the same gradients (in another order of addition); the record is open
    only inside batch_loss(); what it backpropagated is used up, as Part 1's backward() leaves it."""

    def loss_and_grads(self, batch, tape, batch_loss=None):
        m.tape = tape
        for p in m.params:
            p.grad = 0.0
        with mock.patch.object(m, 'part1_batch_loss', batch_loss or m.part1_batch_loss):
            loss = m.batch_loss(batch)
        return loss, [p.grad for p in m.params]

    def test_the_tape_gives_what_the_search_gives(self):
        tiny_model(vocab=''.join(WORDS), seed=6)
        batch = [m.encode(doc)[:m.block_size + 1] for doc in ('elizabeth', 'ava', 'mia')]
        rewrites = (None, per_doc_backward, all_then_each_backward)
        for fused, rewrite in itertools.product((True, False), rewrites):
            m.fused = fused
            searched, taped = (self.loss_and_grads(batch, tape, rewrite) for tape in (False, True))
            where = f'fused={fused}, {rewrite.__name__ if rewrite else "batch_loss()"}'
            self.assertEqual(taped[0], searched[0], where)  # the forward pass: the same
            diff = report(f'gradients, tape vs search, {where} (relative)',
                          rel_diff(taped[1], searched[1]), SAME_TOL)
            self.assertLessEqual(diff, SAME_TOL)
            self.assertGreater(sum(map(abs, taped[1])), 0.0)
            self.assertIsNone(m.recording)

    def test_the_record_is_open_only_inside_batch_loss(self):
        """Inside: a list that grows as nodes are made (with part2 and tape on); outside, and
        after an error inside, None: a Value made outside is never recorded."""
        tiny_model(vocab=''.join(WORDS))
        real, seen = m.doc_losses, []

        def doc_losses(tokens, sd=None):
            seen.append(m.recording if m.recording is None else
                        len(m.recording))
            losses = real(tokens, sd)
            seen.append(m.recording if m.recording is None else
                        len(m.recording))
            return losses
        for part2, tape in ((True, True), (True, False), (False, True)):
            m.part2, m.tape = part2, tape
            seen.clear()
            with mock.patch.object(m, 'doc_losses', doc_losses):
                m.batch_loss([m.encode('emma')])
            on = part2 and tape
            self.assertEqual(seen[0], 0 if on else None)
            if on:
                self.assertGreater(seen[1], 100)
            else:
                self.assertIsNone(seen[1])
            self.assertIsNone(m.recording)
        m.part2 = m.tape = True
        with mock.patch.object(m, 'gpt', side_effect=KeyboardInterrupt), \
                self.assertRaises(KeyboardInterrupt):
            m.batch_loss([m.encode('emma')])
        self.assertIsNone(m.recording)
        x = m.Value(2.0) * 3.0
        self.assertIsNone(m.recording)
        x.backward()  # outside batch_loss(): Part 1's search

    def test_what_it_backpropagated_is_used_up(self):
        """The losses batch_loss() made, kept by a spy: a backward() through them raises, as
        after Part 1's backward(), and no Value of the step stays alive without the spy."""
        tiny_model(vocab=''.join(WORDS))
        kept, real = [], m.doc_losses

        def doc_losses(tokens, sd=None):
            kept.extend(real(tokens, sd))
            return kept[-(len(tokens) - 1):]
        alive = live_values()
        with mock.patch.object(m, 'doc_losses', doc_losses):
            m.batch_loss([m.encode('emma'), m.encode('ava')])
        self.assertEqual(len(kept), 5 + 4)  # a loss per token after BOS
        for loss in kept:
            with self.assertRaises(RuntimeError):
                loss.backward()
        with self.assertRaises(RuntimeError):
            (kept[0] * 2).backward()
        del kept[:], loss
        self.assertEqual(live_values(), alive)


# ---- plain floats (no_grad) ---------------------------------------------------------------------
class PlainFloats(Case):
    """Evaluation and sampling on plain floats."""

    def docs(self):
        with open(os.path.join(ROOT, 'input.txt')) as f:
            names = f.read().split('\n')[:300]
        # in no order; repeats, prefixes of each other, longer than the context (block_size=8)
        return names + ['ann', 'anna', 'annabel', 'annabelle', 'anna', 'abcdefghijklmnopq',
                        'abcdefghijkl', 'ann', 'a']

    def test_plain_float_evaluation_is_the_independent_forward_pass(self):
        tiny_model(seed=8)
        docs = self.docs()
        result = m.evaluate(docs)
        weights = m.float_weights()
        losses = [loss for doc in docs for loss in reference_losses(weights, m.encode(doc))]
        exact = math.fsum(losses) / len(losses)
        diff = report('evaluate() vs the independent forward pass (relative)',
                      abs(result - exact) / exact, SAME_TOL)
        self.assertLessEqual(diff, SAME_TOL)

    def test_long_documents_as_part_1_scores_them(self):
        """Documents up to 4 contexts long, some starting alike: Part 2's evaluate(), on plain
        floats, equals Part 1's as written, for block_size 8, 5 and 1."""
        text = 'elizabethscarlettabigailharperevelyn'
        docs = [text[:n] for n in (31, 0, 7, 8, 9, 17)] + [text[::-1]]  # fits, or 1 to 4 contexts
        for block_size in (8, 5, 1):
            tiny_model(vocab=text)
            m.configure([f'--block_size={block_size}'])
            random.seed(3)
            m.use_weights()
            m.part2 = False
            part1 = m.evaluate(docs)
            m.part2 = True
            diff = report(f'block_size={block_size}: Part 2 evaluate() vs Part 1 (relative)',
                          abs(m.evaluate(docs) - part1) / part1, SAME_TOL)
            self.assertLessEqual(diff, SAME_TOL)

    def test_no_graph_is_left_behind(self):
        """With fused and no_grad on or off, evaluate() and sample() leave no Value of theirs alive
        and move no gradient; a graph made before them is kept, and its backward() gives what it
        gives without them."""
        tiny_model('--prompt=an', seed=9)
        docs = self.docs()[-12:]  # repeats and long ones among them
        tokens = m.encode('annabel')
        for fused, no_grad in itertools.product((True, False), repeat=2):
            m.fused, m.no_grad = fused, no_grad
            where = f'fused={fused}, no_grad={no_grad}'
            for pending in (False, True):
                if pending:  # a forward pass waiting for its backward()
                    loss = doc_loss(tokens)
                before = live_values()
                m.evaluate(docs)
                self.assertEqual(live_values(), before, f'evaluate(), {where}')
                random.seed(1)
                for _ in range(3):
                    m.sample()
                    self.assertEqual(live_values(), before, f'sample(), {where}')
                self.assertEqual({p.grad for p in m.params}, {0.0})
            loss.backward()
            kept = [p.grad for p in m.params]
            for p in m.params:
                p.grad = 0.0
            doc_loss(tokens).backward()  # the same, with nothing in between
            self.assertEqual(kept, [p.grad for p in m.params], where)
            for p in m.params:
                p.grad = 0.0
        print('  evaluate() and sample() leave no Value alive, fused and no_grad on and off')

    def test_sample_reads_the_weights_it_is_given(self):
        """sample(sd) with another model's weights draws what that model draws, on floats or not."""
        tiny_model(seed=2)
        other = m.float_weights()
        random.seed(4)
        expected = [m.sample() for _ in range(5)]
        scored = m.evaluate(WORDS)
        tiny_model(seed=3)
        for no_grad in (True, False):
            m.no_grad = no_grad
            self.assertEqual(m.evaluate(WORDS, other), scored)  # evaluate(docs, sd) too
            self.assertNotEqual(m.evaluate(WORDS), scored)
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
                    train()
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
        with mock.patch.object(m, 'adam_step', side_effect=RuntimeError('a step failed')):
            with self.assertRaises(RuntimeError):
                train()
        self.assertTrue(gc.isenabled())
        with self.assertRaises(ValueError), m.resting_collector():
            self.assertFalse(gc.isenabled())
            raise ValueError
        self.assertTrue(gc.isenabled())


# ---- the proof: Part 2 equals Part 1, backprop equals finite differences -----------------------
CHECK_TOL = 1e-9   # prove_part2(): Part 2's figures against Part 1's, relative; above: it stops
CHAIN_TOL = 1e-5   # prove_part2(): backprop against finite differences; above: 'not the chain rule'


class TheProof(Case):
    """self_check(doc, val_docs) in this process: what it reports of an unedited model, what it
    leaves as it was, and that each of its figures measures its own thing."""

    def test_an_unedited_model_passes_and_nothing_changes(self):
        tiny_model(vocab=''.join(WORDS + VAL), seed=11)
        weights = [p.data for p in m.params]
        state = random.getstate()
        diffs, fd, n = m.self_check('elizabeth', VAL[:3])
        self.assertEqual(set(diffs), {'loss', 'gradients', 'held-out loss'})
        for what, diff in diffs.items():
            report(f'self_check(): Part 2 vs Part 1, {what} (relative)', diff, EXACT_TOL)
            self.assertLessEqual(diff, EXACT_TOL, what)
        report(f'self_check(): backprop vs finite differences on {n} weights', fd, FD_TOL)
        self.assertLessEqual(fd, FD_TOL)
        self.assertEqual(n, 20)
        self.assertEqual([p.data for p in m.params], weights)  # to the bit
        self.assertEqual({p.grad for p in m.params}, {0.0})
        self.assertIsNone(m.recording)  # nothing left recording
        self.assertEqual(random.getstate(), state)  # no number drawn
        self.assertIs(m.part2, True)

    def test_with_part2_off_part_1_meets_itself(self):
        tiny_model(vocab=''.join(WORDS + VAL), seed=12)
        m.part2 = False  # its finite differences, too, build Part 1's graph: a short document
        diffs, fd, n = m.self_check('ava', ['mia'])
        self.assertEqual(diffs, dict.fromkeys(('loss', 'gradients', 'held-out loss'), 0.0))
        self.assertLessEqual(fd, FD_TOL)
        self.assertIs(m.part2, False)

    def test_a_long_held_out_document_is_checked_on_its_first_two_contexts(self):
        """Part 1 on Values is slow: a held-out document of a text with long lines is checked on
        its first 2 * block_size characters, which still cross a window's edge."""
        tiny_model(vocab=''.join(WORDS + VAL), seed=12)
        long = ''.join(VAL) * 3  # 144 characters; block_size 8
        seen = []
        real = m.evaluate.__wrapped__  # Part 2's, under the guard rails' check

        def spy(docs):
            seen.append((m.part2, list(docs)))
            return real(docs)
        with mock.patch.object(m, 'evaluate', spy):
            diffs, _, _ = m.self_check('ava', [long, 'mia'])
        self.assertEqual(seen, [(True, [long[:16], 'mia']), (False, [long[:16], 'mia'])])
        self.assertLessEqual(diffs['held-out loss'], 1e-12)

    def test_part2_comes_back_after_an_error(self):
        tiny_model(vocab=''.join(WORDS + VAL))
        seen = []
        real = m.loss_and_grads

        def failing(tokens):  # fails in the second pass: Part 1's
            seen.append(m.part2)
            if len(seen) == 2:
                raise RuntimeError('a failure in Part 1')
            return real(tokens)
        with mock.patch.object(m, 'loss_and_grads', failing), self.assertRaises(RuntimeError):
            m.self_check('olivia', VAL[:2])
        self.assertEqual(seen, [True, False])  # Part 2, then Part 1 as written
        self.assertIs(m.part2, True)

    def test_the_refusal_names_the_switch_that_trains_the_edit(self):
        """Issue 28: the refusal named only --part2=False, the slowest way to train an edit.
        Fused nodes make the loss and gradients, plain floats the held-out loss: an edit seen
        in the first names --fused=False, in the second --no_grad=False, in both both; then
        the whole switch. With the switches it names turned off, the check passes."""
        tiny_model(vocab=''.join(WORDS + VAL), seed=14)
        real_dot = m.part1_dot
        edits = {'fused': mock.patch.object(m, 'part1_dot', lambda a, b: real_dot(a, b) * 1.05),
                 'no_grad': mock.patch.object(m, 'data', lambda x: x.data * 1.05
                                              if isinstance(x, m.Value) else x)}
        for names in (['fused'], ['no_grad'], ['fused', 'no_grad']):
            with self.subTest(edited=names), contextlib.ExitStack() as stack:
                for name in names:
                    stack.enter_context(edits[name])
                with self.assertRaises(m.MicrogptError) as caught:
                    quiet(m.prove_part2, WORDS, VAL)
                switches = ' '.join(f'--{name}=False' for name in names)
                print(f'  {names} edited: ...{str(caught.exception)[-70:]}')
                self.assertIn(f'Part 1 was probably edited; {switches} or --part2=False trains '
                              f'with it as written', str(caught.exception))
                m.configure([f'--{name}=False' for name in names])  # as the message says
                _, out = quiet(m.prove_part2, WORDS, VAL)
                self.assertLessEqual(check_figures(out)[0], CHECK_TOL)
                m.configure(['--fused=True', '--no_grad=True'])

    def test_each_figure_measures_its_own(self):
        """Part 1's loss made 0.1 higher on Values only (a constant: no gradient changes): the
        loss and the held-out loss then differ by the closed form 0.1 / (L + 0.1), where L is
        the loss on floats; the gradients, and backprop against finite differences, do not."""
        tiny_model(vocab=''.join(WORDS + VAL), seed=13)
        doc, val = 'isabella', VAL[:3]
        window = m.encode(doc)[:m.block_size + 1]  # what self_check trains on: 9 of 10 tokens
        loss, held_out = doc_loss(window, m.float_weights()), m.evaluate(val)  # on floats
        real = m.part1_cross_entropy

        def higher_on_values(logits, target):
            loss = real(logits, target)
            return loss + 0.1 if isinstance(logits[0], m.Value) else loss
        with mock.patch.object(m, 'part1_cross_entropy', higher_on_values):
            diffs, fd, _ = m.self_check(doc, val)
        for what, expected in (('loss', 0.1 / (loss + 0.1)),
                               ('held-out loss', 0.1 / (held_out + 0.1)), ('gradients', 0.0)):
            diff = report(f'self_check() {what} vs {expected:.4g}', abs(diffs[what] - expected),
                          EXACT_TOL)
            self.assertLessEqual(diff, EXACT_TOL, what)
        self.assertLessEqual(fd, FD_TOL)

    def test_prove_part2_stops_above_its_bound_not_below(self):
        """Part 1's loss moved on Values only: by 1e-7 (relative ~3e-8, above CHECK_TOL) the run
        stops, naming the figure; by 1e-12 (~3e-13, below it) it goes on and prints it."""
        tiny_model(vocab=''.join(WORDS + VAL), seed=14)
        real = m.part1_cross_entropy
        for shift in (1e-7, 1e-12):
            def shifted(logits, target):
                loss = real(logits, target)
                return loss + shift if isinstance(logits[0], m.Value) else loss
            with self.subTest(shift=shift), mock.patch.object(m, 'part1_cross_entropy', shifted):
                if shift > 1e-9:
                    with self.assertRaises(m.MicrogptError) as caught:
                        quiet(m.prove_part2, WORDS, VAL)
                    what, diff = named_figure(str(caught.exception))
                    self.assertIn(what, ('loss', 'held-out loss'))
                else:
                    _, out = quiet(m.prove_part2, WORDS, VAL)
                    diff, _, _, _ = check_figures(out)
                print(f'  Part 1 loss + {shift:g}: the check reports {diff:.1e}')
                self.assertLess(shift / 10, diff)  # shift / loss, the loss ~3
                self.assertLess(diff, shift)
                self.assertEqual(diff > CHECK_TOL, shift > 1e-9)

# ---- the proof at work: a learner's edit to Part 1, in a copy of microgpt.py, run as they would
# Each run is a new interpreter, started by setUpModule so that they run beside the other tests.
NAMES = ['ava', 'mia', 'eva', 'ada', 'zoe', 'ivy', 'amy', 'kai', 'leo', 'max', 'ian', 'eli', 'ana',
         'lea', 'noa', 'uma', 'ora', 'ida', 'bea', 'eve']  # short: with --part2=False, the check
# builds Part 1's graph for a document 40 times, for its finite differences
RUN_FLAGS = ['--num_steps=3', '--eval_docs=20', '--num_samples=1', '--n_embd=8', '--n_head=2',
             '--input_file=names.txt']
EDITS = {  # Part 1's line as written -> the learner's line: in each function that Part 2 replaces
    'dot': ('    return sum(map(mul, a, b))\n', '    return sum(map(mul, a, b)) * 1.05\n'),
    'linear': ('    return [dot(w_row, x) for w_row in w]\n',
               '    return [dot(w_row, x) + 0.05 for w_row in w]\n'),
    'softmax': ('    exps = [exp(logit - top) for logit in logits]\n',
                '    exps = [exp(2 * (logit - top)) for logit in logits]\n'),
    'cross_entropy': ('    return log(sum(exp(logit - top) for logit in logits)) + top - '
                      'logits[target]\n',
                      '    return log(sum(exp(logit - top) for logit in logits)) + top - '
                      'logits[target] + 0.05 * sum(l * l for l in logits)\n'),  # as issue 22 did
    'evaluate': ('    return math.fsum(losses) / len(losses)  # fsum: exact, in any order\n',
                 '    return math.fsum(losses) / len(losses) * 1.05\n'),
    'data': ('def data(x): return x.data if isinstance(x, Value) else x\n',
             'def data(x): return x.data * 1.05 if isinstance(x, Value) else x\n'),
    'batch_loss': ('    loss = sum(doc_means) / len(doc_means)\n',
                   '    loss = 2 * sum(doc_means) / len(doc_means)\n'),
    # not one that Part 2 replaces: a wrong local gradient, d(ab)/da = a (the classic slip)
    'mul': ('(self, other), (other.data, self.data))', '(self, other), (self.data, other.data))')}
BYPASSED = {  # the check's figures that each edit moves: what Part 2 computes without the edit
    'dot': {'loss', 'gradients'},  # fused dot and linear: their own sums
    'linear': {'loss', 'gradients'},
    'softmax': {'gradients'},  # the fused node's values come from Part 1's softmax on floats,
    'cross_entropy': {'gradients'},  # its gradients from the unedited formula
    'data': {'held-out loss'}}  # plain floats: evaluate() never calls data() on a Value
NARROWEST = {'dot': 'fused', 'linear': 'fused', 'softmax': 'fused', 'cross_entropy': 'fused',
             'data': 'no_grad'}  # the one switch that, turned off, trains each edit
RUNS = {}  # (edit or None, part2) -> the running process, then (exit code, stdout, stderr)
TEMP = []
CHECK_LINE = re.compile(r'check: (?:Part 2 equals Part 1 to (\S+)|Part 2 is off), backprop equals '
                        r'finite differences to (\S+) on (\d+) weights(: not the chain rule)?$')


def edited(edit):
    """microgpt.py with the edit made in Part 1 (before the Part 2 ruler); None: as it is.
    Raises AssertionError if Part 1 does not have the line to edit exactly once."""
    with open(m.__file__, encoding='utf-8') as f:
        source = f.read()
    if edit is None:
        return source
    cut = re.search(r'^# =+ Part 2', source, re.M).start()
    old, new = EDITS[edit]
    if source[:cut].count(old) != 1:
        raise AssertionError(f'Part 1 of microgpt.py does not have the line {old!r} once')
    return source[:cut].replace(old, new) + source[cut:]


def setUpModule():
    unittest.addModuleCleanup(stop_runs)  # runs even if this fails half way
    TEMP.append(tempfile.TemporaryDirectory())
    env = dict(os.environ, PYTHONIOENCODING='utf-8')
    for edit in [None, *EDITS]:
        folder = os.path.join(TEMP[0].name, edit or 'unedited')
        os.mkdir(folder)
        try:
            source = edited(edit)
        except AssertionError as e:  # only the tests of this edit fail
            RUNS[edit, True] = RUNS[edit, False] = e
            continue
        for name, text in (('microgpt.py', source), ('names.txt', '\n'.join(NAMES))):
            with open(os.path.join(folder, name), 'w', encoding='utf-8') as f:
                f.write(text)
        runs = {True: ['--part2=True'], False: ['--part2=False']}
        if edit in NARROWEST:  # and as the refusal says: the narrowest switch off
            runs[NARROWEST[edit]] = ['--part2=True', f'--{NARROWEST[edit]}=False']
        for key, flags in runs.items() if edit else [(True, runs[True])]:
            RUNS[edit, key] = subprocess.Popen(
                [sys.executable, 'microgpt.py', *RUN_FLAGS, *flags], cwd=folder,
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, encoding='utf-8', env=env)


def stop_runs():  # the runs whose tests did not run: stopped, and waited for; the folder gone
    for run in RUNS.values():
        if isinstance(run, subprocess.Popen):
            run.kill()
            run.communicate()
    RUNS.clear()
    for folder in TEMP:
        folder.cleanup()
    TEMP.clear()


def result(edit, part2):
    """(exit code, stdout, stderr) of the copy with this edit, run with --part2=part2 (or part2
    on with the switch named part2 off)."""
    run = RUNS[edit, part2]
    if isinstance(run, AssertionError):
        raise run
    if isinstance(run, subprocess.Popen):
        try:
            out, err = run.communicate(timeout=600)
        except subprocess.TimeoutExpired:
            run.kill()
            run.communicate()
            raise
        RUNS[edit, part2] = run = (run.returncode, out, err)
    return run


def check_figures(out):
    """The check line's (Part 2 vs Part 1, backprop vs finite differences, weights, whether it
    says 'not the chain rule'), read from a run's output."""
    lines = [line for line in out.splitlines() if line.startswith('check:')]
    if len(lines) != 1:
        raise AssertionError(f'{len(lines)} check lines in:\n{out}')
    match = CHECK_LINE.fullmatch(lines[0])
    if not match:
        raise AssertionError(f'not the check line: {lines[0]!r}')
    same = None if match[1] is None else float(match[1])  # None: Part 2 is off
    return same, float(match[2]), int(match[3]), bool(match[4])


def named_figure(err):
    """The check's figure that a stopped run's message names, and its value: ('gradients', 0.03)."""
    match = re.search(r'\b(held-out loss|gradients|loss)\b\D*?(\d\.\de[+-]\d+)', err)
    if not match:
        raise AssertionError(f'no figure named in {err!r}')
    return match[1], float(match[2])


def step_losses(out):
    return [float(x) for x in re.findall(r'^step +\d+/\d+ \| loss (\S+) ', out, re.M)]


def val_loss(out):
    return float(re.search(r'^val loss (\S+) ', out, re.M)[1])


class TheProofInARun(Case):
    """`python microgpt.py`: the check line comes before training, and its figures are numbers
    within the bounds it is printed under."""

    def test_the_check_line_comes_first(self):
        code, out, err = result(None, True)
        self.assertEqual((code, err), (0, ''))
        lines = out.splitlines()
        self.assertTrue(lines[0].endswith('| part2=True'), lines[0])
        self.assertTrue(lines[1].startswith('check: '), lines[1])
        first_step = min(i for i, line in enumerate(lines) if line.startswith('step '))
        self.assertGreater(first_step, 1)
        same, fd, n, alarm = check_figures(out)
        report('the check line: Part 2 vs Part 1', same, CHECK_TOL)
        report('the check line: backprop vs finite differences', fd, CHAIN_TOL)
        self.assertLessEqual(same, CHECK_TOL)
        self.assertLessEqual(fd, CHAIN_TOL)
        self.assertEqual((n, alarm), (20, False))
        self.assertEqual(len(step_losses(out)), 3)

    def test_weights_all_zero_have_no_gradient_and_learn_nothing(self):
        """A newcomer's trial: --init_std=0 ended in a traceback (the check found no weight to
        nudge). All weights 0: every logit is 0, so the loss is ln(vocab_size) exactly, and no
        weight has a gradient; the check line says so, and training changes nothing."""
        code, out, err = run('--init_std=0', '--num_steps=3', '--eval_interval=0',
                             '--eval_docs=50', '--num_samples=0')
        print(f'  --init_std=0: {[l for l in out.splitlines() if l.startswith("check")]}')
        self.assertEqual((code, err), (0, ''))
        self.assertIn('backprop equals finite differences to 0e+00 on 0 weights: no weight has '
                      'a gradient\n', out)
        self.assertEqual(step_losses(out), [round(math.log(27), 4)] * 3)
        val = re.search(r'val loss (\S+) .*\| train loss (\S+)', out)
        self.assertEqual(val.groups(), (f'{math.log(27):.4f}',) * 2)


class TheProofCatchesAnEdit(Case):
    """Issue 22: a learner edits a Part 1 function that Part 2 replaces, in a copy of the file,
    and runs it. Part 2 would train without the edit, silently; instead the run stops before its
    first step with one line that says what differs and how to train with the edit. With
    --part2=False the edit trains, and shows in what is printed."""

    def test_the_run_stops_before_training(self):
        for edit in BYPASSED:
            with self.subTest(edit=edit):
                code, out, err = result(edit, True)
                print(f'  {edit}, edited: exit {code}, {err.strip()}')
                self.assertEqual(code, 2)
                self.assertTrue(err.endswith('\n'))
                self.assertEqual(len(err.splitlines()), 1, err)
                self.assertTrue(err.startswith('microgpt: '), err)
                figure, value = named_figure(err)
                self.assertIn(figure, BYPASSED[edit])
                self.assertGreater(value, CHECK_TOL)
                self.assertIn('Part 1 was probably edited', err)
                self.assertIn('--part2=False', err)
                self.assertEqual([line for line in out.splitlines()
                                  if line.startswith(('step', 'check'))], [])

    def test_with_part2_false_the_edit_trains(self):
        _, unedited, _ = result(None, True)
        before = step_losses(unedited)
        for edit in BYPASSED:
            with self.subTest(edit=edit):
                code, out, err = result(edit, False)
                self.assertEqual((code, err), (0, ''))
                same, fd, n, alarm = check_figures(out)
                self.assertIsNone(same)  # Part 2 is off: the line says so
                losses = step_losses(out)
                print(f'  {edit}, edited, --part2=False: losses {losses} (unedited {before}), '
                      f'val {val_loss(out)} (unedited {val_loss(unedited)})')
                self.assertEqual(len(losses), 3)
                if edit != 'data':
                    self.assertNotEqual(losses[0], before[0])  # the edit is trained with
                    self.assertLessEqual(fd, CHAIN_TOL)  # and is differentiated right
                    self.assertFalse(alarm)
                    continue
                # training reads loss.data, not data(): the same steps; the val loss printed is
                # 1.05 times the unedited one (each rounded to 4 decimals)
                self.assertEqual(losses, before)
                diff = report('val loss of the edited evaluate() vs 1.05 x unedited',
                              abs(val_loss(out) - 1.05 * val_loss(unedited)), 1.1e-4)
                self.assertLessEqual(diff, 1.1e-4)
                # the check's finite differences are of Part 1's doc_losses() on floats, where
                # data() changes nothing: the chain rule intact, and no alarm
                self.assertLessEqual(fd, CHAIN_TOL)
                self.assertFalse(alarm)

    def test_the_switch_it_names_trains_the_edit_as_part_2_off_does(self):
        """Issue 28: after an edit to linear, dot, softmax or cross_entropy, --fused=False trains
        it (6-8x faster than --part2=False); after one to data, --no_grad=False. The refusal
        names that switch first; the run with it is accepted and prints what --part2=False
        prints: the same step losses and the same held-out loss."""
        for edit, switch in NARROWEST.items():
            with self.subTest(edit=edit):
                code, out, err = result(edit, True)
                self.assertIn(f'Part 1 was probably edited; --{switch}=False or --part2=False '
                              f'trains with it as written', err)
                code, out, err = result(edit, switch)
                self.assertEqual((code, err), (0, ''))
                same, fd, n, alarm = check_figures(out)
                self.assertLessEqual(same, CHECK_TOL)
                self.assertFalse(alarm)
                _, slow, _ = result(edit, False)
                print(f'  {edit}, edited, --{switch}=False: losses {step_losses(out)}, val '
                      f'{val_loss(out)}; --part2=False: {step_losses(slow)}, {val_loss(slow)}')
                self.assertEqual(step_losses(out), step_losses(slow))
                self.assertEqual(len(step_losses(out)), 3)
                self.assertEqual(val_loss(out), val_loss(slow))

    def test_an_edit_to_evaluate_is_not_bypassed(self):
        """Part 2 evaluates with Part 1's evaluate(), on float weights: the edit, a held-out
        loss 1.05 times as high, runs with part2 on, so the check passes and the run goes on."""
        _, unedited, _ = result(None, True)
        code, out, err = result('evaluate', True)
        self.assertEqual((code, err), (0, ''))
        self.assertLessEqual(check_figures(out)[0], CHECK_TOL)
        self.assertEqual(step_losses(out), step_losses(unedited))
        diff = report('val loss of the edited evaluate() vs 1.05 x unedited, part2 on',
                      abs(val_loss(out) - 1.05 * val_loss(unedited)), 1.1e-4)
        self.assertLessEqual(diff, 1.1e-4)

    def test_an_edit_to_batch_loss_is_not_bypassed(self):
        """Part 2's batch_loss() calls Part 1's (as part1_batch_loss), here and in each worker:
        the edit, a loss twice as high, runs with part2 on as with it off, so the check rightly
        passes and training goes on. Adam ignores the gradient's scale (but for eps), so each
        step's loss is twice the unedited one."""
        _, unedited, _ = result(None, True)
        for part2 in (True, False):
            code, out, err = result('batch_loss', part2)
            self.assertEqual((code, err), (0, ''), f'part2={part2}')
            same, fd, n, alarm = check_figures(out)
            self.assertLessEqual(same if part2 else 0.0, CHECK_TOL)  # off: no figure
            self.assertEqual(same is None, not part2)
            diff = report(f'batch_loss() edited, part2={part2}: step losses vs 2 x unedited',
                          max(abs(a - 2 * b) for a, b in zip(step_losses(out),
                                                             step_losses(unedited))), 1.6e-4)
            self.assertLessEqual(diff, 1.6e-4)  # 4 decimals each: 2 x 5e-5 + 5e-5, and eps
            self.assertEqual(val_loss(out), val_loss(unedited))  # evaluate() is not edited
            # A false alarm: the finite differences are of evaluate()'s loss, which the edit
            # leaves as it was, backprop of batch_loss()'s, which it doubles: |g/2 - g| / |g|.
            self.assertEqual((float(f'{fd:.0e}'), alarm), (5e-1, True))


class TheProofCatchesAWrongGradient(Case):
    """A wrong local gradient in Value.__mul__ (a copy of the file, d(ab)/da = a): with
    --part2=False it trains, and its check line reports backprop far from finite differences
    and says that this is not the chain rule; with part2 on, Part 2's gradients differ."""

    def test_a_wrong_local_gradient_is_reported(self):
        code, out, err = result('mul', False)
        self.assertEqual((code, err), (0, ''))
        same, fd, n, alarm = check_figures(out)
        print(f'  Value.__mul__ with a wrong local gradient, --part2=False: '
              f'{[line for line in out.splitlines() if line.startswith("check")][0]}')
        self.assertIsNone(same)
        self.assertGreater(fd, CHAIN_TOL)
        self.assertTrue(alarm)
        code, out, err = result('mul', True)
        self.assertEqual(code, 2)
        self.assertEqual(named_figure(err)[0], 'gradients')


if __name__ == '__main__':
    unittest.main()
