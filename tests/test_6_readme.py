"""README.md against the program: what it shows and quotes is what microgpt.py prints.

Each block is made again by tests/readme_outputs.py, which runs the command a learner would, in a
temporary folder, and compared with the README. Only figures that depend on the machine's speed
(milliseconds, seconds, FLOP/s, eta) are masked, and the check line's two figures, whose last digit
Python 3.12 changed (its sum() of floats is compensated).
"""
import math, os, random, re, shutil, subprocess, sys, unittest, zlib
from unittest import mock

from tests.helpers import (DEFAULTS, EXACT_TOL, ROOT, SCRIPT, WORDS, Case, class_folder, m,
                           reference_logits, report, reset, run_interrupted, slurp,
                           training_flops)
from tests import ablate, chat, readme_outputs as outputs

README = os.path.join(ROOT, 'README.md')
TIMING = [(r'\| [\d.]+ ms \| eta \d+s', '| MS | eta S'),
          (r'in [\d.]+ s = [\d.e+]+ FLOP/s', 'in S = RATE'),
          (r'to \de-\d\d', 'to XeX')]  # the check's last digit: Python 3.12's sum() is exact


def mask(text):
    for pattern, stand_in in TIMING:
        text = re.sub(pattern, stand_in, text)
    return text


def readme():
    return slurp(README, 'r')


def section(title):
    """The text of README.md from a '## title' heading to the next '## ' heading."""
    text = readme()
    start = text.index(f'\n## {title}\n')
    end = text.find('\n## ', start + 1)
    return text[start:end if end >= 0 else len(text)]


class Readme(unittest.TestCase):
    @classmethod
    def setUpClass(cls):  # the quick start, saved: the README's later commands load it
        cls.d = outputs.folder()
        cls.addClassCleanup(shutil.rmtree, cls.d)
        code, out, err = outputs.sh(['--save=names.json'], cls.d)
        saved = 'saved the model to names.json at step 1000 of 1000\n'
        cls.quickstart = outputs.block('python microgpt.py', (out + err).replace(saved, ''))
        assert code == 0 and saved in out, err

    def test_it_is_for_learners_short(self):
        # 400 until 2026-12-07, when running text, a conversation and ablations came in
        self.assertLessEqual(readme().count('\n'), 440)

    def test_the_fine_tuning_recipe_runs_as_shown(self):
        self.assertIn(outputs.recipe(self.d), readme())

    def test_every_troubleshooting_row_is_what_the_program_prints(self):
        table = [line for line in section('Troubleshooting').splitlines() if line.startswith('|')]
        self.assertEqual(table, outputs.trouble(self.d).splitlines())
        self.assertGreaterEqual(len(table), 12)

    def test_the_edited_part_1_block_is_what_an_edited_copy_prints(self):
        block = outputs.edit(self.d)
        self.assertIn('Part 1 was probably edited', block)
        self.assertIn(block, readme())

    def test_the_quick_start_is_what_python_microgpt_py_prints(self):
        """The default run: every line the README shows (it trims runs of lines to '...') is a
        line of a real run, in order; the first and the last lines are all there."""
        real = mask(self.quickstart).splitlines()
        text = mask(readme())
        start = text.index('```\n$ python microgpt.py\n')
        shown = text[start:text.index('\n```', start + 4) + 4].splitlines()
        self.assertEqual(shown[:4], real[:4])  # the fence, the command, the header, the check
        self.assertEqual(shown[-2:], real[-2:])  # the memorisation line, the fence
        rest = iter(real)
        for line in shown:
            if line != '...':
                self.assertIn(line, rest, 'not in the real run, or out of order')


class TheTour(unittest.TestCase):
    def test_the_table_of_parts_is_the_file_as_it_is(self):
        """Its line numbers went stale once (the guard rails 'to 1009' in a 1014-line file)."""
        self.assertIn(outputs.layout(ROOT), readme())


class TheRecord(unittest.TestCase):
    def test_it_spends_the_old_recipes_compute_at_most(self):
        """Issue 23: a record in FLOPs, not in minutes. The README's command for it and the old
        recipe, counted by the meter without training: the record spends the budget, not more."""
        text = section('The barrier is data and compute')
        record = re.search(r'\| the record below: `([^`]+)`', text)[1].split()
        old = re.search(r'The old recipe, `([^`]+)`', text)[1].split()
        spent, budget = training_flops(*record), training_flops(*old)
        print(f'  the record {spent:.6g} FLOPs, the old recipe {budget:.6g}: {spent / budget:.6f}')
        self.assertLessEqual(spent, budget)
        self.assertGreater(spent, 0.999 * budget)  # the budget is spent, not left over
        self.assertIn(f'| {budget:.3g} |'.replace('e+', 'e'), text)


class TheShakespeareRun(unittest.TestCase):
    def test_its_row_is_what_its_command_spends(self):
        """Issue 29: the compute table's row for the Shakespeare run shows the training FLOPs
        that the meter counts for its flags, without training (ten minutes), and the section
        that shows the run shows the same flags."""
        row = re.search(r'\| Shakespeare, the run above: `([^`]+)`.*', section(
            'The barrier is data and compute'))
        flags = row[1].split()
        spent = training_flops(*flags)
        print(f'  the Shakespeare run: {spent:.6g} FLOPs')
        self.assertIn('--paragraphs', flags)
        self.assertIn(f' | {spent:.2e} (6 × parameters × tokens: ', row[0])
        self.assertIn(f'$ python microgpt.py {row[1]}\n', readme())


class TheScriptsItNames(unittest.TestCase):
    def test_ctrl_c_stops_the_sweep_with_one_line(self):
        """A newcomer's trial: Ctrl-C in tests/sweep.py printed the tracebacks of the parent and
        of each pool worker. Pressed once both of its runs say that they are under way (an
        event, not a delay: pressed 3 s after the header, it failed 3 times in 8 on a busy
        machine)."""
        sweep = os.path.join(ROOT, 'tests', 'sweep.py')
        code, out, err = run_interrupted('--widths=8,16', '--budgets=2e8', '--jobs=2',
                                         after='  run under way: ', times=2, script=sweep)
        print(f'  sweep.py, Ctrl-C: exit {code}, stderr {err!r}')
        self.assertEqual(out.count('  run under way: '), 2, out)  # both runs, in the pool
        self.assertNotIn('  run  1/2', out)  # pressed while both were still training
        self.assertEqual((code, err), (1, 'sweep.py: interrupted\n'))


class TheConversation(Case):
    """tests/chat.py: its data set, its scorer, and the figures the READMEs quote from it."""

    def test_the_data_is_the_generators_whatever_the_order_of_the_names(self):
        names = m.read_text(os.path.join(ROOT, 'input.txt')).split()
        text = chat.chat_text(' '.join(names))
        self.assertEqual(text, slurp(chat.CHAT, 'r'))
        self.assertEqual(chat.chat_text(' '.join(reversed(names))), text)

    def test_against_a_second_computation(self):
        """The file made again from its rule, with zlib and no microgpt: one document per
        distinct name of 1 to MAX_NAME letters; a tenth held out by checksum, and a held-out
        one dropped if its name occurs anywhere in a document that is not held out."""
        names = set(slurp(os.path.join(ROOT, 'input.txt'), 'r').split())
        docs = sorted(f"i'm {n}>hi {n}" for n in names if len(n) <= chat.MAX_NAME)
        held = [zlib.crc32(d.encode()) % 10 == 0 for d in docs]
        trained = '\n'.join(d for d, h in zip(docs, held) if not h)
        kept = [d for d, h in zip(docs, held) if not (h and d[4:d.index('>')] in trained)]
        self.assertEqual(slurp(chat.CHAT, 'r').splitlines(), kept)

    def test_no_held_out_name_occurs_in_a_training_document(self):
        train_docs, val_docs = m.split_docs(slurp(chat.CHAT, 'r'))
        trained = '\n'.join(train_docs)
        self.assertGreater(len(val_docs), 1000)
        names = [chat.name_of(doc) for doc in train_docs + val_docs]
        self.assertEqual(len(set(names)), len(names))  # one document per name
        for doc in val_docs:
            self.assertNotIn(chat.name_of(doc), trained)
        for doc in train_docs + val_docs:  # each fits the context, its closing BOS too
            self.assertEqual(doc, chat.document(chat.name_of(doc)))
            self.assertLessEqual(len(doc) + 1, chat.BLOCK_SIZE)

    def test_exactly_right_means_the_whole_reply_and_its_end(self):
        docs = ["i'm anna>hi anna", "i'm bo>hi bo", "i'm eve>hi eve", "i'm zed>hi zed"]
        replies = {"i'm anna>": 'hi anna', "i'm bo>": 'hi bob', "i'm eve>": 'hi ev',
                   "i'm zed>": 'hi zed'}  # a stub model: right, too long, cut short, right
        with mock.patch.object(m, 'sample', lambda: m.prompt + replies[m.prompt]):
            right, answers = chat.score(docs, chat.model_answer)
        self.assertEqual((right, answers[1]), (2, "i'm bo>hi bob"))
        self.assertEqual(m.temperature, chat.TEMPERATURE)
        self.assertEqual(chat.score(docs, lambda prompt: prompt)[0], 0)  # no reply at all

    def test_the_readmes_quote_the_scripts_figures(self):
        """The baselines computed again (seconds), quoted in both READMEs; the trained model's
        share (minutes of training, not repeated) quoted alike in both, with the command that
        trains it; its quoted answers are answers to held-out turns."""
        steps, n_turns = chat.SETTINGS['run']
        flags = [f'--input_file={chat.CHAT}', f'--block_size={chat.BLOCK_SIZE}', *chat.MODEL]
        train_docs, turns = chat.held_out_turns(n_turns)
        baselines = chat.baselines(train_docs, turns, flags)
        step0, bigram = re.findall(r': (\d+) of \d+ exactly right', baselines)
        readme = ' '.join(section('A conversation in miniature').split())
        tests_readme = slurp(os.path.join(ROOT, 'tests', 'README.md'), 'r')
        self.assertIn(baselines, tests_readme)
        self.assertIn(f'against {step0} for the same model at step 0 and {bigram} for a '
                      f'character bigram', readme)
        command = ' '.join(['--input_file=tests/data/chat.txt', *flags[1:], f'--num_steps={steps}'])
        self.assertIn(f'$ python microgpt.py {command}\n', tests_readme)
        shown = re.search(r'\$ python microgpt.py (--input_file=tests/data/chat.txt --block[^`]*?) '
                          r'--save=chat.json', readme)
        self.assertEqual(sorted(shown[1].split()), sorted(command.split()))
        trained = re.findall(r'the trained model: (\d+ of (\d+) exactly right \([\d.]+%)\)',
                             tests_readme)
        self.assertEqual([n for _, n in trained], [str(n_turns)])
        self.assertIn(trained[0][0], readme)
        block = tests_readme[tests_readme.index('the trained model: '):]
        answers = re.findall(r"^    \"(i'm [a-z]+>)[^\"]*\" +(?:right|wrong)$", block, re.M)
        prompts = [doc[:doc.index('>') + 1] for doc in turns]
        self.assertGreaterEqual(len(answers), 6)
        self.assertEqual(answers[:6], prompts[:6])
        tests = chat.with_example(turns, 'yo')  # "can it learn from an example": how many asked
        self.assertIn(f' of {len(tests)} held-out turns get it', readme)
        self.assertIn(f"`{tests[1][0]}`", readme)
        docs = slurp(chat.CHAT, 'r').splitlines()  # what the default context holds whole
        fit = sum(len(doc) + 1 <= DEFAULTS['block_size'] for doc in docs)
        self.assertIn(f'16 characters hold {fit} of these {len(docs):,} documents', readme)


class TheAblations(unittest.TestCase):
    """tests/ablate.py (issue 30): each edit applies to microgpt.py as it is, the edited copy
    runs, and computes what the edit says, against the independent reference forward pass."""
    TINY = ['--n_embd=8', '--n_head=2', '--block_size=8']  # n_layer: the copy's own

    @classmethod
    def setUpClass(cls):
        cls.words = class_folder(cls)
        cls.paths = ablate.write_copies(cls.class_dir, ablate.VARIANTS)

    def tearDown(self):
        reset()

    def test_each_edited_copy_trains_and_samples(self):
        """A few steps on a few names, as a user runs it; Part 4's check passes (Part 2 follows
        the edited Part 1) and each edit changes the held-out loss."""
        losses = {}
        for name, path in self.paths.items():
            p = subprocess.run([sys.executable, path, f'--input_file={self.words}', *self.TINY,
                                '--num_steps=3', '--num_samples=2'],
                               cwd=self.class_dir, capture_output=True, text=True, timeout=120)
            self.assertEqual((p.returncode, p.stderr), (0, ''), name)
            self.assertIn('check: Part 2 equals Part 1 to', p.stdout)
            losses[name] = re.search(r'^val loss (\S+)', p.stdout, re.M)[1]
            self.assertEqual(len(re.findall(r'^sample +\d+: ', p.stdout, re.M)), 2)
        print(f'  val loss after 3 steps: {losses}')
        self.assertEqual(len(set(losses.values())), len(ablate.VARIANTS), losses)

    def test_the_readmes_edit_by_hand_is_the_scripts(self):
        """The README's edit by hand: its line is in gpt() as it is, its replacement the one
        whose held-out loss tests/ablate.py measured."""
        text = section('What each piece buys: ablations')
        old, new = re.search(r'replace `([^`]+)`\s+with `([^`]+)`', text).groups()
        edit = dict(ablate.VARIANTS['no position'][1])
        self.assertEqual(f'    {old}  # token + position\n', ablate.POSITION)
        self.assertIn(ablate.POSITION, slurp(SCRIPT, 'r'))
        self.assertEqual(edit[ablate.POSITION].split('  #')[0], f'    {new}')

    def test_an_edit_that_no_longer_matches_fails_loudly(self):
        moved = ablate.POSITION.replace('t + p', 'p + t')  # as a later edit of the file might
        source = slurp(SCRIPT, 'r').replace(ablate.POSITION, moved)
        with self.assertRaisesRegex(ablate.EditError, "'no position'.* 0 times"):
            ablate.edited('no position', source)

    def edited_logits(self, name, doc):
        """The copy, tiny and seeded: its weights as floats, the tokens fed (doc's, but the
        last), the logits at each position through gpt() and every head's attention weights."""
        mod = ablate.load(self.paths[name], 'test_' + name.replace(' ', '_'))
        mod.configure(self.TINY)
        random.seed(0)
        mod.use_vocab(sorted(set(''.join(WORDS))))
        mod.use_weights()
        sd = mod.float_weights()
        tokens = mod.encode(doc)[:-1]
        keys, values = mod.empty_cache()
        attention = []
        logits = [mod.gpt(t, pos, keys, values, sd, attention) for pos, t in enumerate(tokens)]
        m.configure([*self.TINY, f'--n_layer={mod.n_layer}'])  # the reference reads m's shape
        return mod, sd, tokens, logits, attention

    def assert_same(self, what, got, want):
        diff = max(abs(a - b) for g, w in zip(got, want) for a, b in zip(g, w))
        scale = max(abs(b) for w in want for b in w)
        self.assertLessEqual(report(what, diff / scale, EXACT_TOL), EXACT_TOL)
        self.assertEqual(len(got), len(want))

    def test_each_edit_computes_what_it_says(self):
        """The reference pass (sharing no code with gpt()) with the edit made in its weights:
        the MLP's output matrix zero, the position table zero, or the Transformer paper's
        PE(pos, 2i) = sin(pos / 10000^(2i/d)), PE(pos, 2i+1) = cos(...), written as exp(-2i ln
        10000 / d); two layers. No attention: each position, alone in a sequence of one with
        its position's row at position 0, gives the same logits, and every attention weight is
        1 on that position."""
        for name in ablate.VARIANTS:
            with self.subTest(name):
                mod, sd, tokens, logits, attention = self.edited_logits(name, 'amelia')
                self.assertEqual(mod.n_layer, 1 + (name == 'two layers'))
                d = mod.n_embd
                zero = lambda rows, cols: [[0.0] * cols for _ in range(rows)]
                if name == 'no MLP':
                    sd = dict(sd, **{'layer0.mlp_fc2': zero(d, 4 * d)})
                if name == 'no position':
                    sd = dict(sd, wpe=zero(mod.block_size, d))
                if name == 'sinusoidal':
                    rate = lambda i: math.exp(-(i - i % 2) * math.log(10000) / d)
                    pe = [[(math.sin, math.cos)[i % 2](pos * rate(i)) for i in range(d)]
                          for pos in range(mod.block_size)]
                    sd = dict(sd, wpe=pe)
                    self.assertEqual(mod.sinusoid(0), [0.0, 1.0] * (d // 2))
                if name != 'no attention':
                    self.assert_same(name, logits, reference_logits(sd, tokens))
                    continue
                self.assertEqual(attention, [[1.0]] * (len(tokens) * mod.n_head))
                alone = [reference_logits(dict(sd, wpe=[sd['wpe'][pos]]), [t])[0]
                         for pos, t in enumerate(tokens)]
                self.assert_same(name, logits, alone)


if __name__ == '__main__':
    unittest.main()
