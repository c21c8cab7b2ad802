"""README.md against the program: what it shows and quotes is what microgpt.py prints.

Each block is made again by tests/readme_outputs.py, which runs the command a learner would, in a
temporary folder, and compared with the README. Only figures that depend on the machine's speed
(milliseconds, seconds, FLOP/s, eta) are masked, and the check line's two figures, whose last digit
Python 3.12 changed (its sum() of floats is compensated).
"""
import os, re, shutil, unittest

from tests.helpers import ROOT, run_interrupted, slurp, training_flops
from tests import readme_outputs as outputs

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
        self.assertLessEqual(readme().count('\n'), 400)

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


if __name__ == '__main__':
    unittest.main()
