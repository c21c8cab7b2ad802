"""The guard rails, after Part 4's ruler: flags and settings (one check for flags, notebook cells
and model files), --help, setup() that either succeeds or changes nothing, the input file, --save,
--load, --resume, and the model file as untrusted input.

A command-line error is one line: its exit code, exactly one line on stderr that starts with
`microgpt: `, no traceback, no output before it (no work was done) and no file made or changed.
Many such cases run in one child process, through command_line(), the function that
`python microgpt.py` calls; a few run as the script itself.
"""
import ast, contextlib, difflib, io, json, math, os, random, re, shlex, shutil, signal
import subprocess, sys, tokenize, unittest, zlib
from unittest import mock

from tests.helpers import (DEFAULTS, EXACT_TOL, InTempDir, ROOT, SCRIPT, TINY, WORDS, Case,
                           class_folder, all_logits, m, quiet, reference_losses, report, reset,
                           run, run_interrupted, run_python, slurp, tiny_model, weights_diff)

VOCAB = ''.join(sorted(set(''.join(WORDS))))

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
    m.merges = {}
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


def launch_script(script, *args, cwd):
    """A copy of microgpt.py, edited, run as a script: (exit code, stdout, stderr)."""
    r = subprocess.run([sys.executable, script, *args], cwd=cwd, capture_output=True, text=True,
                       timeout=300)
    return r.returncode, r.stdout, r.stderr


def count_params(vocab_size, n_embd, n_layer, block_size):
    """wte and lm_head, wpe, and per layer 4 attention matrices and the MLP's two (4x wide)."""
    return 2 * vocab_size * n_embd + block_size * n_embd + n_layer * 12 * n_embd * n_embd


def comments_beside_settings():
    """{setting: the comment on the line of its first module-level assignment}, read with ast and
    tokenize: a second reading of the file, sharing nothing with help_text()'s regex."""
    source = slurp(SCRIPT).decode('utf-8')
    comments = {}
    with open(SCRIPT, encoding='utf-8') as f:
        for token in tokenize.generate_tokens(f.readline):
            if token.type == tokenize.COMMENT:
                comments[token.start[0]] = token.string[1:].strip()
    found = {}
    for node in ast.parse(source).body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(
                node.targets[0], ast.Name) and node.targets[0].id in m.KIND:
            found.setdefault(node.targets[0].id, comments.get(node.end_lineno, ''))
    return found


def snapshot():
    """What setup() may change: the settings, the tokenizer, the merges, the model. Objects are
    kept (to compare identity) beside copies of their values (to compare contents)."""
    return {'settings': m.settings(), 'chars': (m.chars, list(m.chars)),
            'stoi': (m.stoi, dict(m.stoi)), 'BOS': m.BOS, 'vocab_size': m.vocab_size,
            'merges': (m.merges, dict(m.merges)), 'state_dict': (m.state_dict, m.float_weights()),
            'params': (m.params, [p.data for p in m.params]),
            'model_shape': (m.model_shape, dict(m.model_shape))}


def changes(before):
    """The names in snapshot() whose object was replaced or whose value changed."""
    now = snapshot()
    changed = []
    for name, then in before.items():
        if isinstance(then, tuple):  # (object, its value then)
            if now[name][0] is not then[0] or now[name][1] != then[1]:
                changed.append(name)
        elif now[name] != then:
            changed.append(name)
    return changed


class CommandLineCase(InTempDir):
    """InTempDir, plus a way to run many command lines in one child process and check each."""

    def cli(self, *cases, cwd=None):
        """Run each argv through command_line() in one child, in cwd (self.d); its results."""
        rc, out, err = run_python(CHILD, ROOT, stdin=json.dumps([list(a) for a in cases]),
                                  cwd=cwd or self.d, timeout=300)
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

    def assert_script_error(self, rc, out, err, code, *needles):
        """The same, for `python microgpt.py` run as a script."""
        self.assert_clear_error({'code': rc, 'out': out, 'err': err, 'files_unchanged': True},
                                code, *needles)

    def main(self, *argv):
        """main() in this process, its output captured; returns the output."""
        return quiet(m.main, list(argv))[1]

    def quick(self, *argv):
        """Flags for a run with no training, no evaluation and no samples: setup() and the check."""
        return [f'--input_file={self.file}', '--num_steps=0', '--eval_docs=0', '--num_samples=0',
                *argv]


# ===================================== flags and settings =====================================

class Help(InTempDir):
    """--help and -h list every setting, by part, with its value and the comment beside it."""

    def parts_in_source(self):
        """{name: part number} of each setting, by the Part ruler above its line in the file."""
        part, where = 0, {}
        for line in slurp(SCRIPT).decode('utf-8').splitlines():
            ruler = re.match(r'# =+ Part (\d)\b', line)
            part = int(ruler.group(1)) if ruler else part
            name = re.match(r'(\w+) = ', line)
            if name and name.group(1) in m.KIND:
                where.setdefault(name.group(1), part)
        where.setdefault('explain', 4)  # a flag with no module setting: it runs in Part 4
        return where

    def listed(self, out):
        """{name: (part, value shown, meaning)} of each flag line of --help."""
        part, listed = None, {}
        for line in out.splitlines():
            header = re.match(r'Part (\d)\b.*:$', line)
            if header:
                part = int(header.group(1))
                continue
            flag = re.match(r'  --(\w+)=(\S*) +(\S.*)$', line)
            if flag:
                self.assertNotIn(flag.group(1), listed, 'listed twice')
                listed[flag.group(1)] = (part, flag.group(2), flag.group(3))
        return listed

    def test_help_and_h_list_every_setting_by_part(self):
        rc, out, err = run('--help')
        self.assertEqual((rc, err), (0, ''))
        rc_h, out_h, err_h = run('-h')
        self.assertEqual((rc_h, err_h), (0, ''))
        self.assertEqual(out_h, out)
        for line in out.splitlines():
            self.assertLessEqual(len(line), 100, line)
        listed = self.listed(out)
        self.assertEqual(sorted(listed), sorted([*m.KIND, 'explain']))
        expected_parts = self.parts_in_source()
        for name, (part, shown, meaning) in listed.items():
            with self.subTest(name):
                self.assertEqual(part, expected_parts[name])
                if name in DEFAULTS:
                    self.assertEqual(shown, repr(DEFAULTS[name]))
                self.assertGreaterEqual(len(meaning.split()), 2, 'a meaning in words')
        self.assertEqual(sorted({p for p, _, _ in listed.values()}), [1, 2, 3, 4])

    def test_every_default_help_shows_can_be_given_back(self):
        """Copied from --help into a shell, each --name=default is taken and means the default."""
        rc, out, err = run('--help')
        self.assertEqual(rc, 0, err)
        found = re.findall(r'^  --(\w+)=(\S*) ', out, re.M)
        self.assertEqual(len(found), len(m.KIND) + 1)
        for name, value in found:
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
                self.assertIs(type(given[name]), type(DEFAULTS[name]))

    def test_help_in_a_notebook_cell_is_the_same_as_from_the_file(self):
        """The file pasted into a cell, whose source IPython registers in linecache under the
        cell's name (no such file on disk); main() there finds no input.txt; a later cell calls
        help_text(). Its text is the script's --help, and each meaning is the comment beside the
        setting in the file."""
        cell = r'''
import linecache, sys
sys.argv = ['ipykernel_launcher.py', '-f', '/tmp/kernel-x.json']
with open(SCRIPT, encoding='utf-8') as f:
    source = f.read()
name = '/tmp/ipykernel_4242/2718281828.py'  # how IPython names a cell; no such file
linecache.cache[name] = (len(source), None, source.splitlines(True), name)
ns = {'__name__': '__main__'}
try:
    exec(compile(source, name, 'exec'), ns)  # cell 1: the whole file, which runs main()
except Exception as e:
    print('cell 1:', type(e).__name__, e, file=sys.stderr)
exec(compile('print(help_text())', '<cell 2>', 'exec'), ns)
'''.replace('SCRIPT', repr(SCRIPT))
        rc, out, err = run_python(cell, cwd=self.d)  # a folder with no input.txt
        self.assertEqual(rc, 0, err)
        self.assertRegex(err, r"^cell 1: MicrogptError cannot read input file 'input.txt' .*"
                              r"--input_file")
        rc, script_help, script_err = run('--help')
        self.assertEqual((rc, script_err), (0, ''))
        self.assertEqual(out, script_help)
        listed = self.listed(out)
        comments = comments_beside_settings()
        self.assertEqual(sorted(comments), sorted(m.KIND))
        for name in m.KIND:
            with self.subTest(name):
                self.assertTrue(comments[name], 'no comment beside the setting')
                self.assertEqual(listed[name][2], comments[name])


    def test_help_where_the_source_cannot_be_read_still_lists_every_setting(self):
        """A slip that passed the suite twice: --help in a cell whose source no one kept (run
        by exec, not registered in linecache): help_text() reads no source. It lists every
        setting all the same, with its value, and main(['--help']) prints it and returns."""
        cell = r'''
import sys
sys.argv = ['ipykernel_launcher.py']
with open(SCRIPT, encoding='utf-8') as f:
    source = f.read()
ns = {'__name__': 'not_main'}
exec(compile(source, '<a cell no one kept>', 'exec'), ns)
print(ns['main'](['--help']))
'''.replace('SCRIPT', repr(SCRIPT))
        rc, out, err = run_python(cell, cwd=self.d)
        self.assertEqual((rc, err), (0, ''))
        self.assertTrue(out.startswith('usage: '), out)
        self.assertTrue(out.endswith('None\n'), out)  # main() returned, after printing
        for name in [*m.KIND, 'explain']:
            with self.subTest(name):
                self.assertRegex(out, rf'(?m)^  --{name}=\S+')


class ReadmeFlags(Case):
    """Every flag that README.md and tests/README.md name in backticks is one microgpt takes."""

    def flags_in(self, path):
        """The --names in code spans and code blocks of a Markdown file, and apart from them the
        typos quoted in an error message (`unknown setting '--n_embdd=8'`). Left out: the flags
        of another program, on a line that runs it (`python tests/bench.py [--full]`), wherever
        they appear. Placeholders such as `--name=value` are kept: the caller knows them."""
        with open(path, encoding='utf-8') as f:
            text = f.read()
        named, typos, others = set(), set(), set()
        for span in re.findall(r'```.*?```|`[^`\n]+`', text, re.S):
            for line in span.splitlines():
                program = re.search(r'[\w/.-]+\.py\b', line)
                if program and os.path.basename(program.group()) != 'microgpt.py':
                    others.update(re.findall(r'(?<![\w-])--(\w+)', line))
                    continue
                typos.update(re.findall(r"unknown setting '--(\w+)", line))
                line = re.sub(r"unknown setting '--\w+", '', line)
                named.update(re.findall(r'(?<![\w-])--(\w+)', line))
        return named - (others - {*m.KIND, 'explain', 'help', 'h'}) - typos, typos  # a typo's own command too

    def test_every_flag_named_in_the_readmes_exists(self):
        readme = os.path.join(ROOT, 'README.md')
        if not os.path.exists(readme):  # tests/mutants.py copies microgpt.py and tests/ only
            self.skipTest('no README.md beside microgpt.py')
        with open(readme, encoding='utf-8') as f:
            if not re.search(r'`[^`\n]*--\w', f.read()):
                self.skipTest('README.md names no flag in backticks yet')
        known = {*m.KIND, 'explain', 'help', 'h'}
        placeholders = {'name'}  # `--name=value`, `--name value`
        self.assertFalse(placeholders & known)
        retired = {'workers', 'prefix_cache'}  # dropped 2026-12-07: tests/README.md's history
        for readme in ('README.md', os.path.join('tests', 'README.md')):
            with self.subTest(readme):
                named, typos = self.flags_in(os.path.join(ROOT, readme))
                old = retired if readme != 'README.md' else set()
                self.assertEqual(sorted(named - known - placeholders - old), [], 'no such flag')
                self.assertEqual(sorted(typos & known), [], 'quoted as a typo, but a flag')
        named, _ = self.flags_in(os.path.join(ROOT, 'README.md'))
        self.assertGreaterEqual(len(named & known), 10, 'the parser finds the flags')


class Flags(CommandLineCase):
    """Every flag is checked before any work: its name, its form, its value's kind (read as
    JSON: 32, 0.01, true, none), and every impossible combination; each mistake is one line and
    exit 2."""

    def kinds(self):
        """Each flag by the kind of value it takes; init_std, whose default None scales with the
        width, takes a number (or None); explain takes a text."""
        kind_of = {**m.KIND, 'explain': str}
        by_kind = {kind: [n for n, k in kind_of.items() if k is kind]
                   for kind in (int, float, bool, str)}
        self.assertEqual(sum(map(len, by_kind.values())), len(kind_of), 'a new kind of setting')
        for kind in (int, float, bool, str):
            self.assertTrue(by_kind[kind], kind)
        return by_kind

    def test_paragraphs_is_a_switch_that_help_lists(self):
        rc, out, err = run('--help')
        self.assertEqual((rc, err), (0, ''))
        self.assertRegex(out, r'\n  --paragraphs=False +\S.*paragraph')
        self.assertIs(m.configure(['--paragraphs'])['paragraphs'], True)
        self.assertIs(m.paragraphs, True)
        reset()
        self.assertIs(m.configure(['--paragraphs=false'])['paragraphs'], False)
        with self.assertRaises(m.MicrogptError) as caught:
            m.configure(['--paragraphs=2'])
        self.assertEqual(str(caught.exception), "--paragraphs takes True or False, not '2'")

    def test_each_kind_is_its_shipped_defaults(self):
        """KIND is a table (an edit in the file must not change what a setting takes): it agrees
        with the defaults as shipped, init_std's None standing for a number."""
        for name, kind in m.KIND.items():
            with self.subTest(name):
                shipped = DEFAULTS[name]
                self.assertIs(kind, float if shipped is None else type(shipped))

    def test_unknown_setting_names_the_closest(self):
        cases = {'--n_embdd=8': '--n_embd', '--learning_rat=0.1': '--learning_rate',
                 '--prompts=ab': '--prompt', 'n_embd=8': '--n_embd', '--explian=emma': '--explain',
                 # issue 22: a part of the name suggests the whole; a typo still gets difflib's
                 '--steps=100': '--num_steps', '--embd=8': '--n_embd', '--n_emdb=8': '--n_embd'}
        self.assertEqual(difflib.get_close_matches('n_emdb', [*m.KIND, 'explain'], n=1),
                         ['n_embd'])
        results = self.cli(*([f'--input_file={self.file}', arg] for arg in cases))
        for (arg, closest), result in zip(cases.items(), results):
            with self.subTest(arg):
                line = self.assert_clear_error(result, 2)
                self.assertEqual(line,
                                 f'microgpt: unknown setting {arg!r}; did you mean {closest}?')

    def test_a_value_after_a_space_gets_the_form_with_equals(self):
        """The suggestion is shell-quoted: pasted back, the shell passes the value whole."""
        results = self.cli([f'--input_file={self.file}', '--n_embd', '32'],
                           ['--prompt', 'my text'], ['--explain', '--num_steps=0'])
        line = self.assert_clear_error(results[0], 2)
        self.assertEqual(line, 'microgpt: --n_embd needs "=" before its value: write --n_embd=32')
        line = self.assert_clear_error(results[1], 2)
        self.assertEqual(line, 'microgpt: --prompt needs "=" before its value: write '
                               "--prompt='my text'")
        self.assertEqual(shlex.split(line.rpartition('write ')[2]), ['--prompt=my text'])
        line = self.assert_clear_error(results[2], 2)  # issue 22: not --explain=--num_steps=0
        self.assertEqual(line, 'microgpt: --explain needs "=" before its value: write '
                               '--explain=VALUE')

    def test_a_bare_switch_means_true_and_a_bare_number_is_an_error(self):
        for name in self.kinds()[bool]:
            with self.subTest(name):
                setattr(m, name, False)
                self.assertEqual(m.configure([f'--{name}']), {name: True})
                self.assertIs(getattr(m, name), True)
        results = self.cli(['--n_embd'], ['--learning_rate'], ['--num_steps', '--fused'])
        for result, name in zip(results, ('n_embd', 'learning_rate', 'num_steps')):
            line = self.assert_clear_error(result, 2)
            self.assertEqual(line, f'microgpt: --{name} needs "=" before its value: write '
                                   f'--{name}=VALUE')

    def test_embeddings_is_a_switch_refused_with_any_other_value_and_listed_in_help(self):
        """--embeddings (issue 30), a Part 4 setting: bare it means True, as =True does;
        misused, it gets the message every switch gets; --help lists it in Part 4."""
        self.assertEqual(m.configure(['--embeddings']), {'embeddings': True})
        self.assertIs(m.embeddings, True)
        reset()
        self.assertEqual(m.configure(['--embeddings=false']), {'embeddings': False})
        results = self.cli(['--embeddings=3'], ['--embeddings=yes'], ['--embeddings', '3'],
                           ['--embeddings', '--embeddings'], ['--embedding'], ['--int8=3'])
        lines = [self.assert_clear_error(result, 2) for result in results]
        self.assertEqual(lines[:2], ["microgpt: --embeddings takes True or False, not '3'",
                                     "microgpt: --embeddings takes True or False, not 'yes'"])
        self.assertEqual(lines[2], "microgpt: unknown setting '3'; see --help")  # as --int8 3
        self.assertEqual(lines[3], 'microgpt: --embeddings is given twice; give it once')
        self.assertEqual(lines[4], "microgpt: unknown setting '--embedding'; did you mean "
                                   "--embeddings?")
        self.assertEqual(lines[5], "microgpt: --int8 takes True or False, not '3'")  # the same
        rc, out, err = run('--help')
        self.assertEqual((rc, err), (0, ''))
        part4 = out[out.index('\nPart 4'):]
        self.assertRegex(part4, r'\n  --embeddings=False +after sampling: ')

    def test_a_repeated_flag_is_an_error_naming_it(self):
        results = self.cli(['--n_embd=8', '--n_embd=8'], ['--fused', '--fused=False'],
                           ['--prompt=a', '--n_head=2', '--prompt=b'])
        for result, name in zip(results, ('--n_embd', '--fused', '--prompt')):
            self.assert_clear_error(result, 2, f'{name} is given twice')

    def test_every_whole_number_setting_takes_only_whole_numbers(self):
        names = self.kinds()[int]
        for name in names:
            reset()
            m.configure([f'--{name}=8'])
            self.assertEqual(getattr(m, name), 8, name)  # the control: a whole number is taken
            self.assertIs(type(getattr(m, name)), int)
        texts = ('8.9', '1e3', '8.0', '"8"', '[8]', 'eight')  # int() refuses each: as given
        results = iter(self.cli(*([f'--{name}={text}'] for name in names for text in texts),
                                *([f'--{name}=true'] for name in names)))
        for name in names:
            for text in texts:
                with self.subTest(name=name, text=text):
                    line = self.assert_clear_error(next(results), 2)
                    self.assertEqual(line, f"microgpt: --{name} takes a whole number, not {text!r}")
        for name in names:  # a switch's word is read, then refused by check_settings
            with self.subTest(name=name, text='true'):
                line = self.assert_clear_error(next(results), 2)
                self.assertEqual(line, f'microgpt: {name} takes a whole number, not True')

    def test_every_number_setting_refuses_a_word(self):
        names = self.kinds()[int] + self.kinds()[float]
        for name in self.kinds()[float]:
            for text in ('0.5', '5e-1'):
                reset()
                m.configure([f'--{name}={text}'])
                self.assertEqual(getattr(m, name), 0.5, name)  # the control: a number is taken
        m.configure(['--temperature=2'])  # a whole number is a number
        self.assertEqual(m.temperature, 2)
        results = self.cli(*([f'--{name}=fast'] for name in names),
                           *([f'--{name}=True'] for name in self.kinds()[float]))
        for name, result in zip(names, results):
            with self.subTest(name):
                self.assert_clear_error(result, 2, f'--{name} takes ', "number, not 'fast'")
        for name, result in zip(self.kinds()[float], results[len(names):]):
            with self.subTest(name=name, text='True'):  # a switch's value is not a number
                line = self.assert_clear_error(result, 2)
                self.assertEqual(line, f'microgpt: {name} takes a number, not True')

    def test_init_std_takes_none(self):
        for text in ('None', 'none', 'NONE'):
            m.init_std = 0.5
            self.assertEqual(m.configure([f'--init_std={text}']), {'init_std': None})
            self.assertIsNone(m.init_std)

    def test_every_switch_takes_true_or_false_in_any_case(self):
        names = self.kinds()[bool]
        for name in names:
            for text, value in (('True', True), ('false', False), ('TRUE', True), ('fAlSe', False)):
                with self.subTest(name=name, text=text):
                    setattr(m, name, not value)
                    self.assertEqual(m.configure([f'--{name}={text}']), {name: value})
                    self.assertIs(getattr(m, name), value)
        results = self.cli(*([f'--{name}=maybe'] for name in names),
                           *([f'--{name}=1'] for name in names))
        for name, result in zip(names, results):
            with self.subTest(name):
                line = self.assert_clear_error(result, 2)
                self.assertEqual(line, f"microgpt: --{name} takes True or False, not 'maybe'")
        for name, result in zip(names, results[len(names):]):
            with self.subTest(name=name, text='1'):  # 1 is a whole number, not a switch
                line = self.assert_clear_error(result, 2)
                self.assertEqual(line, f"microgpt: --{name} takes True or False, not '1'")

    def test_text_settings_take_any_text(self):
        for name in self.kinds()[str]:
            for text in ('a=b c', 'ü ☃ -- x', '', '8', 'None', 'true'):
                with self.subTest(name=name, text=text):
                    reset()
                    self.assertEqual(m.configure([f'--{name}={text}']), {name: text})
                    if name not in ('explain', 'save', 'load', 'resume'):  # for one run only
                        self.assertEqual(getattr(m, name), text)

    def test_a_number_as_python_writes_it(self):
        """`.01`, `1.` and `+5` are numbers (8f368d2 took them through float()); the message that
        refuses them says they are not."""
        for flag, name, value in (('--learning_rate=.01', 'learning_rate', 0.01),
                                  ('--temperature=1.', 'temperature', 1.0),
                                  ('--beta1=+0.5', 'beta1', 0.5)):
            with self.subTest(flag):
                reset()
                try:
                    m.configure([flag])
                except m.MicrogptError as e:
                    self.fail(f'{flag}: {e}')
                self.assertEqual(getattr(m, name), value)

    def test_a_value_nested_too_deep_is_one_line(self):
        result, = self.cli(['--n_embd=' + '[' * 100000])
        self.assert_clear_error(result, 2, '--n_embd takes a whole number')

    def test_impossible_combinations_stop_before_any_work(self):
        f = f'--input_file={self.file}'
        save = f'--save={os.path.join(self.d, "m.json")}'  # must not appear
        cases = [
            (['--n_embd=10', '--n_head=4'], 'n_embd=10 must be a multiple of n_head=4'),
            (['--n_layer=0'], 'at least 1'), (['--n_embd=0'], 'at least 1'),
            (['--n_head=0'], 'at least 1'), (['--block_size=0'], 'at least 1'),
            (['--batch_size=0'], 'batch_size'),
            (['--seed=-1'], 'negative'), (['--num_steps=-5'], 'negative'),
            (['--num_samples=-1'], 'negative'), (['--eval_docs=-1'], 'negative'),
            (['--eval_interval=-1'], 'negative'), (['--eval_iters=-1'], 'negative'),
            (['--bpe_merges=-1'], 'negative'),
            (['--learning_rate=-1'], 'learning_rate must be finite and > 0'),  # as 0 is told
            (['--learning_rate=0'], 'learning_rate must be finite and > 0'),
            (['--eps=-1e-9'], 'eps must be finite and > 0'), (['--eps=0'], 'eps must be finite'),
            (['--learning_rate=nan'], 'learning_rate'), (['--learning_rate=inf'], 'learning_rate'),
            (['--learning_rate=1e999'], 'finite'),  # JSON reads it as inf
            (['--temperature=0'], 'temperature must be finite and > 0'),
            (['--temperature=inf'], 'temperature must be finite and > 0'),
            (['--init_std=-1'], 'init_std must be finite and not negative'),
            (['--init_std=nan'], 'init_std'), (['--init_std=1e999'], 'init_std'),
            (['--beta1=1'], 'beta1'), (['--beta2=1'], 'beta2'), (['--beta2=-0.1'], 'beta2'),
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
                 (f'--save={self.d}', f'cannot save the model to {self.d!r}: Is a directory'),
                 (f'--save={self.file}', f'--save={self.file} is a file but not a model'),
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
                             (['--n_embd=8.0'], "--n_embd takes a whole number, not '8.0'"),
                             ([f'--input_file={self.d}'], 'cannot read')):
            with self.subTest(args):
                before = sorted(os.listdir(self.d))
                rc, out, err = run(*args, cwd=self.d)
                self.assert_script_error(rc, out, err, 2, needle)
                self.assertEqual(sorted(os.listdir(self.d)), before)


class SettingsInAProcess(CommandLineCase):
    """As in a notebook: a setting keeps its last value, whether assigned or set by a flag; a
    configure() that fails changes nothing; main() raises MicrogptError, never SystemExit."""

    def params_line(self, n_embd, n_layer, block_size):
        vocab = len(set(''.join(WORDS))) + 1
        return f'| {count_params(vocab, n_embd, n_layer, block_size)} params |'

    def test_a_setting_assigned_on_the_module_is_kept(self):
        m.n_embd, m.block_size = 12, 8
        self.assertEqual(m.configure([]), {})
        self.assertEqual(m.n_embd, 12)
        out = self.main(*self.quick())
        self.assertIn(self.params_line(12, 1, 8), out)
        self.assertEqual((m.n_embd, m.block_size), (12, 8))
        self.assertEqual(len(m.state_dict['wte'][0]), 12)
        out = self.main(*self.quick('--n_embd=8'))  # unless a flag changes it
        self.assertIn(self.params_line(8, 1, 8), out)

    def test_a_setting_assigned_the_wrong_kind_is_refused(self):
        """A cell can assign anything: 2.0 for a whole number, 3.5 for the seed."""
        for name, value, kind in (('n_layer', 2.0, 'a whole number'),
                                  ('seed', 3.5, 'a whole number'), ('fused', 1, 'True or False'), ('prompt', None, 'a text'),
                                  ('learning_rate', '0.01', 'a number'),
                                  ('init_std', True, 'a number')):
            with self.subTest(name):
                reset()
                setattr(m, name, value)
                with self.assertRaises(m.MicrogptError) as cm:
                    m.main(self.quick())
                self.assertEqual(str(cm.exception), f'{name} takes {kind}, not {value!r}')
        reset()
        m.learning_rate = 1  # a whole number where a number is wanted is a number
        self.assertIn('train docs', self.main(*self.quick(*TINY)))

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
        m.n_embd = 12  # the loaded file set n_embd=8; the next run builds what the cell says
        self.assertIn(self.params_line(12, 2, 8), self.main(*self.quick()))
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
                     ['--save=x.json', '--n_embd', '8'], '--n_embd=8'):
            with self.subTest(argv):
                with self.assertRaises(m.MicrogptError) as cm:
                    m.configure(argv)
                self.assertEqual(cm.exception.code, 2)
                self.assertEqual(m.settings(), before)

    def test_a_string_of_flags_gets_the_list_to_write(self):
        with self.assertRaises(m.MicrogptError) as cm:
            m.main("--n_embd=8 --prompt='my text'")
        self.assertEqual(str(cm.exception),
                         "main() takes a list of flags: main(['--n_embd=8', '--prompt=my text'])")

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


class CellAssignments(InTempDir):
    """A setting assigned in a cell, of the wrong kind or out of range, is refused by main(),
    sample(), evaluate() and explain() with the very line that refuses the same value as a flag
    (issue 22); nothing is printed and the model is untouched."""

    CASES = [('prompt', 'abcdefgh', '--prompt=abcdefgh'),  # TINY: block_size=8
             ('temperature', 0, '--temperature=0'),
             ('temperature', math.inf, '--temperature=1e999'),  # JSON reads 1e999 as inf
             ('n_head', 3, '--n_head=3'),  # TINY: n_embd=8
             ('n_embd', 8.0, '--n_embd=8.0'), ('fused', 1, '--fused=1'),
             ('num_samples', -1, '--num_samples=-1')]

    def test_refused_as_the_flag_is(self):
        callers = {'main': lambda: m.main([f'--input_file={self.file}', '--num_steps=0',
                                           '--eval_docs=0']),
                   'sample': lambda: m.sample(), 'evaluate': lambda: m.evaluate(['emma']),
                   'explain': lambda: m.explain('emma')}
        for name, value, flag in self.CASES:
            tiny_model(vocab=VOCAB)
            with self.assertRaises(m.MicrogptError) as cm:
                m.configure([flag])
            as_flag = str(cm.exception)
            self.assertIn(name.split('_')[-1], as_flag)
            for caller, call in callers.items():
                with self.subTest(setting=name, value=value, caller=caller):
                    tiny_model(vocab=VOCAB)
                    setattr(m, name, value)
                    weights = m.float_weights()
                    out = io.StringIO()
                    with contextlib.redirect_stdout(out), \
                            self.assertRaises(m.MicrogptError) as cm:
                        call()
                    # the same check and words; a flag's text is quoted and named --name
                    self.assertEqual(str(cm.exception), as_flag.lstrip('-').replace("'", ''))
                    self.assertEqual(cm.exception.code, 2)
                    self.assertEqual(out.getvalue(), '')
                    self.assertEqual(m.float_weights(), weights)
                    self.assertEqual(getattr(m, name), value)  # refused, not changed
        tiny_model(vocab=VOCAB)  # the control: as they stand, the settings fit
        m.prompt = 'emm'
        self.assertTrue(quiet(m.sample)[0].startswith('emm'))

    def test_an_edit_to_a_setting_in_the_file_is_refused_as_a_cell_is(self):
        """A learner edits a setting in a copy of the file (a newcomer's trial: each of these
        ended in a traceback when a setting's kind was the type of the value written there)."""
        with open(SCRIPT, encoding='utf-8') as f:
            source = f.read()
        edits = {'n_embd': ('16.0', 'a whole number'), 'num_steps': ('1e3', 'a whole number'),
                 'learning_rate': ("'0.01'", 'a number'), 'prompt': ('None', 'a text'),
                 'temperature': ('None', 'a number'), 'n_head': ('"4"', 'a whole number')}
        for name, (value, words) in edits.items():
            with self.subTest(edit=f'{name} = {value}'):
                edited, n = re.subn(rf'^{name} = \S+', f'{name} = {value}', source, flags=re.M)
                self.assertEqual(n, 1)
                path = self.write('microgpt.py', edited)
                r = subprocess.run([sys.executable, path, f'--input_file={self.file}'],
                                   capture_output=True, text=True, timeout=300)
                self.assertEqual((r.returncode, r.stdout), (2, ''))
                shown = repr(ast.literal_eval(value))  # 1e3: 1000.0
                self.assertEqual(r.stderr, f'microgpt: {name} takes {words}, not {shown}\n')


class Notebooks(CommandLineCase):
    def test_ipython_shows_the_one_line(self):
        """IPython and Jupyter call _render_traceback_ for what to show of an uncaught error."""
        e = m.MicrogptError('n_embd must be at least 1')
        self.assertEqual(e._render_traceback_(), ['MicrogptError: n_embd must be at least 1'])

    def test_a_model_whose_training_diverged_is_refused(self):
        """After a run stopped at nan, sample() and explain() say so in one line, not a
        ValueError from random.choices."""
        tiny_model(vocab=VOCAB)
        m.params[5].data = math.nan
        for call in (m.sample, lambda: m.explain('emma'), lambda: m.evaluate(['emma'])):
            with self.assertRaises(m.MicrogptError) as cm:
                quiet(call)
            self.assertIn('nan or inf weights', str(cm.exception))
        m.params[5].data = 0.0  # the control
        quiet(m.sample)

    def test_bad_documents_and_texts_are_one_line(self):
        """evaluate() and explain() as a notebook calls them: an unknown character (a KeyError
        once), an empty list (a ZeroDivisionError), a text for a list (scored as one-letter names)
        and a list of other things each answer with a one-line MicrogptError."""
        tiny_model(vocab=VOCAB)
        cases = [(m.evaluate, ['Emma'], "characters of the documents to evaluate: 'E'"),
                 (m.evaluate, [], 'must be a non-empty list of texts, not []'),
                 (m.evaluate, 'emma', "must be a non-empty list of texts, not 'emma'"),
                 (m.evaluate, ('emma', 'ava'), 'must be a non-empty list of texts'),
                 (m.evaluate, [1, 2], 'must be a non-empty list of texts'),
                 (m.evaluate, None, 'must be a non-empty list of texts'),
                 (m.explain, ['emma'], "the text to explain must be a text, not ['emma']"),
                 (m.explain, 'Emma', "characters of the text to explain: 'E'")]
        for f, given, needle in cases:
            with self.subTest(f=f.__name__, given=given), \
                    self.assertRaises(m.MicrogptError) as cm:
                quiet(f, given)
            self.assertIn(needle, str(cm.exception))
            self.assertNotIn('\n', str(cm.exception))
        with self.assertRaises(m.MicrogptError):
            quiet(m.evaluate, docs='Emma')  # by keyword too
        docs = ['emma', 'ava', 'sophia']  # the control, against the reference forward pass
        losses = [x for doc in docs for x in reference_losses(m.float_weights(), m.encode(doc))]
        diff = abs(m.evaluate(docs=docs) - sum(losses) / len(losses))
        self.assertLessEqual(report('evaluate vs the reference', diff, EXACT_TOL), EXACT_TOL)

    def test_the_shape_hint_says_what_to_set(self):
        """A cell trains a 32-wide model, a later one calls reset_settings(): the hint names the
        value to set, not reset_settings(), the step that made the mismatch."""
        quiet(m.main, [f'--input_file={self.file}', '--n_embd=32', '--num_steps=0',
                       '--eval_docs=0', '--num_samples=0'])
        m.reset_settings()
        for call in (m.sample, lambda: m.evaluate(['emma']), lambda: m.explain('emma')):
            with self.assertRaises(m.MicrogptError) as cm:
                quiet(call)
            self.assertIn('the model was made with n_embd=32, not 16: set n_embd = 32, or run '
                          'main() to train a new one', str(cm.exception))
            self.assertNotIn('reset_settings', str(cm.exception))
        m.n_embd = 32  # the control: what the hint says works
        self.assertIsInstance(quiet(m.sample)[0], str)


class ResetSettings(CommandLineCase):
    """reset_settings(): one call puts back every setting a fresh interpreter has."""

    def test_after_flags_and_cells_one_call_gives_a_fresh_interpreters_settings(self):
        rc, out, err = run_python('import microgpt\nprint(repr(microgpt.settings()))')
        self.assertEqual(rc, 0, err)
        fresh = ast.literal_eval(out)
        self.assertEqual(sorted(fresh), sorted(m.KIND))
        self.main(*self.quick(*TINY, '--bpe_merges=3', '--temperature=0.8', '--init_std=0.1',
                              '--fused=False', f'--save={self.model}', '--eval_iters=3'))
        m.seed, m.prompt, m.num_samples = 7, 'em', 2  # cells
        self.main(*self.quick(f'--load={self.model}', '--learning_rate=0.02'))
        m.input_file = self.file
        changed = sorted(k for k, v in m.settings().items() if fresh[k] != v)
        self.assertGreaterEqual(len(changed), 12, changed)  # the control: much has changed
        m.reset_settings()
        self.assertEqual(m.settings(), fresh)
        for name, value in fresh.items():
            self.assertIs(type(getattr(m, name)), type(value), name)


# ================================ setup: all or nothing ================================

class AllOrNothing(CommandLineCase):
    """A setup() that fails at any stage, with a MicrogptError, Ctrl-C or a MemoryError,
    leaves every setting, the tokenizer, the merges and the model as they were: the same
    objects, the same values."""

    def start(self):
        """A model of another shape, with a merge, and settings from flags and a cell."""
        reset()
        m.configure(['--n_embd=12', '--n_head=3', '--block_size=6', '--num_steps=7'])
        m.temperature, m.eval_iters = 0.7, 3  # a cell
        m.use_vocab('xyz')
        m.use_merges([(0, 1)])
        m.use_weights()
        return snapshot()

    def check(self, argv, needle, raises=m.MicrogptError, patch=None):
        """main(argv) fails in setup() (with needle in its message) and changes nothing."""
        before = self.start()
        with contextlib.ExitStack() as stack:
            if patch:
                stack.enter_context(patch)
            with self.assertRaises(raises) as cm:
                quiet(m.main, argv)
        self.assertIn(needle, str(cm.exception))  # it failed where it was meant to
        self.assertEqual(changes(before), [], f'changed by a failed setup: {cm.exception!r}')

    def resume(self, path, *argv):
        return [f'--input_file={self.file}', f'--resume={path}', '--eval_docs=0',
                '--num_samples=0', *argv]

    def test_a_failure_at_each_stage_changes_nothing(self):
        one = self.write('one.txt', 'onlyone\n')
        f = f'--input_file={self.file}'
        cases = {  # in the order setup() meets them
            'a bad flag after good ones': (['--n_embd=8', '--n_head=2', '--bogus=1'],
                                           "unknown setting '--bogus=1'"),
            'a value of the wrong kind': (['--n_embd=8', '--n_head=2', '--seed=x'],
                                          "--seed takes a whole number, not 'x'"),
            'a missing input file': ([*TINY, '--input_file=no/such.txt'], 'cannot read input'),
            'an input file of one document': ([*TINY, f'--input_file={one}'],
                                              'needs 2 different non-empty lines'),
            'a prompt the new model cannot write': ([f, *TINY, '--bpe_merges=3', '--prompt=Q'],
                                                    'characters of --prompt'),
            'a text to explain it does not know': ([f, *TINY, '--explain=QQ'],
                                                   'characters of --explain'),
            'a --save into no folder': ([f, *TINY, '--bpe_merges=3', '--save=no/such/m.json'],
                                        'cannot save the model'),
            'a --save onto a folder': ([f, *TINY, f'--save={self.d}'], 'Is a directory'),
        }
        for name, (argv, needle) in cases.items():
            with self.subTest(name):
                self.check(argv, needle)

    def test_a_bad_model_file_changes_nothing(self):
        self.main(*self.quick(*TINY, f'--save={self.model}'))
        good = json.loads(slurp(self.model))
        t = good['training']
        n = len(t['m'])
        huge = [[1.5e308 * (-1) ** i for i in range(8)] for _ in good['state_dict']['lm_head']]
        files = {  # each fails at a later stage of load_model()
            'impossible config': (dict(good, config=dict(good['config'], n_head=3)),
                                  'must be a multiple of n_head=3'),
            'inf logits': (dict(good, state_dict=dict(good['state_dict'], lm_head=huge)),
                           'nan or inf logits'),
            "Adam's m with a nan": (dict(good, training=dict(t, m=[0.0] * (n - 1) + [math.nan])),
                                    "Adam's m"),
            'random_state garbage': (dict(good, training=dict(t, random_state=[3, [1], None])),
                                     'random_state'),
        }
        for name, (blob, needle) in files.items():
            with self.subTest(name):
                self.check(self.resume(self.write('bad.json', json.dumps(blob))), needle)
        with self.subTest('the control: the good file resumes'):
            reset()
            self.assertIn('resuming', self.main(*self.resume(self.model)))
        other = self.write('other.txt', '\n'.join(reversed(WORDS * 3)))
        with self.subTest('another input file'):
            self.check([f'--input_file={other}', f'--resume={self.model}', '--eval_docs=0',
                        '--num_samples=0'], 'is not the text')
        with self.subTest('a prompt the loaded model cannot write'):
            self.check(self.quick(f'--load={self.model}', '--prompt=Q'), 'characters of --prompt')

    def test_ctrl_c_or_out_of_memory_at_each_stage_changes_nothing(self):
        self.main(*self.quick(*TINY, f'--save={self.model}'))
        new = self.quick(*TINY, '--bpe_merges=3', f'--save={self.model}')
        cases = {  # where Ctrl-C arrives: setup() calls each of these through the module
            'reading the text': ('read_text', new), 'learning merges': ('learn_merges', new),
            'making the weights': ('use_weights', new),
            'checking the characters, the last stage': ('check_known', new),
            'loading the weights': ('use_weights', self.quick(f'--load={self.model}')),
            'taking the merges of a model': ('use_merges', self.resume(self.model)),
        }
        for name, (function, argv) in cases.items():
            with self.subTest(name):
                self.check(argv, '', KeyboardInterrupt,
                           mock.patch.object(m, function, side_effect=KeyboardInterrupt))
        with self.subTest('out of memory reading the text'):  # as read_text() sees it
            self.check(new, f'cannot read input file {self.file!r} (too big)', m.MicrogptError,
                       mock.patch.object(m.pathlib.Path, 'read_text', side_effect=MemoryError))

    def test_a_failed_resume_leaves_random_as_it_was(self):
        """A refused --resume (another text) seeded random and set the saved state before the
        check: the caller's random numbers go on as if it had not been called."""
        self.main(f'--input_file={self.file}', '--num_steps=3', '--eval_docs=0',
                  '--num_samples=0', *TINY, f'--save={self.model}')
        other = self.write('other.txt', '\n'.join(reversed(WORDS * 3)))
        random.seed(7)
        expected = random.Random(7).random()
        with self.assertRaises(m.MicrogptError) as cm:
            quiet(m.main, [f'--input_file={other}', f'--resume={self.model}', '--eval_docs=0',
                           '--num_samples=0'])
        self.assertIn('is not the text', str(cm.exception))
        self.assertEqual(random.random(), expected)

    def test_a_contradiction_is_refused_before_the_text_is_read(self):
        self.main(*self.quick(*TINY, f'--save={self.model}'))
        read, real = [], m.read_text

        def spy(path, *args):
            read.append(path)
            return real(path, *args)
        with mock.patch.object(m, 'read_text', spy):
            self.check([f'--input_file={self.file}', f'--load={self.model}', '--n_embd=16'],
                       '--n_embd=16 contradicts')
        self.assertEqual(read, [self.model])  # the model file, not the text

    def test_the_same_setup_then_succeeds(self):
        """The control: what failed above works once the cause is gone, and changes the model."""
        before = self.start()
        self.main(*self.quick(*TINY, '--bpe_merges=3'))
        self.assertEqual(sorted(changes(before)), sorted(before))


# ======================================== files: input ========================================

class InputFile(CommandLineCase):
    """The input file: input.txt in the current folder by default, and every file that cannot
    be trained on."""

    def test_no_input_txt_here_reads_the_one_beside_the_script(self):
        """`python path/to/microgpt.py` from another folder: the current folder's input.txt
        if it has one, else the one beside the script; neither: one line naming input.txt."""
        beside, here = os.path.join(self.d, 'beside'), os.path.join(self.d, 'here')
        os.mkdir(beside)
        os.mkdir(here)
        script = shutil.copy(SCRIPT, beside)
        quick = ['--num_steps=0', '--eval_docs=0', '--num_samples=1']
        rc, out, err = run_python(f'import runpy, sys\nsys.argv = [{script!r}, *{quick!r}]\n'
                                  f'runpy.run_path({script!r}, run_name="__main__")', cwd=here)
        self.assert_script_error(rc, out, err, 2, "cannot read input file 'input.txt'",
                                 'No such file', '--input_file=PATH')
        for folder, lines in ((beside, WORDS), (here, WORDS[:5])):  # here wins over beside
            with open(os.path.join(folder, 'input.txt'), 'w') as f:
                f.write('\n'.join(lines))
            rc, out, err = run_python(f'import runpy, sys\nsys.argv = [{script!r}, *{quick!r}]'
                                      f'\nrunpy.run_path({script!r}, run_name="__main__")',
                                      cwd=here)
            self.assertEqual(rc, 0, err)
            train, held = map(int, re.match(r'(\d+) train docs, (\d+) held out', out).groups())
            self.assertEqual(train + held, len(lines))
        self.assertEqual(sorted(os.listdir(here)), ['input.txt'])

    def test_a_saved_model_samples_and_explains_without_its_text(self):
        """--load with nothing to train or score reads no text; training or scoring does."""
        self.main(*self.quick(*TINY, f'--save={self.model}'))
        gone = f'--input_file={os.path.join(self.d, "gone.txt")}'
        load = [f'--load={self.model}', '--num_steps=0', '--num_samples=2']
        ok, scores, trains = self.cli([gone, *load, '--eval_docs=0', '--explain=emma'],
                                      [gone, *load, '--eval_docs=3'],
                                      [gone, *load[:1], '--num_steps=1', '--eval_docs=0'])
        self.assertEqual(ok['code'], 0, ok['err'])
        self.assertEqual(len(re.findall(r'(?m)^sample  \d: ', ok['out'])), 2)
        self.assertIn('mean loss', ok['out'])  # the explanation
        self.assertNotIn('copies', ok['out'])  # no text to compare the samples with
        self.assertTrue(ok['out'].startswith('no text read: nothing to train or score | vocab'))
        for result in (scores, trains):
            self.assert_clear_error(result, 2, 'cannot read input file', 'gone.txt')

    def test_the_input_txt_in_the_current_folder_is_the_default(self):
        self.write('input.txt', '\n'.join(WORDS))
        result, = self.cli([*TINY, '--num_steps=0', '--eval_docs=0', '--num_samples=0'])
        self.assertEqual(result['code'], 0, result['err'])
        counts = re.match(r'(\d+) train docs, (\d+) held out \| vocab (\d+) ', result['out'])
        train, held, vocab = map(int, counts.groups())
        self.assertEqual(train + held, len(WORDS))  # not the names beside microgpt.py
        self.assertEqual(vocab, len(VOCAB) + 1)

    def test_bad_input_files_are_one_line(self):
        cases = {'missing.txt': (None, 'No such file'), 'empty.txt': (b'', 'non-empty lines'),
                 'blank.txt': (b'\n\n\r\n\n', 'non-empty lines'),
                 'one.txt': (b'onlyone\n', 'non-empty lines'),
                 'twice.txt': (b'same\nsame\n', 'non-empty lines'),
                 'latin1.txt': ('caf\u00e9\nna\u00efve\n'.encode('latin-1'),
                                "'utf-8' codec can't decode"),
                 'folder': (None, 'Is a directory')}
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

    def test_every_line_end_ends_a_line(self):
        """Old-Mac \\r, Windows \\r\\n and \\n: 500 names are 500 documents, also mixed."""
        with open(os.path.join(ROOT, 'input.txt'), encoding='utf-8') as f:
            names = f.read().split('\n')[:500]
        mixed = ''.join(name + ('\r', '\r\n', '\n')[i % 3] for i, name in enumerate(names))
        for end, text in (('\r', '\r'.join(names)), ('\r\n', '\r\n'.join(names)),
                          ('mixed', mixed)):
            with self.subTest(end):
                path = self.write('ends.txt', text.encode('utf-8'))
                reset()
                run = quiet(m.setup, [f'--input_file={path}', *TINY, '--num_steps=0'])[0]
                self.assertEqual(sorted(run['train_docs'] + run['val_docs']), sorted(names))
                self.assertNotIn('\r', m.chars)

    def test_paragraphs_need_empty_lines_between_them_and_the_error_says_so(self):
        """--paragraphs on a text with no empty line: one document, none to hold out."""
        path = self.write('lines.txt', 'emma\nava\nmia\n')
        result, = self.cli([f'--input_file={path}', '--paragraphs', '--num_steps=1',
                            '--eval_docs=0', '--num_samples=1'])
        self.assert_clear_error(result, 2, 'lines.txt', '2 different paragraphs (between empty')

    def test_utf8_with_a_byte_order_mark_and_windows_line_ends(self):
        path = self.write('bom.txt', '\ufeffzoë\r\nchloé\r\n\r\nrenée\r\nagnès\r\n')
        out = self.main(f'--input_file={path}', *TINY, '--num_steps=2', '--eval_docs=0',
                        '--num_samples=0')
        counts = re.match(r'(\d+) train docs, (\d+) held out \| vocab (\d+) ', out)
        train, held, vocab = map(int, counts.groups())
        self.assertEqual(train + held, 4)
        self.assertEqual(m.chars, sorted(set('zoëchloérenéeagnès')))  # no BOM, no \r
        self.assertEqual(vocab, len(m.chars) + 1)

    def test_an_input_too_big_for_memory_is_one_line_naming_it(self):
        """No size limit of its own: /dev/zero under a memory limit runs out of memory, and that
        is one line that names the file, exit 2."""
        limit = 300 * 2 ** 20
        rc, out, err = run_python(
            'import resource, runpy, sys\n'
            f'resource.setrlimit(resource.RLIMIT_AS, ({limit}, {limit}))\n'
            f'sys.argv = [{SCRIPT!r}, "--input_file=/dev/zero"]\n'
            f'runpy.run_path({SCRIPT!r}, run_name="__main__")\n', cwd=self.d)
        self.assert_script_error(rc, out, err, 2)
        self.assertEqual(err, "microgpt: cannot read input file '/dev/zero' (too big); give "
                              "--input_file=PATH, UTF-8 text\n")


# ===================================== files: save, load ======================================

class SaveLoadPrompt(CommandLineCase):
    """Keep what you trained, sample without retraining, complete a prompt; a loaded model
    brings its own shape."""

    @classmethod
    def setUpClass(cls):
        """One TINY model, trained by the script, for the tests that only read it."""
        words = class_folder(cls)
        cls.trained_model = os.path.join(cls.class_dir, 'model.json')
        rc, cls.trained, err = run(f'--input_file={words}', '--num_steps=20', *TINY,
                                   f'--save={cls.trained_model}', '--num_samples=8',
                                   '--eval_docs=10', cwd=cls.class_dir)
        assert rc == 0, err

    def setUp(self):
        super().setUp()
        shutil.copy(self.trained_model, self.model)

    def train_and_save(self, *args, path=None, shape=TINY):
        rc, out, err = run(f'--input_file={self.file}', '--num_steps=3', *shape,
                           f'--save={path or self.model}', *args, cwd=self.d)
        self.assertEqual(rc, 0, err)
        return out

    def test_round_trip_is_bit_identical(self):
        """In process: the loaded weights give the same logits; as the script: the same samples
        and the same val loss."""
        tiny_model(vocab=VOCAB, seed=3)
        before = m.float_weights()
        zeros = [0.0] * len(m.params)
        quiet(m.save_model, self.model, {'adam': {'step': 0, 'm': zeros, 'v': zeros},
                                         'input_crc': 0, 'input_path': self.file, 'before': 0})
        logits_before = all_logits('sophia')
        tiny_model(vocab='xyz', seed=99)  # something else entirely, replaced by the load
        self.assertIsNone(m.load_model(m.read_model(self.model, False), False))
        self.assertEqual(m.float_weights(), before)
        self.assertEqual(all_logits('sophia'), logits_before)
        self.assertEqual(json.loads(slurp(self.model))['config'],
                         {'n_layer': 2, 'n_embd': 8, 'n_head': 2, 'block_size': 8})

        shutil.copy(self.trained_model, self.model)  # trained by the script, 20 steps
        trained = self.trained
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
        f, load = f'--input_file={self.file}', f'--load={self.model}'
        ok, bad = self.cli([f, load, '--num_steps=0', '--eval_docs=0', '--num_samples=1'],
                           [f, load, '--n_embd=16'])
        self.assertEqual(ok['code'], 0, ok['err'])
        vocab = len(set(''.join(WORDS))) + 1
        self.assertIn(f'| {count_params(vocab, 8, 2, 8)} params |', ok['out'])
        self.assert_clear_error(bad, 2, f'--n_embd=16 contradicts {self.model!r}, with n_embd=8')

    def test_a_learners_added_matrix_round_trips(self):
        """The issue's edit: 'lm_bias': (1, vocab_size) in shapes(), added to the logits in
        gpt(). The file holds it; --load gives the same val loss and samples; --resume goes on."""
        source = slurp(SCRIPT, 'r')
        edits = [("'lm_head': (vocab_size, n)}", "'lm_head': (vocab_size, n),\n"
                  "             'lm_bias': (1, vocab_size)}"),
                 ("    return linear(x, sd['lm_head'])  # (vocab_size,)",
                  "    return [a + b for a, b in zip(linear(x, sd['lm_head']), sd['lm_bias'][0])]")]
        for old, new in edits:
            self.assertEqual(source.count(old), 1, old)
            source = source.replace(old, new)
        script = self.write('edited.py', source)
        flags = [f'--input_file={self.file}', '--num_samples=4', '--eval_docs=10']
        rc, trained, err = launch_script(script, *flags, *TINY, '--num_steps=6',
                                         f'--save={self.model}', cwd=self.d)
        self.assertEqual(rc, 0, err)
        bias = json.loads(slurp(self.model))['state_dict']['lm_bias']
        self.assertEqual([len(bias), len(bias[0])], [1, len(VOCAB) + 1])
        rc, loaded, err = launch_script(script, *flags, f'--load={self.model}', '--num_steps=0',
                                        cwd=self.d)
        self.assertEqual(rc, 0, err)
        for pattern in (r'val loss \S+', r'(?m)^sample.*$'):
            self.assertEqual(re.findall(pattern, loaded), re.findall(pattern, trained))
        rc, resumed, err = launch_script(script, *flags, f'--resume={self.model}', cwd=self.d)
        self.assertEqual(rc, 0, err)
        self.assertIn(f'resuming {self.model} at step 6 of 6', resumed)

    def test_a_shape_flag_that_agrees_with_the_loaded_model_is_taken(self):
        self.train_and_save('--eval_docs=0', '--num_samples=0',
                            shape=['--n_embd=12', '--n_head=3', '--n_layer=2', '--block_size=8'])
        result, = self.cli([f'--input_file={self.file}', f'--load={self.model}', '--n_head=3',
                            '--num_steps=0', '--eval_docs=0', '--num_samples=1'])
        self.assertEqual(result['code'], 0, result['err'])  # n_embd=12 comes from the file
        self.assertRegex(result['out'], r'(?m)^sample  1: ')

    def test_prompt(self):
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
        self.assert_clear_error(too_long, 2, f'with the model in {self.model!r}',
                                'prompt must be shorter than block_size=8')

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
    """A saved file holds all that resuming needs; a save that fails leaves the old file whole;
    the hint to resume can be pasted into a shell."""

    def run_dict(self, step, n):
        zeros = [0.0] * n
        return {'adam': {'step': step, 'm': zeros, 'v': zeros}, 'input_crc': 0,
                'input_path': self.file, 'before': 0}

    def test_a_save_reports_the_models_steps_in_all(self):
        """Issue 28: an 8-bit save of a model trained 1,000 steps printed `at step 0 of 0`. Each
        file holds the steps that made its weights, over every run: 5; loaded and trained 3
        more, 8; saved in 8 bits with no training, 8; stopped at step 2 of 4 from that, 10, and
        resumed to the end, 12. The line says so where the schedule's step is not all."""
        paths = [os.path.join(self.d, f'{name}.json') for name in 'abqcd']
        a, b, q, c, d = paths
        common = [f'--input_file={self.file}', '--eval_docs=0', '--num_samples=0']
        real_train = m.train

        def stop_at_2(*args):
            for step, loss, batch in real_train(*args):
                if step + 1 == 2:
                    os.kill(os.getpid(), signal.SIGINT)
                yield step, loss, batch
        runs = [([*TINY, '--num_steps=5', f'--save={a}'], 'at step 5 of 5\n', 5),
                ([f'--load={a}', '--num_steps=3', f'--save={b}'],
                 'at step 3 of 3, 8 steps in all\n', 8),
                ([f'--load={b}', '--num_steps=0', '--int8', f'--save={q}'],
                 'at step 0 of 0, 8 steps in all; the run goes on with its 8-bit weights\n', 8),
                ([f'--load={q}', '--num_steps=4', f'--save={c}'],
                 f'at step 2 of 4, 10 steps in all; go on with --resume={c}\n', 10),
                ([f'--resume={c}'], 'at step 4 of 4, 12 steps in all\n', 12)]
        for (flags, said, steps), path in zip(runs, [a, b, q, c, c]):
            with self.subTest(flags=flags):
                reset()
                stop = stop_at_2 if '--num_steps=4' in flags else real_train
                with mock.patch.object(m, 'train', stop):
                    _, out = quiet(m.main, common + flags)
                self.assertIn(f'saved the model to {path} {said}', out)
                self.assertEqual(json.loads(slurp(path))['steps'], steps)
        print(f'  the last save: {out.strip().splitlines()[-1]!r}')

    def test_the_file_holds_what_resuming_needs(self):
        record = []
        real = m.adam_step

        def spy(step, mm, vv, lr):
            real(step, mm, vv, lr)
            record.append((list(mm), list(vv), random.getstate()))

        steps = 6
        cwd = os.getcwd()
        os.chdir(self.d)  # a relative --input_file: the file holds where it is
        try:
            where = os.path.join(os.getcwd(), 'words.txt')
            with mock.patch.object(m, 'adam_step', spy):
                self.main('--input_file=words.txt', *TINY, f'--num_steps={steps}',
                          '--batch_size=2', '--learning_rate=0.02', '--seed=7', '--beta1=0.8',
                          f'--save={self.model}', '--eval_docs=3', '--num_samples=2')
        finally:
            os.chdir(cwd)
        self.assertEqual(len(record), steps)
        blob = json.loads(slurp(self.model))
        training = blob['training']
        self.assertEqual(sorted(training), ['input_crc', 'input_file', 'losses', 'm',
                                            'random_state', 'settings', 'step', 'v'])
        self.assertEqual(training['step'], steps)
        self.assertEqual(training['settings'], {
            'num_steps': steps, 'batch_size': 2, 'learning_rate': 0.02, 'beta1': 0.8,
            'beta2': 0.99, 'eps': 1e-8, 'seed': 7, 'paragraphs': False})
        self.assertEqual(training['input_crc'], zlib.crc32(slurp(self.file)))
        self.assertEqual(training['input_file'], where)  # absolute: --resume from anywhere
        self.assertTrue(os.path.samefile(where, self.file))
        mm, vv, state = record[-1]  # Adam's state and the generator's after the last step
        self.assertEqual(training['m'], mm)  # JSON lists of floats, exact
        self.assertEqual(training['v'], vv)
        self.assertTrue(all(type(x) is float for x in training['m'] + training['v']))
        self.assertEqual(len(mm), count_params(len(blob['chars']) + 1, 8, 2, 8))
        self.assertTrue(any(mm) and any(vv))
        self.assertEqual(training['random_state'], json.loads(json.dumps(state)))
        self.assertEqual(blob['config'], {'n_layer': 2, 'n_embd': 8, 'n_head': 2, 'block_size': 8})
        self.assertEqual(blob['chars'], sorted(set(''.join(WORDS))))
        self.assertEqual(blob['state_dict'], m.float_weights())

    def test_an_interrupted_save_keeps_the_old_file(self):
        tiny_model(vocab=VOCAB)
        n = len(m.params)
        quiet(m.save_model, self.model, self.run_dict(0, n))
        old = slurp(self.model)
        for p in m.params:
            p.data += 1.0
        for failure in (OSError(28, 'No space left on device'), KeyboardInterrupt()):
            with self.subTest(type(failure).__name__):
                with mock.patch('os.fsync', side_effect=failure):
                    if isinstance(failure, OSError):  # a full disk: a run gone wrong
                        with self.assertRaises(m.MicrogptError) as cm:
                            quiet(m.save_model, self.model, self.run_dict(1, n))
                        self.assertEqual(cm.exception.code, 1)
                        self.assertIn('No space left on device', str(cm.exception))
                        self.assertIn(repr(self.model), str(cm.exception))
                        self.assertNotIn('\n', str(cm.exception))
                    else:  # Ctrl-C
                        with self.assertRaises(KeyboardInterrupt):
                            quiet(m.save_model, self.model, self.run_dict(1, n))
                self.assertEqual(slurp(self.model), old)  # the old model, whole
                self.assertEqual(sorted(os.listdir(self.d)), ['model.json', 'words.txt'])

    def test_the_resume_hint_is_shell_quoted(self):
        """Issue 22: a path with a space, pasted back, is one argument."""
        tiny_model('--num_steps=5', vocab=VOCAB)
        n = len(m.params)
        for name in ('my model.json', "it's.json", 'plain.json'):
            with self.subTest(name):
                path = os.path.join(self.d, name)
                _, out = quiet(m.save_model, path, self.run_dict(2, n))
                hint = f'saved the model to {path} at step 2 of 5; go on with '
                self.assertTrue(out.startswith(hint), out)
                self.assertEqual(out.count('\n'), 1)
                self.assertEqual(shlex.split(out[len(hint):]), [f'--resume={path}'])
                _, out = quiet(m.save_model, path, self.run_dict(5, n))  # the whole run
                self.assertEqual(out, f'saved the model to {path} at step 5 of 5\n')
        m.int8 = True  # 8-bit: no training state, so no hint; the run goes on with it
        _, out = quiet(m.save_model, os.path.join(self.d, 'q.json'), self.run_dict(2, n))
        self.assertEqual(out, f'saved the model to {os.path.join(self.d, "q.json")} at step 2 '
                              f'of 5; the run goes on with its 8-bit weights\n')


# ======================================== files: resume =======================================

class Resume(CommandLineCase):
    """--resume goes on with a saved run exactly where it stopped, on the text it remembers;
    --load starts a new one."""

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

    def test_the_shape_rules_hold_for_the_saved_model_not_the_settings_as_they_stand(self):
        """A slip that passed the suite twice: with --resume (or --load), the prompt and
        n_head rules checked against the settings as they stand, not the saved model's. A prompt
        of 9 characters is refused for a model saved with block_size 8, though the default 16
        would take it; one of 20 is taken for a model saved with block_size 32, though 16 would
        refuse it."""
        for block_size, prompt, refused in ((8, 'a' * 9, True), (32, 'a' * 20, False)):
            reset()
            model = os.path.join(self.d, f'model{block_size}.json')
            self.main(*self.quick(f'--save={model}', '--n_embd=8', '--n_head=2',
                                  f'--block_size={block_size}'))
            for flag in ('--resume', '--load'):
                with self.subTest(block_size=block_size, flag=flag):
                    reset()
                    argv = [f'--input_file={self.file}', '--num_steps=0', '--eval_docs=0',
                            f'{flag}={model}', f'--prompt={prompt}', '--num_samples=1']
                    if refused:
                        with self.assertRaises(m.MicrogptError) as cm:
                            self.main(*argv)
                        self.assertIn(f'prompt must be shorter than block_size={block_size}',
                                      str(cm.exception))
                        self.assertEqual(m.settings(), DEFAULTS)  # and nothing changed
                    else:
                        self.assertRegex(self.main(*argv), f'sample  1: {prompt}')

    def test_resume_takes_the_same_text_with_other_line_ends(self):
        self.main(f'--input_file={self.file}', '--num_steps=6', '--eval_docs=0', '--num_samples=0',
                  f'--save={self.model}', *TINY)
        crlf = self.write('crlf.txt', slurp(self.file).replace(b'\n', b'\r\n'))
        reset()
        out = self.main(f'--input_file={crlf}', f'--resume={self.model}', '--eval_docs=0',
                        '--num_samples=0')
        self.assertIn('resuming', out)

    def check_resume_is_exact(self, steps, run_flags):
        text = self.long_docs()
        k = random.Random(steps).randrange(1, steps - 1)
        print(f'  interrupted in step {k + 1} of {steps}, {run_flags}')
        common = [f'--input_file={text}', '--eval_docs=4', '--num_samples=3']
        first = [*common, *TINY, f'--num_steps={steps}', *run_flags]
        whole, part = os.path.join(self.d, 'whole.json'), os.path.join(self.d, 'my part.json')

        out_whole = self.main_stopped_at(None, *first, f'--save={whole}')
        weights_whole = m.float_weights()
        self.assertTrue(all(len(doc) > 8 for doc in slurp(text, 'r').split('\n')))  # windows
        reset()
        out_part = self.main_stopped_at(k, *first, f'--save={part}')
        self.assertIn(f'stopped by SIGINT at step {k + 1}\n', out_part)
        self.assertIn(f'saved the model to {part} at step {k + 1} of {steps}; '
                      f'go on with --resume={shlex.quote(part)}\n', out_part)
        self.assertEqual(json.loads(slurp(part))['training']['step'], k + 1)
        reset()
        out_resumed = self.main_stopped_at(None, *common, f'--resume={part}')
        self.assertIn(f'resuming {part} at step {k + 1} of {steps}', out_resumed)
        self.assertIn(f'saved the model to {part} at step {steps} of {steps}\n', out_resumed)

        diff = weights_diff(weights_whole, m.float_weights())
        self.assertLessEqual(report('weights, resumed vs never interrupted', diff, 0.0), 0.0)
        saved_whole = json.loads(slurp(whole))['training']
        saved_resumed = json.loads(slurp(part))['training']
        for key in ('m', 'v'):
            diff = weights_diff(saved_whole[key], saved_resumed[key])
            self.assertLessEqual(report(f"Adam's {key}, resumed vs never interrupted", diff,
                                        0.0), 0.0)
        self.assertEqual(saved_resumed['step'], steps)
        val = re.compile(r'(?m)^val loss .*$')
        samples = re.compile(r'(?m)^sample .*$')
        self.assertEqual(val.findall(out_resumed), val.findall(out_whole))
        # issue 28: the running mean (of the last 100 losses) goes on where it stopped
        line = re.compile(r'(?m)^step +(\d+)/\d+ \| loss (\S+) \| mean (\S+) ')
        after = line.findall(out_resumed)
        self.assertEqual(after[0][0], str(k + 2))
        self.assertEqual(after, [s for s in line.findall(out_whole) if int(s[0]) > k + 1])
        self.assertEqual(len(samples.findall(out_whole)), 3)
        self.assertEqual(samples.findall(out_resumed), samples.findall(out_whole))

    def test_an_interrupted_run_resumes_exactly(self):
        self.check_resume_is_exact(16, [])

    def test_resume_remembers_the_input_file(self):
        """Trained in one folder on a file given by a relative path, stopped by Ctrl-C, resumed
        from another folder with no --input_file: the same text, the same run, exactly. A file
        moved or changed since is one line."""
        a, b = os.path.join(self.d, 'a'), os.path.join(self.d, 'b')
        os.mkdir(a)
        os.mkdir(b)
        words = os.path.join(a, 'words.txt')
        shutil.copy(self.file, words)
        steps = 100
        flags = ['--input_file=words.txt', *TINY, f'--num_steps={steps}', '--eval_docs=0',
                 '--num_samples=0', '--eval_interval=0']
        rc, out, err = run(*flags, '--save=whole.json', cwd=a)
        self.assertEqual(rc, 0, err)
        rc, out, err = run_interrupted(*flags, '--save=model.json', cwd=a)  # Ctrl-C at a step line
        self.assertEqual(rc, 0, err)
        stopped = re.search(r'(?m)^stopped by SIGINT at step (\d+)$', out)
        self.assertIsNotNone(stopped, f'not stopped by Ctrl-C:\n{out}')
        k = int(stopped.group(1))
        self.assertIn(f'saved the model to model.json at step {k} of {steps}; '
                      f'go on with --resume=model.json', out)
        model = os.path.join('..', 'a', 'model.json')  # from b
        saved = slurp(os.path.join(a, 'model.json'))
        self.assertEqual(json.loads(saved)['training']['input_file'], words)

        os.rename(words, words + '.moved')
        rc, out, err = run(f'--resume={model}', cwd=b)
        self.assert_script_error(rc, out, err, 2, f'cannot read input file {words!r}',
                                 '--input_file')
        self.write(os.path.join('a', 'words.txt'), '\n'.join(reversed(WORDS * 3)))  # its chars
        rc, out, err = run(f'--resume={model}', cwd=b)
        self.assert_script_error(rc, out, err, 2, f'{words!r} is not the text that {model!r} '
                                                  f'was trained on', '--input_file')
        self.assertEqual(slurp(os.path.join(a, 'model.json')), saved)  # the failures wrote none
        self.assertEqual(os.listdir(b), [])

        os.replace(words + '.moved', words)
        rc, out, err = run(f'--resume={model}', cwd=b)
        self.assertEqual(rc, 0, err)
        self.assertIn(f'resuming {model} at step {k} of {steps}', out)
        self.assertIn(f'saved the model to {model} at step {steps} of {steps}\n', out)
        whole = json.loads(slurp(os.path.join(a, 'whole.json')))
        resumed = json.loads(slurp(os.path.join(a, 'model.json')))
        for what, x, y in (('weights', whole['state_dict'], resumed['state_dict']),
                           ("Adam's m", whole['training']['m'], resumed['training']['m']),
                           ("Adam's v", whole['training']['v'], resumed['training']['v'])):
            diff = weights_diff(x, y)
            self.assertLessEqual(report(f'{what}, resumed elsewhere vs never interrupted', diff,
                                        0.0), 0.0)
        self.assertEqual(resumed['training']['random_state'], whole['training']['random_state'])
        self.assertEqual(resumed['training']['step'], steps)

    def test_a_flag_that_contradicts_the_saved_run_is_refused(self):
        self.main(f'--input_file={self.file}', *TINY, '--num_steps=4', f'--save={self.model}',
                  '--eval_docs=0', '--num_samples=0')
        other = self.write('other.txt', '\n'.join(reversed(WORDS * 3)))  # its characters
        f, resume = f'--input_file={self.file}', f'--resume={self.model}'
        cases = [([f'--input_file={other}', resume], [f'{other!r} is not the text',
                                                      '--input_file']),
                 ([f, resume, '--batch_size=2'], ['--batch_size=2 contradicts']),
                 ([f, resume, '--learning_rate=0.02'], ['--learning_rate=0.02 contradicts']),
                 ([f, resume, '--num_steps=8'], ['--num_steps=8 contradicts']),
                 ([f, resume, '--seed=1'], ['--seed=1 contradicts']),
                 ([f, resume, '--n_embd=16'], ['--n_embd=16 contradicts']),
                 ([f, resume, '--bpe_merges=2'], ['--bpe_merges=2 contradicts']),
                 ([f, resume, '--paragraphs'], ['--paragraphs=True contradicts'])]  # other docs
        results = self.cli(*(argv for argv, _ in cases),
                           [f, resume, '--num_steps=4', '--batch_size=1', '--eval_docs=0',
                            '--num_samples=1'])  # the control: flags that agree
        for (argv, needles), result in zip(cases, results):
            with self.subTest(argv[-1]):
                self.assert_clear_error(result, 2, repr(self.model), *needles)
        self.assertEqual(results[-1]['code'], 0, results[-1]['err'])

    def test_a_file_with_no_training_state(self):
        """Saved before --resume existed, or with --int8: --load takes it, --resume says why not."""
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
        self.assert_clear_error(resume, 2, f'{old!r} holds no training state', '--load')

    def test_load_starts_a_new_schedule(self):
        self.main(f'--input_file={self.file}', *TINY, '--num_steps=6', f'--save={self.model}',
                  '--eval_docs=0', '--num_samples=0')
        self.assertTrue(any(json.loads(slurp(self.model))['training']['m']))
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
        for (step, lr, _), expected in zip(record, (0.02, 0.02 * 2 / 3, 0.02 / 3)):
            self.assertAlmostEqual(lr, expected, places=15)
        self.assertFalse(record[0][2], "Adam's m and v start from zero")


# ================================= files: hostile model files =================================

DROP = object()  # in HostileModelFiles.cases(): leave this key out


class HostileModelFiles(CommandLineCase):
    """A model file is untrusted input: every broken or hostile one is refused with one line
    that names it, exit 2, before anything is built from it, and a setup that refuses it
    changes no setting and no model."""
    maxDiff = None  # the whole list of cases that changed something

    @classmethod
    def setUpClass(cls):
        words = class_folder(cls)
        model = os.path.join(cls.class_dir, 'model.json')
        reset()
        quiet(m.main, [f'--input_file={words}', '--num_steps=5', f'--save={model}',
                       '--eval_docs=0', '--num_samples=0', *TINY])
        reset()
        cls.good_text = slurp(model, 'r')

    def cases(self):
        """{name: (flag, file content: text, bytes, or None for no file)}, and the names of those
        whose run settings are impossible."""
        g = json.loads(self.good_text)
        sd, t = g['state_dict'], g['training']
        n = sum(len(mat) * len(mat[0]) for mat in sd.values())
        self.assertEqual(len(t['m']), n)

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
            'a billion positions': model(config=dict(g['config'], block_size=10 ** 9)),
            'config as text': model(config=dict(g['config'], n_embd='8')),
            'config as bool': model(config=dict(g['config'], n_layer=True)),
            'config with a key more': model(config=dict(g['config'], n_kv_head=1)),
            'impossible config': model(config=dict(g['config'], n_head=3)),
            'no layers': model(config=dict(g['config'], n_layer=0)),
            'chars as numbers': model(chars=list(range(len(g['chars'])))),
            'a repeated char': model(chars=g['chars'][:-1] + g['chars'][:1]),
            'a two-char string': model(chars=['ab'] + g['chars'][1:]),
            'merges: a pair with a later token id': model(merges=[[0, len(g['chars'])]]),
            'int8 with rows of floats': model(int8=True),
            'one matrix short': model(state_dict=dict(sd, wte=sd['wte'][:-1])),
            'short rows': model(state_dict=dict(sd, lm_head=[r[:-1] for r in sd['lm_head']])),
            'a matrix missing': model(state_dict={k: v for k, v in sd.items() if k != 'wpe'}),
            'a matrix more': model(state_dict=dict(sd, extra=sd['wpe'])),
            'text weights': model(state_dict=dict(sd, wpe=[['x'] * 8] * 8)),
            'NaN weight': model(state_dict=last_wpe_row(math.nan)),
            'Infinity weight': model(state_dict=last_wpe_row(math.inf)),
            'whole-number weight': model(state_dict=last_wpe_row(1)),
            '400-digit weight': model(state_dict=last_wpe_row(0.5)).replace(
                '[0.5,', '[' + '9' * 400 + ',', 1),
            'finite weights, inf logits': model(state_dict=dict(sd, lm_head=huge)),
            'steps as text': model(steps='5'), 'steps a decimal': model(steps=5.0),
            'steps negative': model(steps=-1),
        }
        resume = {  # what --resume needs, with --resume
            'no training': ('--resume', json.dumps({k: v for k, v in g.items()
                                                    if k != 'training'})),
            'training a list': ('--resume', model(training=[t])),
            'training text': ('--resume', model(training='step 5')),
            'step missing': training(step=DROP), 'step as text': training(step='5'),
            'step a decimal': training(step=5.0), 'step a bool': training(step=True),
            'step negative': training(step=-1), 'step beyond num_steps': training(step=6),
            'losses a number': training(losses=2.5), 'losses holding NaN': training(
                losses=[math.nan]), 'losses 101': training(losses=[2.5] * 101),
            'step beyond the steps in all': ('--resume', model(steps=4)),
            'm missing': training(m=DROP), 'v missing': training(v=DROP),
            'm a number': training(m=5), 'v a text': training(v='AAAA'),
            'm a dict': training(m={'0': 0.0}),
            'm one short': training(m=[0.0] * (n - 1)),
            'v one long': training(v=[0.0] * (n + 1)),
            'm holding a text': training(m=[0.0] * (n - 1) + ['0.0']),
            'm holding a whole number': training(m=[0] + [0.0] * (n - 1)),
            'm holding a list': training(m=[[0.0]] + [0.0] * (n - 1)),
            'm holding NaN': training(m=[0.0] * (n - 1) + [math.nan]),
            'v holding inf': training(v=[math.inf] + [0.0] * (n - 1)),
            'v negative': training(v=[1e-3] * (n - 1) + [-1e-3]),
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
            'input_file missing': training(input_file=DROP),
            'input_file a number': training(input_file=5),
            'input_file a list': training(input_file=[t['input_file']]),
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

    def argv(self, flag, path):
        return [f'--input_file={self.file}', f'{flag}={path}', '--eval_docs=0',
                '--num_samples=1'] + (['--num_steps=0'] if flag == '--load' else [])

    def test_the_good_file_resumes(self):
        """The control: unchanged, the file loads and resumes; the cases below each break it."""
        good = self.write('good.json', self.good_text)
        f = f'--input_file={self.file}'
        quick = ['--eval_docs=0', '--num_samples=1']
        loaded, resumed, remembered = self.cli(
            [f, f'--load={good}', '--num_steps=0', *quick], [f, f'--resume={good}', *quick],
            [f'--resume={good}', *quick])  # the input file it remembers
        self.assertEqual(loaded['code'], 0, loaded['err'])
        self.assertEqual(resumed['code'], 0, resumed['err'])
        self.assertIn(f'resuming {good} at step 5 of 5', resumed['out'])
        self.assertEqual(remembered['code'], 0, remembered['err'])
        self.assertIn(f'resuming {good} at step 5 of 5', remembered['out'])

    def check_one_line_each(self, paths):
        results = self.cli(*(self.argv(flag, path) for flag, path in paths.values()))
        for (name, (_, path)), result in zip(paths.items(), results):
            with self.subTest(name):
                line = self.assert_clear_error(result, 2, repr(path))
                if name.endswith(' weight'):
                    self.assertIn('wpe holds something other than finite decimal numbers', line)
                if name == 'finite weights, inf logits':
                    self.assertIn('nan or inf', line)
                if name.startswith(('m ', 'v ')):
                    self.assertIn(f"Adam's {name[0]}", line)
                if name.startswith('merges'):
                    self.assertIn('pairs of earlier token ids', line)
                if name.startswith('input_file'):
                    self.assertIn('input_file', line)

    def test_each_is_one_line_and_exit_2(self):
        self.check_one_line_each(self.write_cases(impossible=False))

    def test_an_impossible_run_setting_in_the_file_is_blamed_on_the_file(self):
        """batch_size=0 in a file's training settings: the message must name the file.

        No flag said batch_size=0, so a message that names no file blames the user."""
        self.check_one_line_each(self.write_cases(impossible=True))

    def test_a_refused_file_changes_no_setting_and_builds_nothing(self):
        """In a process, main() refuses each file in setup(), which leaves every setting, the
        tokenizer, the merges and the model as they were."""
        changed_by = {}  # case: what it changed; one list of them all, one root cause
        for name, (flag, path) in self.write_cases().items():
            reset()  # a model of another shape, so that any change shows
            m.configure(['--n_embd=12', '--n_head=3', '--block_size=6', '--num_steps=7'])
            m.use_vocab('xyz')
            m.use_merges([(0, 1)])
            m.use_weights()
            before = snapshot()
            with self.subTest(name), self.assertRaises(m.MicrogptError) as cm:
                quiet(m.main, self.argv(flag, path))
            self.assertEqual(cm.exception.code, 2, name)
            self.assertNotIn('\n', str(cm.exception))
            if changes(before):
                changed_by[name] = ' '.join(changes(before))
        self.assertEqual(changed_by, {}, 'changed by a refused file')

    def test_a_billion_layers_is_refused_at_once(self):
        g = json.loads(self.good_text)
        path = self.write('deep.json', json.dumps(dict(g, config=dict(g['config'],
                                                                      n_layer=10 ** 9))))
        try:
            rc, out, err = run(f'--input_file={self.file}', f'--load={path}', '--num_steps=0',
                               cwd=self.d, timeout=60)
        except Exception as e:  # subprocess.TimeoutExpired: the child is killed
            self.fail(f'no answer in 60 s: {type(e).__name__}')
        self.assert_script_error(rc, out, err, 2, repr(path))

    def test_a_nearly_zero_temperature_does_not_overflow(self):
        good = self.write('good.json', self.good_text)
        result, = self.cli([f'--input_file={self.file}', f'--load={good}', '--num_steps=0',
                            '--eval_docs=0', '--temperature=1e-310', '--num_samples=5'])
        self.assertEqual(result['code'], 0, result['err'])  # scaled after subtracting the max
        self.assertEqual(len(re.findall(r'(?m)^sample', result['out'])), 5)


if __name__ == '__main__':
    unittest.main()
