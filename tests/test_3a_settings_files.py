"""Part 3, settings and files: --help, every flag and every impossible combination, how settings
persist in a process, the input file, --save, --load, --resume, and hostile model files.

A command-line error is one line: its exit code, exactly one line on stderr that starts with
`microgpt: `, no traceback, no output before it (no work was done) and no file made or changed.
Many such cases run in one child process, through command_line(), the function that
`python microgpt.py` calls; a few run as the script itself.
"""
import base64, json, math, os, random, re, shlex, shutil, signal, struct, tempfile, zlib
from unittest import mock

from tests.helpers import (DEFAULTS, EXACT_TOL, InTempDir, ROOT, SCRIPT, TINY, WORDS, Case,
                           all_logits, m, quiet, report, reset, run, run_python, slurp,
                           tiny_model)

# A child process that runs each argv (a JSON list of lists on stdin) through command_line(),
# from the default settings, and reports its exit code, stdout, stderr and whether any file in
# its current folder was made, removed or changed.
CHILD = r'''
import contextlib, io, json, os, sys, traceback
sys.path.insert(0, sys.argv[1])
import microgpt as m
defaults = m.settings()

def files():
    found = {}
    for folder, dirs, names in os.walk('.'):
        found.update({os.path.join(folder, d): None for d in dirs})
        for name in names:
            with open(os.path.join(folder, name), 'rb') as f:
                found[os.path.join(folder, name)] = f.read()
    return found

results = []
for argv in json.load(sys.stdin):
    for name, value in defaults.items():
        setattr(m, name, value)
    m.pool.clear()
    before = files()
    out, err, code = io.StringIO(), io.StringIO(), 0
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            m.command_line(argv)
        except SystemExit as e:
            code = e.code
        except BaseException:
            code = 'raised'
            err.write(traceback.format_exc())
    results.append({'code': code, 'out': out.getvalue(), 'err': err.getvalue(),
                    'files_unchanged': files() == before})
print(json.dumps(results))
'''


def count_params(vocab_size, n_embd, n_layer, block_size):
    """wte and lm_head, wpe, and per layer 4 attention matrices and the MLP's two (4x wide)."""
    return 2 * vocab_size * n_embd + block_size * n_embd + n_layer * 12 * n_embd * n_embd


DROP = object()  # in HostileModelFiles.cases(): leave this key out


def unpack(text):  # Adam's m or v as saved: base64 of little-endian doubles
    raw = base64.b64decode(text)
    return list(struct.unpack(f'<{len(raw) // 8}d', raw))


def pack(floats):
    return base64.b64encode(struct.pack(f'<{len(floats)}d', *floats)).decode('ascii')


class CommandLineCase(InTempDir):
    """InTempDir, plus a way to run many command lines in one child process and check each."""

    def cli(self, *cases):
        """Run each argv through command_line() in one child, in self.d; returns its results."""
        rc, out, err = run_python(CHILD, ROOT, stdin=json.dumps([list(a) for a in cases]),
                                  cwd=self.d, timeout=300)
        self.assertEqual(rc, 0, err)
        results = json.loads(out)
        self.assertEqual(len(results), len(cases))
        return results

    def assert_clear_error(self, result, code, *needles):
        """The one-line error: code, one line on stderr starting `microgpt: ` that holds every
        needle, no traceback, no work done (nothing on stdout), no file made or changed."""
        self.assertEqual(result['code'], code, result)
        self.assertNotIn('Traceback', result['err'] + result['out'])
        lines = result['err'].splitlines()
        self.assertEqual(len(lines), 1, result['err'])
        self.assertTrue(lines[0].startswith('microgpt: '), lines[0])
        for needle in needles:
            self.assertIn(needle, lines[0])
        self.assertEqual(result['out'], '', 'work was done before the error')
        self.assertTrue(result['files_unchanged'], 'a file was made, removed or changed')
        return lines[0]

    def main(self, *argv):
        """main() in this process, its output captured; returns the output."""
        return quiet(m.main, list(argv))[1]


# ===================================== flags and settings =====================================

class Help(Case):
    """--help and -h list every setting, by part, with its default and a one-line meaning."""

    def parts_in_source(self):
        """{name: part number} of each setting, by the Part ruler above its line in the file."""
        part, where = 0, {}
        for line in slurp(SCRIPT).decode('utf-8').splitlines():
            ruler = re.match(r'# =+ Part (\d)\b', line)
            part = int(ruler.group(1)) if ruler else part
            name = re.match(r'(\w+) = ', line)
            if name and name.group(1) in m.KIND:
                where.setdefault(name.group(1), part)
        where.setdefault('explain', 3)  # a flag with no module setting: it runs in Part 3
        return where

    def test_help_and_h_list_every_setting_by_part(self):
        rc, out, err = run('--help')
        self.assertEqual((rc, err), (0, ''))
        rc_h, out_h, err_h = run('-h')
        self.assertEqual((rc_h, err_h), (0, ''))
        self.assertEqual(out_h, out)
        lines = out.splitlines()
        for line in lines:
            self.assertLessEqual(len(line), 100, line)
        part, listed = None, {}
        for line in lines:
            header = re.match(r'Part (\d)\b.*:$', line)
            if header:
                part = int(header.group(1))
                continue
            flag = re.match(r'  --(\w+)=(\S*) +(\S.*)$', line)
            if flag:
                self.assertNotIn(flag.group(1), listed, 'listed twice')
                listed[flag.group(1)] = (part, flag.group(2), flag.group(3))
        self.assertEqual(sorted(listed), sorted(m.KIND))
        expected_parts = self.parts_in_source()
        for name, (part, shown, meaning) in listed.items():
            with self.subTest(name):
                self.assertEqual(part, expected_parts[name])
                if name in DEFAULTS:
                    self.assertEqual(shown, repr(DEFAULTS[name]))
                self.assertGreaterEqual(len(meaning.split()), 2, 'a meaning in words')
        self.assertEqual(sorted({p for p, _, _ in listed.values()}), [1, 2, 3])

    def test_every_default_help_shows_can_be_given_back(self):
        """Copied from --help into a shell, each --name=default is taken and means the default."""
        rc, out, err = run('--help')
        self.assertEqual(rc, 0, err)
        for name, value in re.findall(r'^  --(\w+)=(\S*) ', out, re.M):
            if name == 'explain':
                continue  # TEXT: a placeholder, not a default
            with self.subTest(name):
                reset()
                arg = shlex.split(f'--{name}={value}')[0]  # as a shell passes it on
                try:
                    given = m.configure([arg])
                except m.MicrogptError as e:
                    self.fail(f'{arg} from --help is refused: {e}')
                self.assertEqual(given[name], DEFAULTS[name])


class Flags(CommandLineCase):
    """Every flag is checked before any work: its name, its form, its value's type, and every
    impossible combination; each mistake is one line and exit 2."""

    def kinds(self):
        """Each setting by the kind of value it takes; init_std, whose default None scales with
        the width, takes a number (or None)."""
        kind_of = {n: float if n == 'init_std' else k for n, k in m.KIND.items()}
        by_kind = {kind: [n for n, k in kind_of.items() if k is kind]
                   for kind in (int, float, bool, str)}
        self.assertEqual(sum(map(len, by_kind.values())), len(m.KIND), 'a new kind of setting')
        for kind in (int, float, bool, str):
            self.assertTrue(by_kind[kind], kind)
        return by_kind

    def test_unknown_setting_names_the_closest(self):
        cases = {'--n_embdd=8': '--n_embd', '--learning_rat=0.1': '--learning_rate',
                 '--prompts=ab': '--prompt', 'n_embd=8': '--n_embd'}
        results = self.cli(*([f'--input_file={self.file}', arg] for arg in cases))
        for (arg, closest), result in zip(cases.items(), results):
            with self.subTest(arg):
                line = self.assert_clear_error(result, 2, 'unknown setting', repr(arg))
                self.assertIn(f'did you mean {closest}?', line)

    def test_a_value_after_a_space_gets_the_form_with_equals(self):
        result, = self.cli([f'--input_file={self.file}', '--n_embd', '32'])
        self.assert_clear_error(result, 2, '--n_embd', 'write --n_embd=32')

    def test_a_bare_switch_means_true_and_a_bare_number_is_an_error(self):
        for name in self.kinds()[bool]:
            with self.subTest(name):
                setattr(m, name, False)
                self.assertEqual(m.configure([f'--{name}']), {name: True})
                self.assertIs(getattr(m, name), True)
        results = self.cli(['--n_embd'], ['--learning_rate'], ['--num_steps', '--fused'])
        self.assert_clear_error(results[0], 2, '--n_embd', '=')
        self.assert_clear_error(results[1], 2, '--learning_rate', '=')
        self.assert_clear_error(results[2], 2, '--num_steps', '=')

    def test_a_repeated_flag_is_an_error_naming_it(self):
        results = self.cli(['--n_embd=8', '--n_embd=8'], ['--fused', '--fused=False'],
                           ['--prompt=a', '--n_head=2', '--prompt=b'])
        for result, name in zip(results, ('--n_embd', '--fused', '--prompt')):
            self.assert_clear_error(result, 2, name, 'twice')

    def test_every_whole_number_setting_takes_only_whole_numbers(self):
        names = self.kinds()[int]
        for name in names:
            reset()
            m.configure([f'--{name}=8'])
            self.assertEqual(getattr(m, name), 8, name)  # the control: a whole number is taken
        texts = ('8.9', '1e3', '8.0', 'eight')
        results = iter(self.cli(*([f'--{name}={text}'] for name in names for text in texts)))
        for name in names:
            for text in texts:
                with self.subTest(name=name, text=text):
                    self.assert_clear_error(next(results), 2, f'--{name}', 'whole number',
                                            repr(text))

    def test_every_number_setting_refuses_a_word(self):
        names = self.kinds()[int] + self.kinds()[float]
        for name in self.kinds()[float]:
            reset()
            m.configure([f'--{name}=0.5'])
            self.assertEqual(getattr(m, name), 0.5, name)  # the control: a number is taken
        for name, result in zip(names, self.cli(*([f'--{name}=fast'] for name in names))):
            with self.subTest(name):
                self.assert_clear_error(result, 2, f'--{name}', 'number', "'fast'")

    def test_every_switch_takes_true_or_false_in_any_case(self):
        names = self.kinds()[bool]
        for name in names:
            for text, value in (('True', True), ('false', False), ('TRUE', True), ('fAlSe', False)):
                with self.subTest(name=name, text=text):
                    setattr(m, name, not value)
                    self.assertEqual(m.configure([f'--{name}={text}']), {name: value})
                    self.assertIs(getattr(m, name), value)
        for name, result in zip(names, self.cli(*([f'--{name}=maybe'] for name in names))):
            with self.subTest(name):
                self.assert_clear_error(result, 2, f'--{name}', 'True or False', "'maybe'")

    def test_text_settings_take_any_text(self):
        for name in self.kinds()[str]:
            for text in ('a=b c', 'ü ☃ -- x', ''):
                with self.subTest(name=name, text=text):
                    reset()
                    self.assertEqual(m.configure([f'--{name}={text}']), {name: text})
                    if name not in ('explain', 'save', 'load', 'resume'):  # for one run only
                        self.assertEqual(getattr(m, name), text)

    def test_impossible_combinations_stop_before_any_work(self):
        f = f'--input_file={self.file}'
        save = f'--save={os.path.join(self.d, "m.json")}'  # must not appear
        cases = [
            (['--n_embd=10', '--n_head=4'], 'n_embd=10 must be a multiple of n_head=4'),
            (['--n_layer=0'], 'at least 1'), (['--n_embd=0'], 'at least 1'),
            (['--n_head=0'], 'at least 1'), (['--block_size=0'], 'at least 1'),
            (['--batch_size=0'], 'batch_size'), (['--workers=0'], 'workers'),
            (['--workers=-2'], 'workers'),
            (['--seed=-1'], 'negative'), (['--num_steps=-5'], 'negative'),
            (['--num_samples=-1'], 'negative'), (['--eval_docs=-1'], 'negative'),
            (['--eval_interval=-1'], 'negative'), (['--eval_iters=-1'], 'negative'),
            (['--learning_rate=-1'], 'learning_rate'), (['--learning_rate=0'], 'learning_rate'),
            (['--learning_rate=nan'], 'learning_rate'), (['--learning_rate=inf'], 'learning_rate'),
            (['--eps=0'], 'eps'), (['--temperature=0'], 'temperature'),
            (['--temperature=inf'], 'temperature'), (['--init_std=-1'], 'init_std'),
            (['--init_std=nan'], 'init_std'), (['--beta1=1'], 'beta1'), (['--beta2=1'], 'beta2'),
            (['--beta2=-0.1'], 'beta2'),
            (['--prompt=abcdefghijklmnop'], 'block_size=16'),  # 16 characters: no room left
            ([f'--load={self.model}', f'--resume={self.model}'], '--resume'),
        ]
        results = self.cli(*([f, save, *argv] for argv, _ in cases))
        for (argv, needle), result in zip(cases, results):
            with self.subTest(argv):
                self.assert_clear_error(result, 2, needle)
        ok, = self.cli([f, *TINY, '--prompt=emmaoli', '--num_steps=0', '--eval_docs=0',
                        '--num_samples=1'])  # the control: 7 characters fit in block_size=8
        self.assertEqual(ok['code'], 0, ok['err'])
        self.assertRegex(ok['out'], r'(?m)^sample  1: emmaoli')

    def test_a_save_that_would_fail_stops_before_any_work(self):
        f = f'--input_file={self.file}'
        cases = [('--save=no/such/folder/m.json', 'No such file'),
                 (f'--save={self.d}', 'is a folder'),
                 (f'--save={self.file}', 'is a file but not a model'),
                 (f'--save={self.write("notes.md", "# my notes")}', 'is a file but not a model'),
                 ('--save=/proc/m.json', 'cannot save')]  # not writable, even as root
        results = self.cli(*([f, *TINY, arg] for arg, _ in cases))
        for (arg, needle), result in zip(cases, results):
            with self.subTest(arg):
                self.assert_clear_error(result, 2, needle)
        self.assertEqual(slurp(self.file, 'r'), '\n'.join(WORDS * 3))  # left as it was

    def test_the_script_itself_gives_one_line(self):
        """The same errors from `python microgpt.py`, not through command_line() in a child."""
        for args, needle in ((['--n_embdd=8'], 'did you mean --n_embd?'),
                             (['--n_embd=8.0'], 'whole number'),
                             ([f'--input_file={self.d}'], 'cannot read')):
            with self.subTest(args):
                before = sorted(os.listdir(self.d))
                rc, out, err = run(*args, cwd=self.d)
                self.assertEqual(rc, 2, err)
                self.assertNotIn('Traceback', err)
                self.assertEqual(out, '')
                self.assertEqual(len(err.splitlines()), 1, err)
                self.assertTrue(err.startswith('microgpt: '), err)
                self.assertIn(needle, err)
                self.assertEqual(sorted(os.listdir(self.d)), before)


class SettingsInAProcess(CommandLineCase):
    """As in a notebook: a setting keeps its last value, whether assigned or set by a flag; a
    configure() that fails changes nothing; main() raises MicrogptError, never SystemExit."""

    def quick(self, *argv):
        return [f'--input_file={self.file}', '--num_steps=0', '--eval_docs=0', '--num_samples=0',
                *argv]

    def params_line(self, n_embd, n_layer, block_size):
        vocab = len(set(''.join(WORDS))) + 1
        return f'| {count_params(vocab, n_embd, n_layer, block_size)} params |'

    def test_a_setting_assigned_on_the_module_is_kept(self):
        m.n_embd = 32
        self.assertEqual(m.configure([]), {})
        self.assertEqual(m.n_embd, 32)
        out = self.main(*self.quick())
        self.assertIn(self.params_line(32, 1, 16), out)
        self.assertEqual(m.n_embd, 32)
        self.assertEqual(len(m.state_dict['wte'][0]), 32)
        out = self.main(*self.quick('--n_embd=8'))  # unless a flag changes it
        self.assertIn(self.params_line(8, 1, 16), out)

    def test_a_setting_assigned_the_wrong_kind_is_refused(self):
        """A cell can assign anything: 2.0 for a whole number, 3.5 for the seed."""
        for name, value in (('n_layer', 2.0), ('seed', 3.5), ('fused', 1), ('prompt', None)):
            reset()
            setattr(m, name, value)
            with self.assertRaises(m.MicrogptError) as cm:
                m.main(self.quick())
            self.assertIn(f'{name} must be', str(cm.exception))
        reset()
        m.learning_rate = 1  # a whole number where a number is wanted is a number
        self.assertIn('train docs', self.main(*self.quick()))

    def test_a_setup_stopped_by_ctrl_c_changes_nothing(self):
        self.main(*self.quick(f'--save={self.model}', *TINY))
        reset()
        m.main(self.quick())
        before, chars, weights = m.settings(), list(m.chars), m.float_weights()
        with mock.patch.object(m, 'use_weights', side_effect=KeyboardInterrupt):
            with self.assertRaises(KeyboardInterrupt):
                m.main(self.quick(f'--load={self.model}'))
        self.assertEqual((m.settings(), m.chars, m.float_weights()), (before, chars, weights))

    def test_the_file_flags_are_for_one_run_only(self):
        """--save, --load and --resume name files for that run: a later call neither saves over
        the file again nor loads it, unless the cell assigned the setting itself."""
        self.main(*self.quick(f'--save={self.model}', *TINY))
        self.assertEqual((m.save, m.load, m.resume), ('', '', ''))
        first = slurp(self.model)
        out = self.main(*self.quick('--seed=3'))
        self.assertNotIn('saved the model', out)
        self.assertEqual(slurp(self.model), first)
        self.main(*self.quick(f'--load={self.model}'))
        self.assertEqual(m.load, '')
        m.n_embd = 16  # the loaded file set n_embd=8; the next run builds what the cell says
        self.assertIn(self.params_line(16, 2, 8), self.main(*self.quick()))
        m.save = self.model  # assigned, it stays: as any setting
        self.main(*self.quick())
        self.assertNotEqual(slurp(self.model), first)

    def test_a_flag_stays_set_for_the_next_call(self):
        m.n_embd = 32
        self.assertEqual(m.configure(['--n_embd=8', '--n_head=2']), {'n_embd': 8, 'n_head': 2})
        self.assertEqual(m.configure([]), {})
        self.assertEqual((m.n_embd, m.n_head), (8, 2))
        self.main(*self.quick('--n_layer=2'))
        out = self.main(*self.quick())
        self.assertIn(self.params_line(8, 2, 16), out)

    def test_a_configure_that_fails_changes_nothing(self):
        m.n_embd, m.num_steps, m.prompt = 32, 7, 'ab'
        before = m.settings()
        for argv in (['--n_embd=8', '--n_head=3'], ['--num_steps=5', '--fused=maybe'],
                     ['--n_layer=2', '--bogus=1'], ['--seed=1', '--seed=2'],
                     ['--block_size=4', '--prompt=abcd'], ['--learning_rate=0.1', '--beta2=1'],
                     ['--save=x.json', '--n_embd', '8']):
            with self.subTest(argv):
                with self.assertRaises(m.MicrogptError) as cm:
                    m.configure(argv)
                self.assertEqual(cm.exception.code, 2)
                self.assertEqual(m.settings(), before)

    def test_errors_from_main_are_microgpt_errors(self):
        missing = os.path.join(self.d, 'missing.txt')
        cases = [(['--n_embdd=8'], 2), ([f'--input_file={missing}'], 2),
                 (self.quick(f'--load={missing}'), 2),
                 (self.quick('--prompt=Q'), 2),
                 ([f'--input_file={self.file}', *TINY, '--learning_rate=1e300',
                   '--num_steps=20', '--eval_docs=0', '--num_samples=0'], 1)]
        for argv, code in cases:
            with self.subTest(argv):
                reset()
                try:
                    with self.assertRaises(m.MicrogptError) as cm:
                        self.main(*argv)
                except SystemExit as e:
                    self.fail(f'main() exited ({e.code}) instead of raising MicrogptError')
                self.assertEqual(cm.exception.code, code)
                self.assertNotIn('\n', str(cm.exception))
        reset()
        self.assertIn('usage:', self.main('--help'))  # help returns, it does not exit


# ======================================== files: input ========================================

class InputFile(CommandLineCase):
    """The input file: the default one, and every file that cannot be trained on."""

    def test_the_input_txt_beside_microgpt_py_is_the_default(self):
        """Run from a folder with no input.txt: the one beside microgpt.py is read, and said."""
        rc, out, err = run('--num_steps=0', '--eval_docs=0', '--num_samples=1', cwd=self.d)
        self.assertEqual(rc, 0, err)
        beside = os.path.join(ROOT, 'input.txt')
        lines = out.splitlines()
        self.assertEqual(lines[0], f'reading {beside}: the current folder has no input.txt')
        text = slurp(beside).decode('utf-8')
        docs = [line for line in text.split('\n') if line]
        counts = re.match(r'(\d+) train docs, (\d+) held out \| vocab (\d+) ', lines[1])
        self.assertIsNotNone(counts, lines[1])
        train, held, vocab = map(int, counts.groups())
        self.assertEqual(train + held, len(docs))
        self.assertEqual(vocab, len(set(''.join(docs))) + 1)
        self.assertRegex(out, r'(?m)^sample  1: ')

    def test_an_input_txt_in_the_current_folder_comes_first(self):
        self.write('input.txt', '\n'.join(WORDS))
        result, = self.cli([*TINY, '--num_steps=0', '--eval_docs=0', '--num_samples=0'])
        self.assertEqual(result['code'], 0, result['err'])
        self.assertNotIn('reading', result['out'])
        counts = re.match(r'(\d+) train docs, (\d+) held out \|', result['out'])
        self.assertEqual(sum(map(int, counts.groups())), len(WORDS))

    def test_bad_input_files_are_one_line(self):
        cases = {'missing.txt': (None, 'No such file'), 'empty.txt': (b'', 'non-empty lines'),
                 'blank.txt': (b'\n\n\r\n\n', 'non-empty lines'),
                 'one.txt': (b'onlyone\n', 'non-empty lines'),
                 'twice.txt': (b'same\nsame\n', 'non-empty lines'),
                 'latin1.txt': ('caf\u00e9\nna\u00efve\n'.encode('latin-1'), 'UTF-8'),
                 'folder': (None, 'cannot read')}
        for name, (content, _) in cases.items():
            if content is not None:
                self.write(name, content)
        os.mkdir(os.path.join(self.d, 'folder'))
        save = f'--save={os.path.join(self.d, "m.json")}'  # must not appear
        results = self.cli(*([f'--input_file={os.path.join(self.d, name)}', save]
                             for name in cases))
        for (name, (_, needle)), result in zip(cases.items(), results):
            with self.subTest(name):
                self.assert_clear_error(result, 2, repr(os.path.join(self.d, name)), needle)

    def test_lines_of_spaces_and_tabs_only_are_blank(self):
        """README: blank lines are skipped; a file of nothing else has no documents."""
        path = self.write('spaces.txt', b'\n   \n\t\n \t \n')
        result, = self.cli([f'--input_file={path}', '--num_steps=1', '--eval_docs=0',
                            '--num_samples=1'])
        self.assert_clear_error(result, 2, 'spaces.txt', 'non-empty lines')

    def test_utf8_with_a_byte_order_mark_and_windows_line_ends(self):
        path = self.write('bom.txt', '\ufeffzoë\r\nchloé\r\n\r\nrenée\r\nagnès\r\n')
        out = self.main(f'--input_file={path}', *TINY, '--num_steps=2', '--eval_docs=0',
                        '--num_samples=0')
        counts = re.match(r'(\d+) train docs, (\d+) held out \| vocab (\d+) ', out)
        train, held, vocab = map(int, counts.groups())
        self.assertEqual(train + held, 4)
        self.assertEqual(m.chars, sorted(set('zoëchloérenéeagnès')))  # no BOM, no \r
        self.assertEqual(vocab, len(m.chars) + 1)


# ===================================== files: save, load ======================================

class SaveLoadPrompt(CommandLineCase):
    """Keep what you trained, sample without retraining, complete a prompt; a loaded model
    brings its own shape."""

    def train_and_save(self, *args, path=None, shape=TINY):
        rc, out, err = run(f'--input_file={self.file}', '--num_steps=20', *shape,
                           f'--save={path or self.model}', *args, cwd=self.d)
        self.assertEqual(rc, 0, err)
        return out

    def test_round_trip_is_bit_identical(self):
        """In process: the loaded weights give the same logits; as the script: the same samples
        and the same val loss."""
        tiny_model(vocab=''.join(WORDS), seed=3)
        before = m.float_weights()
        zeros = [0.0] * len(m.params)
        m.save_model(self.model, zeros, zeros, 0, 0)
        logits_before = all_logits('sophia')
        tiny_model(vocab='xyz', seed=99)  # something else entirely, replaced by the load
        self.assertIsNone(m.load_model(self.model, {}, False))
        self.assertEqual(m.float_weights(), before)
        self.assertEqual(all_logits('sophia'), logits_before)
        self.assertEqual(json.loads(slurp(self.model))['config'],
                         {'n_layer': 2, 'n_embd': 8, 'n_head': 2, 'block_size': 8})

        trained = self.train_and_save('--num_samples=8', '--eval_docs=10')
        rc, loaded, err = run(f'--input_file={self.file}', f'--load={self.model}',
                              '--num_steps=0', '--num_samples=8', '--eval_docs=10', cwd=self.d)
        self.assertEqual(rc, 0, err)
        samples = re.findall(r'(?m)^sample.*$', trained)
        self.assertEqual(len(samples), 8)
        self.assertEqual(re.findall(r'(?m)^sample.*$', loaded), samples)
        self.assertEqual(re.search(r'val loss \S+', loaded).group(),
                         re.search(r'val loss \S+', trained).group())
        self.assertNotIn('step ', loaded)  # --num_steps=0: no training

    def test_load_brings_the_shape_and_refuses_contradictions(self):
        self.train_and_save('--eval_docs=0', '--num_samples=0')
        f, load = f'--input_file={self.file}', f'--load={self.model}'
        ok, bad = self.cli([f, load, '--num_steps=0', '--eval_docs=0', '--num_samples=1'],
                           [f, load, '--n_embd=16'])
        self.assertEqual(ok['code'], 0, ok['err'])
        vocab = len(set(''.join(WORDS))) + 1
        self.assertIn(f'| {count_params(vocab, 8, 2, 8)} params |', ok['out'])
        self.assert_clear_error(bad, 2, '--n_embd=16 contradicts', 'model.json', 'n_embd=8')

    def test_a_shape_flag_that_agrees_with_the_loaded_model_is_taken(self):
        self.train_and_save('--eval_docs=0', '--num_samples=0',
                            shape=['--n_embd=12', '--n_head=3', '--n_layer=2', '--block_size=8'])
        result, = self.cli([f'--input_file={self.file}', f'--load={self.model}', '--n_head=3',
                            '--num_steps=0', '--eval_docs=0', '--num_samples=1'])
        self.assertEqual(result['code'], 0, result['err'])  # n_embd=12 comes from the file
        self.assertRegex(result['out'], r'(?m)^sample  1: ')

    def test_prompt(self):
        self.train_and_save('--eval_docs=0', '--num_samples=0')
        f, load = f'--input_file={self.file}', f'--load={self.model}'
        quick = ['--num_steps=0', '--eval_docs=0']
        ok, unknown, too_long = self.cli([f, load, *quick, '--prompt=so'],
                                         [f, load, *quick, '--prompt=sQ'],
                                         [f, load, *quick, '--prompt=abcdefgh'])
        self.assertEqual(ok['code'], 0, ok['err'])
        samples = re.findall(r'(?m)^sample +\d+: (.*)$', ok['out'])
        self.assertEqual(len(samples), 20)
        self.assertTrue(all(s.startswith('so') for s in samples), samples)
        self.assert_clear_error(unknown, 2, "'Q'", '--prompt')
        self.assert_clear_error(too_long, 2, f'with the model in {self.model!r}', 'block_size=8')

    def test_a_loaded_model_with_a_longer_context_takes_a_longer_prompt(self):
        """block_size=32 in the file, none on the command line: a 20-character prompt fits."""
        wide = os.path.join(self.d, 'wide.json')
        self.train_and_save('--eval_docs=0', '--num_samples=0', path=wide,
                            shape=TINY[:-1] + ['--block_size=32'])
        self.assertEqual(json.loads(slurp(wide))['config']['block_size'], 32)
        prompt = 'emmaoliviaavaisabell'  # 20 characters of the model's own
        f, load = f'--input_file={self.file}', f'--load={wide}'
        quick = ['--num_steps=0', '--eval_docs=0', '--num_samples=3']
        ok, too_long = self.cli([f, load, *quick, f'--prompt={prompt}'],
                                [f, load, *quick, f'--prompt={prompt * 2}'])
        self.assertEqual(ok['code'], 0, ok['err'])
        samples = re.findall(r'(?m)^sample +\d+: (.*)$', ok['out'])
        self.assertEqual(len(samples), 3)
        self.assertTrue(all(s.startswith(prompt) for s in samples), samples)
        self.assert_clear_error(too_long, 2, f'with the model in {wide!r}', 'block_size=32')


class Save(CommandLineCase):
    """A saved file holds all that resuming needs; a save that fails leaves the old file whole."""

    def test_the_file_holds_what_resuming_needs(self):
        record = []
        real = m.adam_step

        def spy(step, mm, vv, lr):
            real(step, mm, vv, lr)
            record.append((mm, vv, random.getstate()))

        steps = 6
        with mock.patch.object(m, 'adam_step', spy):
            self.main(f'--input_file={self.file}', *TINY, f'--num_steps={steps}',
                      '--batch_size=2', '--learning_rate=0.02', '--seed=7', '--beta1=0.8',
                      f'--save={self.model}', '--eval_docs=3', '--num_samples=2')
        self.assertEqual(len(record), steps)
        blob = json.loads(slurp(self.model))
        training = blob['training']
        self.assertEqual(sorted(training),
                         ['input_crc', 'm', 'random_state', 'settings', 'step', 'v'])
        self.assertEqual(training['step'], steps)
        self.assertEqual(training['settings'], {
            'num_steps': steps, 'batch_size': 2, 'learning_rate': 0.02, 'beta1': 0.8,
            'beta2': 0.99, 'eps': 1e-8, 'seed': 7})
        self.assertEqual(training['input_crc'], zlib.crc32(slurp(self.file)))
        mm, vv, state = record[-1]  # Adam's state and the generator's after the last step
        self.assertEqual(unpack(training['m']), mm)
        self.assertEqual(unpack(training['v']), vv)
        self.assertEqual(len(mm), count_params(len(blob['chars']) + 1, 8, 2, 8))
        self.assertTrue(any(mm) and any(vv))
        self.assertEqual(training['random_state'], json.loads(json.dumps(state)))
        self.assertEqual(blob['config'], {'n_layer': 2, 'n_embd': 8, 'n_head': 2, 'block_size': 8})
        self.assertEqual(blob['chars'], sorted(set(''.join(WORDS))))
        self.assertEqual(blob['state_dict'], m.float_weights())

    def test_an_interrupted_save_keeps_the_old_file(self):
        tiny_model(vocab=''.join(WORDS))
        zeros = [0.0] * len(m.params)
        m.save_model(self.model, zeros, zeros, 0, 0)
        old = slurp(self.model)
        for p in m.params:
            p.data += 1.0
        for failure in (OSError(28, 'No space left on device'), KeyboardInterrupt()):
            with self.subTest(type(failure).__name__):
                with mock.patch('os.fsync', side_effect=failure):
                    if isinstance(failure, OSError):  # a full disk: a run gone wrong
                        with self.assertRaises(m.MicrogptError) as cm:
                            m.save_model(self.model, zeros, zeros, 1, 0)
                        self.assertEqual(cm.exception.code, 1)
                        self.assertIn('No space left on device', str(cm.exception))
                        self.assertIn(repr(self.model), str(cm.exception))
                        self.assertNotIn('\n', str(cm.exception))
                    else:  # Ctrl-C
                        with self.assertRaises(KeyboardInterrupt):
                            m.save_model(self.model, zeros, zeros, 1, 0)
                self.assertEqual(slurp(self.model), old)  # the old model, whole
                self.assertEqual(sorted(os.listdir(self.d)), ['model.json', 'words.txt'])


# ======================================== files: resume =======================================

class Resume(CommandLineCase):
    """--resume goes on with a saved run exactly where it stopped; --load starts a new one."""

    def long_docs(self):
        """Lines of three names: longer than TINY's block_size, so training draws windows."""
        names = WORDS * 3
        return self.write('long.txt', '\n'.join(' '.join(names[i:i + 3]) for i in range(40)))

    def main_stopped_at(self, k, *argv):
        """main(), with Ctrl-C arriving in the middle of step k's Adam update (k None: never)."""
        real = m.adam_step

        def adam_step(step, mm, vv, lr):
            if step == k:
                os.kill(os.getpid(), signal.SIGINT)
            real(step, mm, vv, lr)

        with mock.patch.object(m, 'adam_step', adam_step):
            return self.main(*argv)

    def test_resume_takes_the_same_text_with_other_line_ends(self):
        self.main(f'--input_file={self.file}', '--num_steps=6', '--eval_docs=0', '--num_samples=0',
                  f'--save={self.model}', *TINY)
        crlf = self.write('crlf.txt', slurp(self.file).replace(b'\n', b'\r\n'))
        reset()
        out = self.main(f'--input_file={crlf}', f'--resume={self.model}', '--eval_docs=0',
                        '--num_samples=0')
        self.assertIn('resuming', out)

    def check_resume_is_exact(self, steps, run_flags, workers):
        text = self.long_docs()
        k = random.Random(steps).randrange(1, steps - 1)
        print(f'  interrupted in step {k + 1} of {steps}, {run_flags + [workers]}')
        common = [f'--input_file={text}', '--eval_docs=4', '--num_samples=3', workers]
        first = [*common, *TINY, f'--num_steps={steps}', *run_flags]
        whole, part = os.path.join(self.d, 'whole.json'), os.path.join(self.d, 'part.json')

        out_whole = self.main_stopped_at(None, *first, f'--save={whole}')
        weights_whole = m.float_weights()
        self.assertIn('train docs are longer than the context', out_whole)
        reset()
        out_part = self.main_stopped_at(k, *first, f'--save={part}')
        self.assertIn(f'stopped by Ctrl-C at step {k + 1}\n', out_part)
        self.assertIn(f'saved the model to {part} at step {k + 1} of {steps}; '
                      f'go on with --resume={part}', out_part)
        self.assertEqual(json.loads(slurp(part))['training']['step'], k + 1)
        reset()
        out_resumed = self.main_stopped_at(None, *common, f'--resume={part}')
        self.assertIn(f'resuming {part} at step {k + 1} of {steps}', out_resumed)
        self.assertIn(f'saved the model to {part} at step {steps} of {steps}\n', out_resumed)

        diff = max(abs(a - b) for name, mat in weights_whole.items()
                   for row, row2 in zip(mat, m.float_weights()[name]) for a, b in zip(row, row2))
        self.assertLessEqual(report('weights, resumed vs never interrupted', diff, EXACT_TOL),
                             EXACT_TOL)
        saved_whole = json.loads(slurp(whole))['training']
        saved_resumed = json.loads(slurp(part))['training']
        for key in ('m', 'v'):
            diff = max(abs(a - b) for a, b in zip(unpack(saved_whole[key]),
                                                   unpack(saved_resumed[key])))
            self.assertLessEqual(report(f"Adam's {key}, resumed vs never interrupted", diff,
                                        EXACT_TOL), EXACT_TOL)
        self.assertEqual(saved_resumed['step'], steps)
        val = re.compile(r'(?m)^val loss .*$')
        samples = re.compile(r'(?m)^sample .*$')
        self.assertEqual(val.findall(out_resumed), val.findall(out_whole))
        self.assertEqual(len(samples.findall(out_whole)), 3)
        self.assertEqual(samples.findall(out_resumed), samples.findall(out_whole))

    def test_an_interrupted_run_resumes_exactly_in_one_process(self):
        self.check_resume_is_exact(16, [], '--workers=1')

    def test_an_interrupted_run_resumes_exactly_with_two_workers(self):
        self.check_resume_is_exact(10, ['--batch_size=4'], '--workers=2')

    def test_a_flag_that_contradicts_the_saved_run_is_refused(self):
        self.main(f'--input_file={self.file}', *TINY, '--num_steps=4', f'--save={self.model}',
                  '--eval_docs=0', '--num_samples=0')
        other = self.write('other.txt', '\n'.join(reversed(WORDS * 3)))  # its characters
        f, resume = f'--input_file={self.file}', f'--resume={self.model}'
        cases = [([f'--input_file={other}', resume], ['--input_file', 'other.txt']),
                 ([f, resume, '--batch_size=2'], ['--batch_size=2 contradicts']),
                 ([f, resume, '--learning_rate=0.02'], ['--learning_rate=0.02 contradicts']),
                 ([f, resume, '--num_steps=8'], ['--num_steps=8 contradicts']),
                 ([f, resume, '--seed=1'], ['--seed=1 contradicts']),
                 ([f, resume, '--n_embd=16'], ['--n_embd=16 contradicts'])]
        results = self.cli(*(argv for argv, _ in cases),
                           [f, resume, '--num_steps=4', '--batch_size=1', '--eval_docs=0',
                            '--num_samples=1'])  # the control: flags that agree
        for (argv, needles), result in zip(cases, results):
            with self.subTest(argv[-1]):
                self.assert_clear_error(result, 2, 'model.json', *needles)
        self.assertEqual(results[-1]['code'], 0, results[-1]['err'])

    def test_a_file_saved_before_resume_existed(self):
        self.main(f'--input_file={self.file}', *TINY, '--num_steps=4', f'--save={self.model}',
                  '--eval_docs=0', '--num_samples=0')
        blob = json.loads(slurp(self.model))
        del blob['training']
        old = self.write('old.json', json.dumps(blob))
        f = f'--input_file={self.file}'
        load, resume = self.cli([f, f'--load={old}', '--num_steps=0', '--eval_docs=0',
                                 '--num_samples=1'], [f, f'--resume={old}'])
        self.assertEqual(load['code'], 0, load['err'])
        self.assertRegex(load['out'], r'(?m)^sample  1: ')
        self.assert_clear_error(resume, 2, repr(old))

    def test_load_starts_a_new_schedule(self):
        self.main(f'--input_file={self.file}', *TINY, '--num_steps=6', f'--save={self.model}',
                  '--eval_docs=0', '--num_samples=0')
        self.assertTrue(any(unpack(json.loads(slurp(self.model))['training']['m'])))
        record = []
        real = m.adam_step

        def spy(step, mm, vv, lr):
            record.append((step, lr, any(mm) or any(vv)))
            real(step, mm, vv, lr)

        reset()
        with mock.patch.object(m, 'adam_step', spy):
            self.main(f'--input_file={self.file}', f'--load={self.model}', '--num_steps=3',
                      '--learning_rate=0.02', '--eval_docs=0', '--num_samples=0')
        self.assertEqual([step for step, _, _ in record], [0, 1, 2])
        self.assertEqual(record[0][1], 0.02)  # the full learning rate, then a linear decay
        for (step, lr, _), expected in zip(record, (0.02, 0.02 * 2 / 3, 0.02 / 3)):
            self.assertAlmostEqual(lr, expected, places=15)
        self.assertFalse(record[0][2], "Adam's m and v start from zero")


# ================================= files: hostile model files =================================

class HostileModelFiles(CommandLineCase):
    """A model file is untrusted input: every broken or hostile one is refused with one line
    that names it, exit 2, before anything is built from it."""
    maxDiff = None  # the whole list of cases that changed something

    @classmethod
    def setUpClass(cls):
        cls.class_dir = tempfile.mkdtemp()
        words = os.path.join(cls.class_dir, 'words.txt')
        with open(words, 'w') as f:
            f.write('\n'.join(WORDS * 3))
        model = os.path.join(cls.class_dir, 'model.json')
        reset()
        quiet(m.main, [f'--input_file={words}', '--num_steps=5', f'--save={model}',
                       '--eval_docs=0', '--num_samples=0', *TINY])
        reset()
        cls.good_text = slurp(model, 'r')

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.class_dir)

    def cases(self):
        """{name: (flag, file content: text, bytes, or None for no file)}."""
        g = json.loads(self.good_text)
        sd, t = g['state_dict'], g['training']
        n = sum(len(mat) * len(mat[0]) for mat in sd.values())

        def model(**changes):
            return json.dumps(dict(g, **changes))

        def last_wpe_row(x):  # a number no logit at position 0 depends on: the check must see it
            return dict(sd, wpe=sd['wpe'][:-1] + [[x] + sd['wpe'][-1][1:]])

        def training(**changes):
            return ('--resume', model(training={k: v for k, v in dict(t, **changes).items()
                                                if v is not DROP}))

        def run_settings(**changes):
            return training(settings={k: v for k, v in dict(t['settings'], **changes).items()
                                      if v is not DROP})

        state = t['random_state']
        huge = [[1.5e308 * (-1) ** i for i in range(8)] for _ in sd['lm_head']]
        load = {  # the model itself, with --load
            'missing': None, 'not JSON': '{"config": ', 'a list': '[1, 2]',
            'not UTF-8': b'{"config": "\xff"}',
            'nested 100,000 deep': '[' * 10 ** 5 + ']' * 10 ** 5,
            'no chars': json.dumps({k: v for k, v in g.items() if k != 'chars'}),
            'no weights': json.dumps({k: v for k, v in g.items() if k != 'state_dict'}),
            'a billion wide': model(config=dict(g['config'], n_embd=10 ** 9, n_head=1)),
            'a billion layers': model(config=dict(g['config'], n_layer=10 ** 9)),
            'config as text': model(config=dict(g['config'], n_embd='8')),
            'config as bool': model(config=dict(g['config'], n_layer=True)),
            'impossible config': model(config=dict(g['config'], n_head=3)),
            'no layers': model(config=dict(g['config'], n_layer=0)),
            'chars as numbers': model(chars=list(range(len(g['chars'])))),
            'a repeated char': model(chars=g['chars'][:-1] + g['chars'][:1]),
            'a two-char string': model(chars=['ab'] + g['chars'][1:]),
            'one matrix short': model(state_dict=dict(sd, wte=sd['wte'][:-1])),
            'short rows': model(state_dict=dict(sd, lm_head=[r[:-1] for r in sd['lm_head']])),
            'a matrix missing': model(state_dict={k: v for k, v in sd.items() if k != 'wpe'}),
            'text weights': model(state_dict=dict(sd, wpe=[['x'] * 8] * 8)),
            'NaN weight': model(state_dict=last_wpe_row(math.nan)),
            'Infinity weight': model(state_dict=last_wpe_row(math.inf)),
            '400-digit weight': model(state_dict=last_wpe_row(0.5)).replace(
                '[0.5,', '[' + '9' * 400 + ',', 1),
            'finite weights, inf logits': model(state_dict=dict(sd, lm_head=huge)),
        }
        resume = {  # what --resume needs, with --resume
            'no training': ('--resume', json.dumps({k: v for k, v in g.items()
                                                    if k != 'training'})),
            'training a list': ('--resume', model(training=[t])),
            'training text': ('--resume', model(training='step 5')),
            'step missing': training(step=DROP), 'step as text': training(step='5'),
            'step a decimal': training(step=5.0), 'step a bool': training(step=True),
            'step negative': training(step=-1), 'step beyond num_steps': training(step=6),
            'm missing': training(m=DROP), 'v missing': training(v=DROP),
            'm a number': training(m=5), 'v a list': training(v=[0.0] * n),
            'm not base64': training(m='not base64!'),
            'm one short': training(m=pack([0.0] * (n - 1))),
            'v one long': training(v=pack([0.0] * (n + 1))),
            'm holding NaN': training(m=pack([0.0] * (n - 1) + [math.nan])),
            'v holding inf': training(v=pack([math.inf] + [0.0] * (n - 1))),
            'v negative': training(v=pack([1e-3] * (n - 1) + [-1e-3])),
            'random_state missing': training(random_state=DROP),
            'random_state text': training(random_state='garbage'),
            'random_state a dict': training(random_state={'a': 1}),
            'random_state too short': training(random_state=[3, [1, 2], None]),
            'random_state one item': training(random_state=[3]),
            'random_state bad index': training(random_state=[3, state[1][:-1] + [700], None]),
            'random_state text words': training(random_state=[3, ['x'] * 625, None]),
            'random_state negative': training(random_state=[3, [-1] * 625, None]),
            'settings missing': training(settings=DROP),
            'settings a list': training(settings=[]),
            'settings without seed': run_settings(seed=DROP),
            'learning_rate as text': run_settings(learning_rate='0.01'),
            'batch_size a decimal': run_settings(batch_size=1.0),
            'num_steps a bool': run_settings(num_steps=True),
            'input_crc missing': training(input_crc=DROP),
            'input_crc as text': training(input_crc=str(t['input_crc'])),
            'input_crc a decimal': training(input_crc=float(t['input_crc'])),
        }
        impossible = {  # of the right type, but no run can have them
            'batch_size 0': run_settings(batch_size=0),
            'learning_rate NaN': run_settings(learning_rate=math.nan),
            'num_steps negative': run_settings(num_steps=-1),
            'beta2 1': run_settings(beta2=1.0),
        }
        cases = {name: ('--load', text) for name, text in load.items()}
        cases.update(resume)
        cases.update(impossible)
        return cases, set(impossible)

    def write_cases(self, impossible=None):
        """Each case as a file in self.d; returns {name: (flag, path)}: all of them, or only
        the impossible run settings (True), or all the others (False)."""
        paths = {}
        cases, names = self.cases()
        for i, (name, (flag, content)) in enumerate(cases.items()):
            if impossible is not None and (name in names) != impossible:
                continue
            path = os.path.join(self.d, f'bad{i:02d}.json')
            if content is not None:
                self.write(os.path.basename(path), content)
            paths[name] = (flag, path)
        return paths

    def test_the_good_file_resumes(self):
        """The control: unchanged, the file loads and resumes; the cases below each break it."""
        good = self.write('good.json', self.good_text)
        f = f'--input_file={self.file}'
        quick = ['--eval_docs=0', '--num_samples=1']
        loaded, resumed = self.cli([f, f'--load={good}', '--num_steps=0', *quick],
                                   [f, f'--resume={good}', *quick])
        self.assertEqual(loaded['code'], 0, loaded['err'])
        self.assertEqual(resumed['code'], 0, resumed['err'])
        self.assertIn(f'resuming {good} at step 5 of 5', resumed['out'])

    def check_one_line_each(self, paths):
        argv = {name: [f'--input_file={self.file}', f'{flag}={path}', '--eval_docs=0',
                       '--num_samples=1'] + (['--num_steps=0'] if flag == '--load' else [])
                for name, (flag, path) in paths.items()}
        results = self.cli(*argv.values())
        for (name, (_, path)), result in zip(paths.items(), results):
            with self.subTest(name):
                line = self.assert_clear_error(result, 2, repr(path))
                if name.endswith(' weight'):
                    self.assertIn('wpe holds something other than finite decimal numbers', line)
                if name == 'finite weights, inf logits':
                    self.assertIn('nan or inf', line)

    def test_each_is_one_line_and_exit_2(self):
        self.check_one_line_each(self.write_cases(impossible=False))

    def test_an_impossible_run_setting_in_the_file_is_blamed_on_the_file(self):
        """batch_size=0 in a file's training settings: the message must name the file.

        No flag said batch_size=0, so a message that names no file blames the user."""
        self.check_one_line_each(self.write_cases(impossible=True))

    def test_a_refused_file_changes_no_setting_and_builds_nothing(self):
        """In a process, a refused file leaves every setting and the model as they were."""
        changed_by = {}  # case: what it changed; one list of them all, one root cause
        for name, (flag, path) in self.write_cases().items():
            reset()  # a model of another shape, so that any change shows
            m.configure(['--n_embd=12', '--n_head=3', '--block_size=6', '--num_steps=7'])
            m.use_vocab('xyz')
            m.use_weights()
            settings, chars, weights = m.settings(), list(m.chars), m.float_weights()
            state_dict, params = m.state_dict, m.params
            with self.subTest(name), self.assertRaises(m.MicrogptError) as cm:
                m.load_model(path, {}, flag == '--resume')
            self.assertEqual(cm.exception.code, 2, name)
            self.assertNotIn('\n', str(cm.exception))
            changed = sorted(k for k, v in m.settings().items() if settings[k] != v)
            if m.chars != chars:
                changed.append('chars')
            if m.state_dict is not state_dict or m.params is not params:
                changed.append('the model')
            elif m.float_weights() != weights:
                changed.append('the weights')
            if changed:
                changed_by[name] = ' '.join(changed)
        self.assertEqual(changed_by, {}, 'changed by a refused file')

    def test_a_nearly_zero_temperature_does_not_overflow(self):
        good = self.write('good.json', self.good_text)
        result, = self.cli([f'--input_file={self.file}', f'--load={good}', '--num_steps=0',
                            '--eval_docs=0', '--temperature=1e-310', '--num_samples=5'])
        self.assertEqual(result['code'], 0, result['err'])  # scaled after subtracting the max
        self.assertEqual(len(re.findall(r'(?m)^sample', result['out'])), 5)

