"""Part 3, running it: the training window (progress, the held-out loss during training,
divergence, the chart), evaluation progress, samples, explain(), and every way a learner runs
the file: the script, a pipe, Ctrl-C and SIGTERM, runpy/IDLE/%run with another stdout, a notebook
cell and the cells after it, a program that imports it, consoles and memory limits.

Each expectation comes from outside the code under test: a hand-made series, a computation here,
a spy on what microgpt calls, or a terminal emulated here. Every subprocess runs in a session of
its own, and each test checks that no process of it outlives it.
"""
import ast, contextlib, gc, io, json, math, os, random, re, signal, subprocess, sys, time
import tracemalloc, types, unittest
from unittest import mock

from tests.helpers import (Case, InTempDir, ROOT, SCRIPT, TINY, WORDS, EXACT_TOL, m, quiet,
                           reference_logits, report, slurp, tiny_model)

VOCAB = ''.join(sorted(set(''.join(WORDS))))
STEP_LINE = re.compile(r'^step +(\d+) / (\d+) \| loss (\S+) \| mean (\S+) \| (?:val (\S+) \| )?'
                       r'([\d.]+) ms/step \| eta (\d+)s +$', re.M)


class Terminal(io.StringIO):
    """A stdout that says it is a terminal."""

    def isatty(self):
        return True


def screen(text):
    """What a terminal shows after text: '\\r' goes back to the start of the line and overwrites
    it, '\\n' starts a new line, ESC[K (or ESC[0K) erases to the end of the line and ESC[2K all
    of it. Returns the lines, the last one unfinished."""
    lines, line, col = [], [], 0
    for token in re.findall(r'\x1b\[[02]?K|.', text, re.S):
        if token == '\r':
            col = 0
        elif token == '\n':
            lines.append(''.join(line))
            line, col = [], 0
        elif token.startswith('\x1b'):
            line = [' '] * col if token == '\x1b[2K' else line[:col]
        else:
            line[col:col + 1] = [token]
            col += 1
    return lines + [''.join(line)]


def plain(text):
    """text without terminal escape sequences (such as ESC[K, erase to the end of the line)."""
    return re.sub(r'\x1b\[[0-9;]*[A-Za-z]', '', text)


def running_means(series):
    return [sum(series[max(0, i - 99):i + 1]) / len(series[max(0, i - 99):i + 1])
            for i in range(len(series))]


def hand_series(series, clock=None, seconds=0.5):
    """A stand-in for train(): yields (step, series[step]) from start; each step moves the
    clock, if given, by seconds."""
    def train(train_docs, mm, vv, start=0):
        for step in range(start, len(series)):
            if clock is not None:
                clock[0] += seconds
            yield step, series[step]
    return mock.patch.object(m, 'train', train)


def fake_clock(clock):
    """microgpt's time module replaced by one whose time() reads clock[0]."""
    return mock.patch.object(m, 'time', types.SimpleNamespace(time=lambda: clock[0]))


def fmt4(x):
    return f'{x:.4f}'


def no_process_left(test, pgid):
    """No process of the session pgid is alive: a worker that outlived the run would be."""
    with test.assertRaises(ProcessLookupError, msg='a process of the run outlived it'):
        os.killpg(pgid, 0)


def start(test, args, cwd, env=None, python=(), preexec_fn=None, stdin=None):
    """Start a Python (microgpt.py with args, or python=('-c', code) and args) in a session of
    its own, so that the whole of it can be signalled and checked for survivors."""
    argv = [sys.executable, *(python or [SCRIPT]), *args]
    p = subprocess.Popen(argv, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         stdin=subprocess.PIPE if stdin is not None else None,
                         start_new_session=True, preexec_fn=preexec_fn)
    test.addCleanup(kill_group, p)
    return p


def kill_group(p):
    """After a test: whatever is left of p's session, killed (unless finish() saw none)."""
    if not getattr(p, 'none_left', False):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(p.pid, signal.SIGKILL)
    for f in (p.stdout, p.stderr, p.stdin):
        if f:
            f.close()
    p.wait()


def finish(test, p, stdin=None, timeout=120):
    """Wait for p; returns (exit code, stdout, stderr) as text, after checking that nothing of
    its session is left."""
    out, err = p.communicate(stdin.encode() if stdin is not None else None, timeout=timeout)
    no_process_left(test, p.pid)
    p.none_left = True
    return p.returncode, out.decode('utf-8', 'replace'), err.decode('utf-8', 'replace')


def cpu_seconds(pid):
    """The CPU time a process has used so far, from /proc; None where there is no /proc."""
    try:
        with open(f'/proc/{pid}/stat') as f:
            fields = f.read().rsplit(')', 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf('SC_CLK_TCK')  # utime + stime


def launch(test, *args, cwd=ROOT, env=None, python=(), preexec_fn=None, stdin=None,
           timeout=120):
    p = start(test, args, cwd, env, python, preexec_fn, stdin)
    return finish(test, p, stdin, timeout)


# ================================ the training window ================================

class TrainingProgress(Case):
    """The progress line: the step's loss, the running mean, the time, where it is printed."""

    def test_printed_step_loss_is_the_mean_over_positions(self):
        tiny_model('--num_steps=1', '--eval_interval=0', vocab=VOCAB, seed=5)
        tokens = m.encode('sophia')  # short enough to be read whole
        logits = reference_logits(m.float_weights(), tokens[:-1])
        per_position = [math.log(sum(math.exp(x) for x in lg)) - lg[tokens[t + 1]]
                        for t, lg in enumerate(logits)]
        n = len(m.params)
        _, out = quiet(m.run_training, ['sophia'], ['emma'], [0.0] * n, [0.0] * n)
        printed = float(STEP_LINE.search(out).group(3))
        expected = sum(per_position) / len(per_position)
        report('printed step loss vs the mean of reference losses', abs(printed - expected), 5e-5)
        self.assertEqual(f'{printed:.4f}', fmt4(expected))
        self.assertNotEqual(f'{printed:.4f}', fmt4(sum(per_position)))  # not the sum

    def test_running_mean_of_a_known_series(self):
        tiny_model('--num_steps=150', '--eval_interval=0')
        series = [float(i % 7) for i in range(150)]
        with hand_series(series):
            _, out = quiet(m.run_training, WORDS, WORDS[:2], [], [])
        lines = STEP_LINE.findall(out)
        self.assertEqual([int(s[0]) for s in lines], list(range(15, 151, 15)))  # every tenth
        worst = 0.0
        for step, _, loss, mean, *_ in lines:
            recent = series[max(0, int(step) - 100):int(step)]  # the last 100 steps, by hand
            self.assertEqual(loss, fmt4(series[int(step) - 1]))
            self.assertEqual(mean, fmt4(sum(recent) / len(recent)))
            worst = max(worst, abs(float(mean) - sum(recent) / len(recent)))
        report('printed running mean vs the mean of the last 100, by hand', worst, 5e-5)
        chart = m.chart({'·': list(enumerate(running_means(series), 1))})
        self.assertIn('\n'.join(chart), out)  # the chart is of the running means

    def test_piped_a_line_every_tenth_of_the_run_and_at_the_end(self):
        tiny_model('--num_steps=25', '--eval_interval=0')
        with hand_series([3.0] * 25):
            _, out = quiet(m.run_training, WORDS, WORDS[:2], [], [])
        steps = [int(s[0]) for s in STEP_LINE.findall(out)]
        self.assertEqual(steps, [2 * k for k in range(1, 13)] + [25])  # 25 // 10 = 2, and the end
        self.assertNotIn('\r', out)

    def test_in_a_terminal_every_step_in_place_and_the_last_one_stays(self):
        tiny_model('--num_steps=20', '--eval_interval=0')
        out, clock = Terminal(), [0.0]
        with hand_series([3.0 - 0.05 * i for i in range(20)], clock), fake_clock(clock), \
                contextlib.redirect_stdout(out):
            m.run_training(WORDS, WORDS[:2], [], [])
        text = out.getvalue()
        first_line = text.split('\n')[0]
        draws = plain(first_line).split('\r')  # each step drawn over the one before
        self.assertEqual([int(STEP_LINE.match(d).group(1)) for d in draws], list(range(1, 21)))
        self.assertEqual(screen(text)[0].rstrip(), draws[-1].rstrip())

    def test_a_narrow_terminal_gets_lines_that_fit(self):
        """A line wider than the terminal wraps, and then cannot be drawn over in place."""
        tiny_model('--num_steps=20', '--eval_interval=5', '--eval_iters=2')
        out, clock = Terminal(), [0.0]
        with hand_series([3.0 - 0.05 * i for i in range(20)], clock), fake_clock(clock), \
                contextlib.redirect_stdout(out), \
                mock.patch('shutil.get_terminal_size', return_value=os.terminal_size((50, 24))):
            m.run_training(WORDS, WORDS[:2], [], [])
        draws = plain(out.getvalue().split('\n')[0]).split('\r')
        self.assertEqual(len(draws), 20)
        self.assertLessEqual(max(map(len, draws)), 49)
        self.assertTrue(all(d.startswith(f'step {i + 1:5d} / 20 |') for i, d in enumerate(draws)))

    def test_a_terminal_shows_the_newest_line_whole_when_it_is_shorter(self):
        """A line redrawn in place over a longer one must not leave the end of the longer one
        on the screen: here the loss drops from 10.5 to 0.5, two characters shorter."""
        tiny_model('--num_steps=3', '--eval_interval=0',
                   vocab=''.join(chr(0x4e00 + i) for i in range(2000)))  # 1.5 ln(2001) > 10.5
        out, clock = Terminal(), [0.0]
        with hand_series([10.5, 0.5, 0.5], clock), fake_clock(clock), \
                contextlib.redirect_stdout(out):
            m.run_training(WORDS, WORDS[:2], [], [])
        shown = screen(out.getvalue())
        for k in (1, 2):  # after the shorter step 2, and after the last step
            drawn = out.getvalue().split('\n')[0].split('\r')[:k + 1]
            self.assertEqual(screen('\r'.join(drawn))[0].rstrip(), plain(drawn[-1]).rstrip(),
                             'the end of a longer line is left on the screen')
        self.assertIn('loss 0.5000 | mean 3.8333', shown[0])

    def test_time_per_step_and_eta_from_the_clock_also_when_resuming(self):
        for first in (0, 5):
            tiny_model('--num_steps=20', '--eval_interval=0')
            clock = [100.0]
            with hand_series([3.0] * 20, clock, seconds=0.5), fake_clock(clock):
                done, out = quiet(m.run_training, WORDS, WORDS[:2], [], [], first)
            self.assertEqual(done, 20)
            lines = STEP_LINE.findall(out)
            self.assertEqual([int(s[0]) for s in lines],  # a tenth of 20: every 2 steps
                             [s for s in range(first + 1, 21) if s % 2 == 0])
            for step, total, _, _, _, ms, eta in lines:
                self.assertEqual(ms, '500.0')  # 0.5 s per step done in this run
                self.assertEqual(int(eta), round(0.5 * (20 - int(step))))


class HeldOutDuringTraining(Case):
    """Every eval_interval steps and at the last step, the loss on val_docs[:eval_iters]."""

    def spied_run(self, *flags, val=('mia', 'ava', 'luna', 'ella', 'aria'), stop_at=None,
                  stop_in_evaluation=False):
        tiny_model(*flags, vocab=VOCAB, seed=2)
        n = len(m.params)
        calls, done = [], [0]
        real_train, real_evaluate = m.train, m.evaluate

        def train(*args):
            for step, loss in real_train(*args):
                done[0] = step + 1
                if stop_at == step + 1:
                    os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C during this step
                yield step, loss

        def evaluate(docs, progress=None):
            if stop_in_evaluation and not calls:
                os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C during the first evaluation
            result = real_evaluate(docs, progress)
            calls.append((done[0], list(docs), result))
            return result
        with mock.patch.object(m, 'train', train), mock.patch.object(m, 'evaluate', evaluate):
            _, out = quiet(m.run_training, WORDS[:8], list(val), [0.0] * n, [0.0] * n)
        return calls, out

    def test_every_interval_and_at_the_end_on_the_first_eval_iters_held_out_docs(self):
        val = ['mia', 'ava', 'luna', 'ella', 'aria']
        calls, out = self.spied_run('--num_steps=12', '--eval_interval=5', '--eval_iters=3')
        self.assertEqual([c[0] for c in calls], [5, 10, 12])
        for _, docs, _ in calls:
            self.assertEqual(docs, val[:3])
        lines = STEP_LINE.findall(out)
        self.assertEqual([int(s[0]) for s in lines], list(range(1, 13)))
        for step, *_, shown, _, _ in lines:  # the newest held-out loss, none before step 5
            latest = [result for at, _, result in calls if at <= int(step)]
            self.assertEqual(shown, fmt4(latest[-1]) if latest else '')
        plot = [line for line in out.splitlines() if '│' in line]  # the chart's grid:
        self.assertEqual(sum(line.count('o') for line in plot), 3)  # an o per evaluation
        self.assertIn('o held-out loss (3 docs)', out)

    def test_at_a_stop(self):
        calls, out = self.spied_run('--num_steps=50', '--eval_interval=20', '--eval_iters=2',
                                    stop_at=3)
        self.assertEqual([(c[0], c[1]) for c in calls], [(3, ['mia', 'ava'])])
        self.assertIn('stopped by Ctrl-C at step 3', out)
        self.assertEqual(STEP_LINE.findall(out)[-1][4], fmt4(calls[0][2]))

    def test_a_stop_during_an_evaluation_shows_that_step(self):
        """Ctrl-C while step 3's held-out loss is computed (not a step that prints a line by
        itself): the run stops at step 3 and shows step 3's line, with that held-out loss."""
        calls, out = self.spied_run('--num_steps=50', '--eval_interval=3', '--eval_iters=2',
                                    stop_in_evaluation=True)
        self.assertEqual(calls[0][:2], (3, ['mia', 'ava']))
        self.assertIn('stopped by Ctrl-C at step 3', out)
        lines = STEP_LINE.findall(out)
        self.assertTrue(lines, out)
        self.assertEqual((lines[-1][0], lines[-1][4]), ('3', fmt4(calls[-1][2])))

    def test_more_eval_iters_than_held_out_docs_scores_them_all(self):
        calls, out = self.spied_run('--num_steps=2', '--eval_interval=1', '--eval_iters=50')
        self.assertEqual([c[1] for c in calls], [['mia', 'ava', 'luna', 'ella', 'aria']] * 2)
        self.assertIn('o held-out loss (5 docs)', out)

    def test_none_with_eval_interval_or_eval_iters_0(self):
        for flag in ('--eval_interval=0', '--eval_iters=0'):
            calls, out = self.spied_run('--num_steps=12', flag)
            self.assertEqual(calls, [])
            self.assertEqual([s[4] for s in STEP_LINE.findall(out)], [''] * 12)
            self.assertNotIn('held-out', out)
            self.assertFalse(any('o' in line for line in out.splitlines() if '│' in line))

    def test_it_changes_nothing_in_training(self):
        weights = []
        for interval in ('0', '3'):
            self.spied_run('--num_steps=7', f'--eval_interval={interval}')
            weights.append(m.float_weights())
        self.assertEqual(weights[0], weights[1])


class Divergence(InTempDir):
    """A loss far above a uniform guess is told once; a nan or inf loss stops the run."""

    def test_told_once_at_the_step_the_running_mean_passes_1_5_ln_vocab_size(self):
        losses, real_train = [], m.train

        def train(*args):
            for step, loss in real_train(*args):
                losses.append(loss)
                yield step, loss
        flags = [f'--input_file={self.file}', '--learning_rate=1', '--num_steps=30',
                 '--eval_docs=2', '--num_samples=2', '--eval_interval=0', *TINY]
        with mock.patch.object(m, 'train', train):
            _, out = quiet(m.main, flags)
        vocab_size = len(VOCAB) + 1
        means = running_means(losses)
        first = next(i for i, x in enumerate(means) if x > 1.5 * math.log(vocab_size))
        told = [line for line in out.splitlines() if 'diverges' in line]
        self.assertEqual(len(told), 1, out)
        self.assertTrue(told[0].startswith(f'step {first + 1}: '), told[0])
        self.assertIn(f'mean loss {m.fmt(means[first])}', told[0])
        self.assertIn('--learning_rate', told[0])
        self.assertEqual(len(re.findall(r'^sample +\d+: ', out, re.M)), 2)  # the run went on
        self.assertIn('val loss', out)
        code, out, err = launch(self, *flags, cwd=self.d)
        self.assertEqual((code, err), (0, ''))
        self.assertEqual(sum('diverges' in line for line in out.splitlines()), 1)

    def test_huge_losses_print_short(self):
        self.assertEqual(m.fmt(1.23e21), '1.23e+21')
        self.assertEqual(m.fmt(12345.6), '1.23e+04')
        self.assertEqual(m.fmt(2.34567), '2.3457')
        tiny_model('--num_steps=3', '--eval_interval=0')
        series = [1.23e21, 3.0e21, 4.56e22]
        with hand_series(series):
            _, out = quiet(m.run_training, WORDS, WORDS[:2], [], [])
        last = STEP_LINE.findall(out)[-1]
        self.assertEqual((last[2], last[3]), ('4.56e+22', f'{sum(series) / 3:.3g}'))
        self.assertLessEqual(max(len(line) for line in out.splitlines()
                                 if 'diverges' not in line), 100)

    def test_a_nan_loss_stops_with_one_line_and_exit_1(self):
        code, out, err = launch(self, f'--input_file={self.file}', '--learning_rate=1e300',
                                '--num_steps=50', *TINY, cwd=self.d)
        self.assertEqual(code, 1, err)
        self.assertRegex(err, r'^microgpt: loss nan/inf at step \d+: lower --learning_rate\n$')
        self.assertNotIn('sample', out)

    def test_a_nan_loss_in_a_program_is_an_error_and_leaves_nothing_behind(self):
        tiny_model('--num_steps=5', '--batch_size=2', '--workers=2')
        handlers = [signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)]
        workers, real_fmt = [], m.fmt

        def fmt(loss):  # while training: note the worker processes
            workers.extend(process.pid for _, process in m.pool)
            return real_fmt(loss)
        with hand_series([3.0, 3.0, math.nan, 3.0, 3.0]), mock.patch.object(m, 'fmt', fmt):
            with self.assertRaises(m.MicrogptError) as e:
                quiet(m.run_training, WORDS, WORDS[:2], [], [])
        self.assertEqual(e.exception.code, 1)
        self.assertTrue(workers)
        for pid in set(workers):  # each one killed and reaped
            with self.assertRaises(ProcessLookupError):
                os.kill(pid, 0)
        self.assertIn('step 3', str(e.exception))
        self.assertEqual([signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)], handlers)
        self.assertTrue(gc.isenabled())
        self.assertEqual(m.pool, [])

    def test_weights_gone_nan_or_inf_at_the_last_step_stop_with_one_message(self):
        """The loss still finite: the weights are checked after training too."""
        tiny_model('--num_steps=3', '--eval_interval=0')

        def train(train_docs, mm, vv, start=0):
            yield 0, 3.0
            yield 1, 3.0
            m.params[5].data = math.inf  # what a huge Adam step does
            yield 2, 3.0
        with mock.patch.object(m, 'train', train), self.assertRaises(m.MicrogptError) as e:
            quiet(m.run_training, WORDS, WORDS[:2], [], [])
        self.assertEqual(e.exception.code, 1)
        self.assertIn('step 3', str(e.exception))
        self.assertIn('--learning_rate', str(e.exception))


class Chart(Case):
    """chart({mark: [(step, loss)]}) on hand-made series."""

    def grid(self, lines):
        """(labels, rows) of the plot area: the lines with '│'."""
        plot = [line.split('│', 1) for line in lines if '│' in line]
        return [label.strip() for label, _ in plot], [row for _, row in plot]

    def marks(self, rows, mark='·'):
        """(column, row) of every mark, left to right."""
        return sorted((c, r) for r, row in enumerate(rows) for c, ch in enumerate(row)
                      if ch == mark)

    def test_highest_on_the_top_row_lowest_on_the_bottom_row_evenly_between(self):
        lo, hi = 1.9909, 2.8954  # 7 * (hi - lo) / (hi - lo) is 6.999999999999999 in floats
        self.assertLess(7 * (hi - lo) / (hi - lo), 7)
        rng = random.Random(3)
        series = [rng.uniform(lo, hi) for _ in range(48)]
        series[17:17] = [hi]
        series[40:40] = [lo]
        lines = m.chart({'·': list(enumerate(series, 1))})
        labels, rows = self.grid(lines)
        marks = self.marks(rows)
        self.assertEqual(len(marks), 50)  # one column per step, in order
        drawn = [r for _, r in marks]
        self.assertEqual(drawn[17], 0)
        self.assertEqual(drawn[40], len(rows) - 1)
        off = max(abs(r - (len(rows) - 1) * (hi - y) / (hi - lo)) for r, y in zip(drawn, series))
        report('chart row vs (rows - 1) * (hi - y) / (hi - lo)', off, 0.5)
        self.assertLessEqual(off, 0.5 + 1e-9)
        self.assertEqual(labels[0], fmt4(hi))
        self.assertEqual(labels[-1], fmt4(lo))
        self.assertEqual(labels[1:-1], [''] * (len(rows) - 2))

    def test_a_near_constant_series_is_flat(self):
        for series in ([2.0] * 30, [3.0 + 3e-4 * math.sin(i) for i in range(30)], [0.0] * 5):
            labels, rows = self.grid(m.chart({'·': list(enumerate(series, 1))}))
            marks = self.marks(rows)
            self.assertEqual(len(marks), len(series))
            self.assertEqual(len({r for _, r in marks}), 1, series[:3])  # on one row
            top, bottom = float(labels[0]), float(labels[-1])
            self.assertLessEqual(bottom, min(series) + 5e-5)
            self.assertGreaterEqual(top, max(series) - 5e-5)
            self.assertGreater(top, bottom)

    def test_a_ramp_rises(self):
        lines = m.chart({'·': [(s, float(s)) for s in range(1, 41)]})
        labels, rows = self.grid(lines)
        drawn = [r for _, r in self.marks(rows)]
        self.assertEqual(len(drawn), 40)
        self.assertEqual(drawn, sorted(drawn, reverse=True))  # never lower than the step before
        self.assertEqual(set(drawn), set(range(len(rows))))  # every row, bottom to top
        self.assertEqual((labels[0], labels[-1]), ('40.0000', '1.0000'))

    def test_a_column_shows_the_mean_of_its_steps(self):
        series = [1.0, 3.0] * 59 + [2.0]  # 119 steps in 60 columns: two a column, the last one
        # alone; each column's mean is 2
        _, rows = self.grid(m.chart({'·': list(enumerate(series, 1))}))
        self.assertEqual(len({r for _, r in self.marks(rows)}), 1)

    def test_two_curves_each_with_its_own_mark(self):
        high = [(s, 10.0) for s in range(1, 51)]
        low = [(s, 0.0) for s in (10, 20, 30, 40, 50)]
        lines = m.chart({'a': high, 'b': low})
        labels, rows = self.grid(lines)
        a, b = self.marks(rows, 'a'), self.marks(rows, 'b')
        self.assertEqual({r for _, r in a}, {0})
        self.assertEqual({r for _, r in b}, {len(rows) - 1})
        self.assertEqual(len(a), 50)
        self.assertEqual([c for c, _ in b], [a[s - 1][0] for s, _ in low])  # at their steps
        self.assertEqual((labels[0], labels[-1]), ('10.0000', '0.0000'))
        _, rows = self.grid(m.chart({'a': high, 'z': low, 'b': [(25, 10.0)]}))  # one place:
        self.assertEqual(rows[0][a[24][0]], 'b')  # the later curve is drawn over the earlier

    def test_every_line_fits_in_100_columns(self):
        for last in (1, 7, 1000, 10 ** 7):
            lines = m.chart({'·': [(1, 12345.678), (last, -0.5)], 'o': [(last, 3.0)]})
            self.assertLessEqual(max(map(len, lines)), 100, lines)


# ================================ evaluation progress ================================

class EvaluationProgress(Case):
    """progress_of(name): in place in a terminal from 1 s on; elsewhere a line every 10 s."""

    def calls(self, out, times, total):
        clock = [0.0]
        seen = []
        with fake_clock(clock), contextlib.redirect_stdout(out):
            progress = m.progress_of('held-out docs')
            for done, t in enumerate(times, 1):
                clock[0] = t
                progress(done, total)
                seen.append(screen(out.getvalue())[-1].rstrip())
        return seen

    def test_in_a_terminal_in_place_from_1_s_on_and_cleared_at_the_end(self):
        out = Terminal()
        seen = self.calls(out, [0.3, 0.9, 1.5, 2.5, 3.0], 5)
        self.assertEqual(seen, ['', '', 'evaluating held-out docs: 3 / 5',
                                'evaluating held-out docs: 4 / 5', ''])
        self.assertNotIn('\n', out.getvalue())  # all on one line, in place

    def test_a_fast_evaluation_in_a_terminal_shows_nothing(self):
        out = Terminal()
        self.calls(out, [0.1, 0.2, 0.3], 3)
        self.assertEqual(out.getvalue(), '')

    def test_elsewhere_a_whole_line_every_10_s(self):
        out = io.StringIO()
        self.calls(out, [5, 9.9, 10, 15, 19.9, 20.5, 31, 32], 8)
        self.assertEqual(re.findall(r'^evaluating held-out docs: (\d+) / 8\n', out.getvalue(),
                                    re.M), ['3', '6', '7'])
        self.assertNotIn('\r', out.getvalue())

    def test_evaluate_calls_it_after_each_doc(self):
        tiny_model(vocab=VOCAB)
        for no_grad in (True, False):
            m.no_grad = no_grad
            seen = []
            m.evaluate(WORDS[:4], lambda done, total: seen.append((done, total)))
            self.assertEqual(seen, [(1, 4), (2, 4), (3, 4), (4, 4)])


# ===================================== samples =====================================

class FinalEvaluation(InTempDir):
    """After training, `val loss` scores the held-out documents and `train loss` as many
    training documents."""

    def test_val_loss_scores_the_held_out_documents(self):
        calls = []
        real = m.evaluate

        def evaluate(docs, progress=None):
            calls.append((list(docs), real(docs)))
            return calls[-1][1]
        with mock.patch.object(m, 'evaluate', evaluate):
            _, out = quiet(m.main, [f'--input_file={self.file}', '--num_steps=3', '--eval_docs=4',
                                    '--eval_interval=0', '--num_samples=0', *TINY])
        random.seed(m.seed)
        train, val = m.split_docs(slurp(self.file, 'r'))
        self.assertTrue(set(val).isdisjoint(train))
        self.assertEqual([docs for docs, _ in calls], [val[:4], train[:4]])
        self.assertIn(f'val loss {calls[0][1]:.4f} | train loss {calls[1][1]:.4f}', out)


class Samples(InTempDir):
    """How main() prints the samples, and how many copy a training document."""

    def run_main(self, *flags):
        _, out = quiet(m.main, [f'--input_file={self.file}', '--num_steps=0', '--eval_docs=0',
                                *TINY, *flags])
        return re.findall(r'^sample +\d+: (.*)$', out, re.M), out

    def ends_at(self, end):
        """A stand-in for gpt() that makes sample() draw 'a' before position end and BOS
        from there on."""
        def gpt(token_id, pos_id, keys, values, sd=None, attention=None):
            logits = [-1e9] * m.vocab_size
            logits[m.BOS if pos_id >= end else m.stoi['a']] = 0.0
            return logits
        return mock.patch.object(m, 'gpt', gpt)

    def test_cut_at_block_size_shows_an_ellipsis_an_empty_one_says_so(self):
        cases = {100: 'aaaaaaaa…', 8: 'aaaaaaaa…', 7: 'aaaaaaa', 3: 'aaa', 0: '(empty)'}
        for end, shown in cases.items():
            with self.ends_at(end):
                samples, _ = self.run_main('--num_samples=1')
            self.assertEqual(samples, [shown], end)
        with self.ends_at(100):
            samples, _ = self.run_main('--num_samples=1', '--prompt=mi')
        self.assertEqual(samples, ['miaaaaaa…'])  # the prompt counts in the context

    def test_new_and_copies_against_the_split(self):
        split, real_split = [], m.split_docs

        def spy(text):
            split.append(real_split(text))
            return split[-1]
        picks = iter([lambda t, v: t[0], lambda t, v: t[1], lambda t, v: v[0],
                      lambda t, v: 'zzzz', lambda t, v: t[0], lambda t, v: ''])
        with mock.patch.object(m, 'split_docs', spy), \
                mock.patch.object(m, 'sample', lambda sd=None: next(picks)(*split[0])):
            samples, out = self.run_main('--num_samples=6')
        train, val = split[0]
        self.assertNotIn(val[0], train)
        self.assertEqual(samples, [train[0], train[1], val[0], 'zzzz', train[0], '(empty)'])
        self.assertIn('3 of 6 samples are new, 3 copy a train doc', out)


# ===================================== explain() =====================================

class Explain(Case):
    """explain(text): the numbers gpt() computes, shown position by position."""

    def rows_of(self, out):
        """(pos, read, next) of each position's line."""
        return re.findall(r'^ *(\d+)   (\S)    (\S) ', out, re.M)

    def test_the_numbers_are_what_an_independent_computation_gives(self):
        tiny_model(vocab=VOCAB, seed=12)
        rows, out = quiet(m.explain, 'emma')
        tokens = m.encode('emma')
        sd = m.float_weights()
        d = m.n_embd // m.n_head

        def norm(x):
            return [v / math.sqrt(sum(u * u for u in x) / len(x) + 1e-5) for v in x]

        def matvec(W, x):
            return [sum(w * v for w, v in zip(row, x)) for row in W]
        x = [norm([a + b for a, b in zip(sd['wte'][tok], sd['wpe'][t])])
             for t, tok in enumerate(tokens[:-1])]
        worst = 0.0
        for t, row in enumerate(rows):
            logits = reference_logits(sd, tokens[:t + 1])[t]
            p = [math.exp(v) / sum(math.exp(u) for u in logits) for v in logits]
            worst = max(worst, max(abs(a - b) for a, b in zip(row['probs'], p)))
            worst = max(worst, abs(row['loss'] + math.log(p[tokens[t + 1]])))
            q = matvec(sd['layer0.attn_wq'], norm(x[t]))  # layer 0's attention, by hand
            ks = [matvec(sd['layer0.attn_wk'], norm(x[s])) for s in range(t + 1)]
            for h in range(m.n_head):
                scores = [sum(a * b for a, b in zip(q[h * d:h * d + d], k[h * d:h * d + d]))
                          / math.sqrt(d) for k in ks]
                e = [math.exp(s - max(scores)) for s in scores]
                worst = max(worst, max(abs(a - b / sum(e))
                                       for a, b in zip(row['attention'][h], e)))
            self.assertEqual(len(row['attention']), m.n_layer * m.n_head)
            self.assertIn(f'{p[tokens[t + 1]]:7.4f} {-math.log(p[tokens[t + 1]]):6.3f} |', out)
        report('explain(): probabilities, loss and attention vs an independent computation',
               worst, EXACT_TOL)
        self.assertLessEqual(worst, EXACT_TOL)
        self.assertEqual(len(rows), 5)  # e, m, m, a and the end
        self.assertIn(f'mean loss {sum(r["loss"] for r in rows) / 5:.4f} over 5 predictions',
                      out)
        heads = re.findall(r'^ +layer (\d) head (\d) ', out, re.M)
        self.assertEqual(heads[:4], [('0', '0'), ('0', '1'), ('1', '0'), ('1', '1')])
        self.assertLessEqual(max(map(len, out.splitlines())), 100)

    def test_bos_is_a_pilcrow_a_dot_is_a_dot_a_space_a_middle_dot(self):
        tiny_model(vocab='abc. ')
        _, out = quiet(m.explain, 'a. b')
        header = out.splitlines()[0]
        self.assertIn('¶', header)
        self.assertIn('BOS', header)
        self.assertEqual(self.rows_of(out), [('0', '¶', 'a'), ('1', 'a', '.'), ('2', '.', '·'),
                                             ('3', '·', 'b'), ('4', 'b', '¶')])
        self.assertIn('reads ¶ a . · b\n', out)

    def test_a_text_longer_than_the_context_gets_a_note(self):
        tiny_model(vocab='0123456789')  # block_size 8: 8 predictions
        for text, note in (('0123456', False), ('01234567', True), ('0123456789', True)):
            rows, out = quiet(m.explain, text)
            lines = out.splitlines()
            between = lines[1:lines.index('pos read next  p(next)   loss | top 5 guesses')]
            self.assertEqual(len(rows), min(len(text) + 1, 8), text)
            self.assertEqual(self.rows_of(out)[-1][2], text[7] if note else '¶')
            self.assertEqual(len(between), int(note), out)
            if note:  # which part: 8 positions, up to the 8th character, '7'
                self.assertIn('8', between[0])
                self.assertIn('7', between[0])

    def test_with_a_one_position_context_the_note_names_the_part_too(self):
        m.configure(['--n_embd=8', '--n_head=2', '--block_size=1'])  # a bigram model
        m.use_vocab('0123456789')
        random.seed(0)
        m.use_weights()
        rows, out = quiet(m.explain, '01')
        lines = out.splitlines()
        between = lines[1:lines.index('pos read next  p(next)   loss | top 5 guesses')]
        self.assertEqual(self.rows_of(out), [('0', '¶', '0')])  # reads BOS, predicts '0'
        self.assertEqual(len(between), 1, out)
        self.assertIn('0', between[0])  # which part: the prediction of '0'

    def test_unknown_characters_are_refused_before_any_training(self):
        with open(os.path.join(ROOT, 'input.txt'), encoding='utf-8') as f:
            self.assertNotIn('E', f.read())
        began = time.time()
        code, out, err = launch(self, '--explain=Emma', '--num_steps=1000000', timeout=30)
        self.assertEqual(code, 2, err)
        self.assertEqual(len(err.strip().splitlines()), 1, err)
        self.assertIn('--explain', err)
        self.assertIn("'E'", err)
        self.assertNotRegex(out, r'(?m)^step ')
        self.assertLess(time.time() - began, 20)

    def test_before_any_model_it_says_so(self):
        code, out, err = launch(self, python=('-c', (
            'import microgpt\n'
            'try:\n    microgpt.explain("emma")\n'
            'except microgpt.MicrogptError as e:\n    print("refused", e.code, e)\n')))
        self.assertEqual(code, 0, err)
        self.assertTrue(out.startswith('refused 2 '), out)
        self.assertEqual(len(out.splitlines()), 1)

    def test_interrupted_it_leaves_nothing_behind_and_training_memory_stays_flat(self):
        tiny_model('--num_steps=24', '--eval_interval=0', vocab=VOCAB, seed=4)
        before = {k: v for k, v in vars(m).items() if callable(v)}
        handlers = [signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)]
        weights, settings, tape = m.float_weights(), m.settings(), len(m.tape)
        real_gpt, calls = m.gpt, []

        def gpt(*args, **kwargs):
            calls.append(1)
            if len(calls) == 3:
                raise KeyboardInterrupt  # Ctrl-C in the middle of the third position
            return real_gpt(*args, **kwargs)
        with mock.patch.object(m, 'gpt', gpt), self.assertRaises(KeyboardInterrupt):
            quiet(m.explain, 'emma')
        self.assertEqual({k: v for k, v in vars(m).items() if callable(v)}, before)
        self.assertEqual([signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)],
                         handlers)
        self.assertEqual((m.float_weights(), m.settings(), len(m.tape)), (weights, settings, tape))
        self.assertTrue(gc.isenabled())
        sizes, real_adam = [], m.adam_step

        def adam_step(*args):
            real_adam(*args)
            sizes.append(tracemalloc.get_traced_memory()[0])
        n = len(m.params)
        tracemalloc.start()
        try:
            with mock.patch.object(m, 'adam_step', adam_step):
                quiet(m.run_training, WORDS, WORDS[:2], [0.0] * n, [0.0] * n)
        finally:
            tracemalloc.stop()
        tail = sizes[4:]  # after a few steps of warming up
        xs = range(len(tail))
        mx, my = sum(xs) / len(tail), sum(tail) / len(tail)
        slope = (sum((x - mx) * (y - my) for x, y in zip(xs, tail))
                 / sum((x - mx) ** 2 for x in xs))
        print(f'  traced heap after steps 5..24: {min(tail)} to {max(tail)} bytes, '
              f'{slope:.0f} bytes/step')
        self.assertLess(slope, 2000)  # one step's graph, if kept, is ~100 kB
        self.assertLess(max(tail) - min(tail), 50000)


# ============================ the ways people run it ============================

class Script(InTempDir):
    """`python microgpt.py` with small flags, as a user runs it."""

    def test_the_whole_run_in_order(self):
        code, out, err = launch(self, f'--input_file={self.file}', *TINY, '--num_steps=20',
                                '--eval_interval=10', '--eval_iters=4', '--eval_docs=5',
                                '--num_samples=3', cwd=self.d)
        self.assertEqual((code, err), (0, ''))
        v, n, b, layers = len(VOCAB) + 1, 8, 8, 2
        params = 2 * v * n + b * n + layers * 12 * n * n  # wte, lm_head, wpe; 12 n^2 a layer
        self.assertRegex(out.splitlines()[0],
                         rf'^\d+ train docs, \d+ held out \| vocab {v} \| {params} params \|')
        steps = STEP_LINE.findall(out)
        self.assertEqual([int(s[0]) for s in steps], list(range(2, 21, 2)))
        self.assertEqual([bool(s[4]) for s in steps], [False] * 4 + [True] * 6)
        self.assertRegex(out, r'step +20 / 20 .*\n(.*│.*\n){8}.*└─+\n *step 1 +step 20\n'
                              r' *· train loss.*o held-out loss \(4 docs\)\n'
                              r'val loss [\d.]+ \| train loss [\d.]+\n'
                              r'sample  1: .*\nsample  2: .*\nsample  3: .*\n'
                              r'\d of 3 samples are new, \d copy a train doc\n$')
        self.assertLessEqual(max(map(len, out.splitlines())), 100)
        self.assertEqual(sorted(os.listdir(self.d)), ['words.txt'])

    def test_python_dash_m_microgpt(self):
        code, out, err = launch(self, f'--input_file={self.file}', *TINY, '--num_steps=4',
                                '--eval_docs=3', '--num_samples=2', python=('-m', 'microgpt'))
        self.assertEqual((code, err), (0, ''))
        self.assertIn('step     4 / 4 |', out)
        self.assertIn('sample  2: ', out)


class Pipe(InTempDir):
    """Output piped into a reader that stops early, like `| head -1`: a quiet stop."""

    def piped(self, *flags):
        p = start(self, [f'--input_file={self.file}', *TINY, *flags], self.d)
        self.assertIn(b'train docs', p.stdout.readline())
        p.stdout.close()
        err = p.stderr.read().decode()
        p.stderr.close()
        p.wait(timeout=60)
        no_process_left(self, p.pid)
        p.none_left = True
        self.assertEqual(err, '')
        self.assertEqual(p.returncode, 0)

    def test_closed_while_sampling(self):
        self.piped('--num_steps=0', '--eval_docs=0', '--num_samples=5000')

    def test_closed_while_training_with_workers(self):
        self.piped('--num_steps=30', '--batch_size=4', '--workers=2', '--eval_docs=0',
                   '--num_samples=5000')


class CtrlCAndSigterm(InTempDir):
    """Ctrl-C or SIGTERM during training stops it after the step; the run goes on."""

    def test_a_worker_that_dies_is_an_error_not_a_hang(self):
        tiny_model('--num_steps=50', '--batch_size=4', '--workers=2', '--eval_interval=0')
        real = m.adam_step

        def adam_step(step, mm, vv, lr):
            if step == 2:
                m.pool[0][1].kill()  # as the out-of-memory killer would
                m.pool[0][1].join()
            real(step, mm, vv, lr)
        with mock.patch.object(m, 'adam_step', adam_step):
            with self.assertRaises(m.MicrogptError) as cm:
                quiet(m.run_training, WORDS, WORDS[:2], [0.0] * len(m.params),
                      [0.0] * len(m.params))
        self.assertEqual(cm.exception.code, 1)
        self.assertIn('worker', str(cm.exception))
        self.assertEqual(m.pool, [])

    def test_training_in_another_thread(self):
        """A GUI or a web app may call main() from a thread: no signals there, but it trains."""
        import threading
        done = []
        thread = threading.Thread(target=lambda: done.append(quiet(
            m.main, [f'--input_file={self.file}', '--num_steps=3', '--eval_docs=2',
                     '--num_samples=1', *TINY])))
        thread.start()
        thread.join(60)
        self.assertEqual(len(done), 1)
        self.assertIn('step     3 / 3', done[0][1])

    def interrupt(self, send, *flags):
        p = start(self, [f'--input_file={self.file}', '--num_steps=10000000', '--num_samples=2',
                         '--eval_interval=0', *TINY, *flags], self.d)
        self.assertIn(b'train docs', p.stdout.readline())  # training starts right after this
        began, cpu = time.time(), cpu_seconds(p.pid)
        if cpu is None:  # no /proc: give it time
            time.sleep(1.5)
        while cpu is not None:  # wait for 0.2 s of work after that line: it is training
            now = cpu_seconds(p.pid)
            if now is None or now >= cpu + 0.2:
                break
            self.assertLess(time.time() - began, 60, 'training did not start')
            time.sleep(0.05)
        send(p)
        return finish(self, p)

    def check_stopped(self, code, out, err, by):
        self.assertEqual((code, err), (0, ''))
        stop = re.search(rf'^step +(\d+) / 10000000 .*\nstopped by {by} at step (\d+)\n', out,
                         re.M)
        self.assertIsNotNone(stop, out)
        self.assertEqual(stop.group(1), stop.group(2))
        self.assertRegex(out, r'\nval loss [\d.]+ \| train loss [\d.]+\n'
                              r'sample  1: .*\nsample  2: .*\n')

    def test_ctrl_c_to_the_process_group(self):
        for flags in ([], ['--batch_size=4', '--workers=2']):  # one process; and workers
            with self.subTest(flags=flags):
                result = self.interrupt(lambda p: os.killpg(p.pid, signal.SIGINT), *flags)
                self.check_stopped(*result, 'Ctrl-C')

    def test_sigterm_stops_training_like_ctrl_c_and_no_worker_is_left(self):
        result = self.interrupt(lambda p: p.send_signal(signal.SIGTERM),
                                '--batch_size=4', '--workers=2')
        self.check_stopped(*result, 'SIGTERM')

    def test_sigterm_outside_training_is_interrupted_exit_130(self):
        code, out, err = launch(self, python=('-c', (
            'import os, random, runpy, signal, sys\n'
            'real = random.choices\n'
            'def choices(*args, **kwargs):  # SIGTERM while sampling\n'
            '    os.kill(os.getpid(), signal.SIGTERM)\n'
            '    return real(*args, **kwargs)\n'
            'random.choices = choices\n'
            f'sys.argv = ["microgpt.py", "--input_file={self.file}", "--num_steps=2", '
            f'"--eval_docs=0", "--num_samples=3"]\n'
            f'runpy.run_path({SCRIPT!r}, run_name="__main__")\n')), cwd=self.d)
        self.assertEqual(code, 130, err)
        self.assertEqual(err, 'microgpt: interrupted\n')
        self.assertNotIn('sample', out)

    def test_ctrl_c_in_the_middle_of_adam_finishes_the_step(self):
        tiny_model('--num_steps=50', vocab=VOCAB, seed=13)
        handlers = [signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)]
        real = m.adam_step

        def interrupted(step, mm, vv, lr):
            os.kill(os.getpid(), signal.SIGINT)  # arrives while Adam runs
            real(step, mm, vv, lr)
        n = len(m.params)
        with mock.patch.object(m, 'adam_step', interrupted):
            done, out = quiet(m.run_training, WORDS, WORDS[:3], [0.0] * n, [0.0] * n)
        self.assertEqual(done, 1)
        self.assertIn('stopped by Ctrl-C at step 1', out)
        self.assertEqual([signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)], handlers)
        after = m.float_weights()
        tiny_model('--num_steps=50', vocab=VOCAB, seed=13)  # step 1 by hand
        m.batch_loss([m.encode(WORDS[0])])
        m.adam_step(0, [0.0] * n, [0.0] * n, m.learning_rate)
        self.assertEqual(after, m.float_weights())  # the whole of step 1, no more, no less


class AnotherStdout(InTempDir):
    """IDLE's Run Module, %run and runpy: __file__ is set, and sys.stdout may be another
    stream: here one with write() and flush() only, like IDLE's."""

    SHELL = ('import runpy, signal, sys\n'
             'class Shell:  # like IDLE\'s stdout: no reconfigure, fileno or isatty\n'
             '    def write(self, s):\n'
             '        return sys.__stdout__.write(s)\n'
             '    def flush(self):\n'
             '        sys.__stdout__.flush()\n'
             'sys.stdout = Shell()\n')

    def run_path(self, *flags, before='', after=''):
        argv = ['microgpt.py', f'--input_file={self.file}', *TINY, *flags]
        return launch(self, python=('-c', (
            self.SHELL + before + f'sys.argv = {argv!r}\n'
            f'runpy.run_path({SCRIPT!r}, run_name="__main__")\n' + after)), cwd=self.d)

    def test_it_runs(self):
        code, out, err = self.run_path('--num_steps=4', '--eval_docs=3', '--num_samples=2',
                                       '--explain=ava')
        self.assertEqual((code, err), (0, ''))
        self.assertNotIn('AttributeError', out)
        self.assertIn('step     4 / 4', out)
        self.assertIn('sample  2: ', out)
        self.assertIn('mean loss', out)

    def test_the_host_gets_its_signal_handlers_back(self):
        code, out, err = self.run_path(
            '--num_steps=2', '--eval_docs=0', '--num_samples=1',
            before='handlers = [signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)]\n',
            after='print("same", [signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)]'
                  ' == handlers)\n')
        self.assertEqual((code, err), (0, ''))
        self.assertIn('same True', out)

    def test_a_bug_inside_the_run_shows_python_s_own_traceback(self):
        code, out, err = self.run_path(
            '--num_steps=2', '--eval_docs=0', '--num_samples=2',
            before='import random\n'
                   'def choices(*args, **kwargs):\n    raise ValueError("my bug")\n'
                   'random.choices = choices\n')
        self.assertEqual(code, 1, err)
        self.assertIn('Traceback (most recent call last)', err)
        self.assertTrue(err.rstrip().endswith('ValueError: my bug'), err)
        self.assertNotRegex(err, r'(?m)^microgpt:')


class NotebookCells(Case):
    """The whole file pasted into a notebook cell, then later cells in the same namespace."""

    def test_a_cell_then_later_cells(self):
        src = slurp(SCRIPT, 'r')
        for old, new in (('num_steps = 1000 ', 'num_steps = 20 '),
                         ('num_samples = 20 ', 'num_samples = 3 '),
                         ('eval_docs = 5000 ', 'eval_docs = 50 ')):
            self.assertEqual(src.count(old), 1, old)
            src = src.replace(old, new)
        cells = [  # each is run as a cell is: in the same namespace
            "n_embd = 32\nnum_steps = 5\nmain([])",
            "rows = explain('emma')\nprint('rows', len(rows))",
            "try:\n    main(['--n_embd=bogus'])\n"
            "except BaseException as e:\n    print('raised', type(e).__name__, e.code)",
            "import traceback\ntry:\n    main(['--input_file=no/such.txt'])\n"
            "except Exception as e:\n"
            "    shown = ''.join(traceback.format_exception(type(e), e, e.__traceback__))\n"
            "    print('chained:', 'During handling' in shown, shown.count('Traceback'))",
        ]
        code, out, err = launch(self, python=('-c', (
            'import sys\n'
            "sys.argv = ['ipykernel_launcher.py', '-f', '/tmp/kernel-x.json']\n"
            "ns = {'__name__': '__main__'}\n"
            "exec(compile(sys.stdin.read(), '<cell 1>', 'exec'), ns)\n"
            f'for i, cell in enumerate({cells!r}, 2):\n'
            "    print(f'--- cell {i}')\n"
            "    exec(compile(cell, f'<cell {i}>', 'exec'), ns)\n")), stdin=src)
        self.assertEqual((code, err), (0, ''))
        first, second, third, fourth, fifth = out.split('--- cell ')
        with open(os.path.join(ROOT, 'input.txt'), encoding='utf-8') as f:
            v = len(set(f.read()) - {'\n'}) + 1
        for text, n, steps in ((first, 16, 20), (second, 32, 5)):
            params = 2 * v * n + 16 * n + 12 * n * n
            self.assertIn(f'| vocab {v} | {params} params |', text)
            self.assertIn(f'step {steps:5d} / {steps} |', text)
            self.assertIn('val loss', text)
        self.assertIn('sample  3:', first)
        self.assertIn('layer 0 head 3', third)
        self.assertIn('rows 5', third)
        self.assertEqual(fourth.splitlines()[1:], ['raised MicrogptError 2'])
        self.assertEqual(fifth.splitlines()[1:], ['chained: False 1'])  # one error, not two


class ImportingProgram(Case):
    """A program that imports microgpt: importing runs nothing; the functions work alone."""

    def test_importing_does_not_train(self):
        code, out, err = launch(self, '--n_embd=bogus', python=('-c', (
            'import signal, microgpt\n'
            'print(microgpt.n_embd, microgpt.num_steps, '
            'signal.getsignal(signal.SIGTERM) is signal.SIG_DFL)\n')))
        self.assertEqual((code, err), (0, ''))
        self.assertEqual(out, '16 1000 True\n')

    def test_the_functions_without_training(self):
        code, out, err = launch(self, python=('-c', (
            'import json, random, microgpt\n'
            "microgpt.use_vocab('abcdefghijklmnopqrstuvwxyz')\n"
            'random.seed(1)\n'
            'microgpt.use_weights()\n'
            'logits = microgpt.gpt(microgpt.BOS, 0, *microgpt.empty_cache())\n'
            'microgpt.tape.clear()\n'
            "print(json.dumps({'sd': microgpt.float_weights(), "
            "'logits': [x.data for x in logits]}))\n"
            "print('sample', repr(microgpt.sample()))\n"
            "print('rows', len(microgpt.explain('emma')))\n")))
        self.assertEqual((code, err), (0, ''))
        lines = out.splitlines()
        got = json.loads(lines[0])
        expected = reference_logits(got['sd'], [26])[0]
        diff = max(abs(a - b) for a, b in zip(got['logits'], expected))
        report('gpt() in a program vs the reference forward pass', diff, EXACT_TOL)
        self.assertLessEqual(diff, EXACT_TOL)
        self.assertEqual(len(got['logits']), 27)
        name = ast.literal_eval(lines[1][len('sample '):])
        self.assertTrue(set(name) <= set('abcdefghijklmnopqrstuvwxyz') and len(name) <= 16)
        self.assertEqual(lines[-1], 'rows 5')
        self.assertNotIn('step', out)


class ConsolesAndLimits(InTempDir):
    """A console that cannot show every character, an endless input, a memory limit."""

    def test_a_console_that_cannot_show_the_characters(self):
        path = self.write('cjk.txt', '\n'.join(['王芳', '李娜', '张伟', '刘洋', '陈静'] * 6))
        code, out, err = launch(self, f'--input_file={path}', '--num_steps=20',
                                '--num_samples=3', '--explain=王芳', *TINY, cwd=self.d,
                                env=dict(os.environ, PYTHONIOENCODING='cp1252'))
        self.assertEqual((code, err), (0, ''))
        self.assertIn('sample  1: ?', out)
        self.assertIn("explain '??'", out)

    def test_an_endless_input(self):
        code, out, err = launch(self, '--input_file=/dev/zero', cwd=self.d)
        self.assertEqual(code, 2, err)
        self.assertRegex(err, r'^microgpt: input file .* is over 256 MB; use a part of it\n$')

    LIMIT = 100 * 2 ** 20  # bytes of address space

    def limited(self, *flags):
        import resource

        def limit():
            resource.setrlimit(resource.RLIMIT_AS, (self.LIMIT, self.LIMIT))
        return launch(self, f'--input_file={self.file}', *flags, cwd=self.d, preexec_fn=limit)

    def test_out_of_memory_is_one_line(self):
        code, out, err = self.limited('--n_embd=4096')
        self.assertEqual(code, 1, err)
        self.assertEqual(err, 'microgpt: out of memory: the model or the data is too big for '
                              'this machine\n')

    def test_a_small_run_fits_under_the_same_limit(self):
        code, out, err = self.limited(*TINY, '--num_steps=5', '--num_samples=2')
        self.assertEqual((code, err), (0, ''))
        self.assertIn('sample  2: ', out)


if __name__ == '__main__':
    unittest.main()
