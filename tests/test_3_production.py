"""Tests of Part 3 of microgpt.py, "what production changes": subword tokens (byte-pair merges)
and 8-bit weights. Neither is exact, so each is checked against something that shares no code
with it: a reference byte-pair learner and encoder written here, closed forms (bits per character,
the 8-bit rounding bound), the independent forward pass in helpers, and the float model.

    python -m unittest tests.test_3_production -v

The classes follow Part 3's sections: subword tokens (round trip, encode, learn_merges, the
training documents only, the vocabulary, bits per character, files, explain and the prompt), then
8-bit weights (quantize, files, resume, hostile files). A refused file is one line on stderr,
exit 2, and builds nothing: the model and every setting stay as they were.
"""
import base64, itertools, json, math, os, random, re, signal, struct, subprocess, sys
import unittest, zlib
from unittest import mock

from tests.helpers import (EXACT_TOL, ROOT, SAME_TOL, TINY, WORDS, Case, InTempDir, class_folder,
                           command_line, m, quiet, reference_losses, report, reset, slurp,
                           tiny_model)

INT8_TOL = 0.05  # nats: the held-out loss of 8-bit weights against the float model's. Each weight
# moves by at most scale / 2 = max|row| / 254, under 0.4% of its row's largest, so a tiny
# model's logits (a few units at most) move by ~0.01; a trained tiny model is >0.3 nats better
# than an untrained one, so this still tells a quantized model from a broken one.
ULPS = 2  # a row's largest |weight| comes back as (max / 127) * 127: within 2 ulps of itself


def made_up_words(n, seed=0):
    """n words of common syllables: pairs repeat, as in names, so there is much to merge."""
    rng = random.Random(seed)
    parts = ['an', 'el', 'ia', 'mar', 'is', 'on', 'ra', 'li', 'sa', 'be', 'th', 'o', 'e', 'y',
             'qu', 'z']
    return [''.join(rng.choice(parts) for _ in range(rng.randint(1, 4))) for _ in range(n)]


# ---- an independent byte-pair encoding, sharing no code with microgpt -------------------------
def ref_merge(ids, pair, new):
    """Each non-overlapping occurrence of pair, scanning left to right, becomes new."""
    out, i = [], 0
    while i < len(ids):
        if i + 1 < len(ids) and ids[i] == pair[0] and ids[i + 1] == pair[1]:
            out.append(new)
            i += 2
        else:
            out.append(ids[i])
            i += 1
    return out


def ref_learn(docs, letters, n):
    """Up to n pairs: count adjacent pairs over the docs in order, take the most frequent (a
    tie: the one counted first), merge it everywhere, repeat."""
    seqs = [[letters.index(c) for c in doc] for doc in docs]
    pairs = []
    for new in range(len(letters), len(letters) + n):
        counts = {}  # insertion-ordered: the first one counted comes first
        for s in seqs:
            for i in range(len(s) - 1):
                counts[s[i], s[i + 1]] = counts.get((s[i], s[i + 1]), 0) + 1
        if not counts:
            break
        best = None
        for pair, count in counts.items():
            if best is None or count > counts[best]:
                best = pair
        pairs.append(best)
        seqs = [ref_merge(s, best, new) for s in seqs]
    return pairs


def ref_encode(text, letters, pairs):
    """The characters' ids, then each pair merged in the order learned (without BOS)."""
    ids = [letters.index(c) for c in text]
    for rank, pair in enumerate(pairs):
        ids = ref_merge(ids, pair, len(letters) + rank)
    return ids


def bpe_model(docs, n, *argv, seed=0):
    """A tiny model whose tokens are docs' characters and n merges learned from docs."""
    tiny_model(*argv, vocab=''.join(docs), seed=seed)
    m.use_merges(m.learn_merges(docs, n))
    m.use_weights()
    return sorted(set(''.join(docs)))


def random_texts(letters, n=300, seed=1):
    rng = random.Random(seed)
    return [''.join(rng.choice(letters) for _ in range(rng.randint(0, 40))) for _ in range(n)]


class FileCase(InTempDir):
    """InTempDir, plus main() and command lines in this process, and the check that a refused
    command line is one line, exit 2, and built nothing."""

    def main(self, *argv):
        return quiet(m.main, list(argv))[0]

    def assert_refused(self, argv, *needles):
        """command_line(argv) from a model of another shape: exit 2, one line on stderr holding
        every needle, nothing on stdout, and the model and every setting as they were."""
        reset()
        m.configure(['--n_embd=12', '--n_head=3', '--block_size=6', '--num_steps=7'])
        m.use_vocab('xyz')
        m.use_merges([(0, 1)])
        m.use_weights()
        before = (m.settings(), list(m.chars), dict(m.merges), m.state_dict, m.params,
                  m.float_weights())
        code, out, err = command_line(*argv)
        self.assertEqual(code, 2, err)
        lines = err.splitlines()
        self.assertEqual(len(lines), 1, err)
        self.assertTrue(lines[0].startswith('microgpt: '), lines[0])
        self.assertNotIn('Traceback', err)
        for needle in needles:
            self.assertIn(needle, lines[0])
        self.assertEqual(out, '', 'work was done before the error')
        after = (m.settings(), list(m.chars), dict(m.merges), m.state_dict, m.params,
                 m.float_weights())
        for what, b, a in zip(('settings', 'chars', 'merges', 'state_dict', 'params',
                               'weights'), before, after):
            if what in ('state_dict', 'params'):
                self.assertIs(a, b, f'{what} rebuilt by a refused file')
            else:
                self.assertEqual(a, b, f'{what} changed by a refused file')
        return lines[0]


class ModelFileCase(FileCase):
    """A class-wide folder with a file of names and a model trained on it and saved."""
    argv = ()  # the training run's own flags

    @classmethod
    def setUpClass(cls):
        cls.words = class_folder(cls, cls.corpus())
        cls.good = os.path.join(cls.class_dir, 'good.json')
        reset()
        cls.trained = quiet(m.main, [f'--input_file={cls.words}', *TINY,
                                     f'--save={cls.good}', *cls.argv])[0]
        cls.trained_state = (dict(m.merges), list(m.chars), m.vocab_size, m.float_weights())
        cls.blob = json.loads(slurp(cls.good))
        reset()

    @classmethod
    def corpus(cls):
        return WORDS * 3

    def hostile(self, name, **changes):
        """A copy of the good file with these top-level keys changed; its path."""
        return self.write(name, json.dumps(dict(self.blob, **changes)))


# =============================== subword tokens (byte-pair merges) ============================

class RoundTrip(Case):
    """decode(encode(t)) == t for any text of the vocabulary's characters, merges or none."""

    def test_decode_inverts_encode(self):
        corpus = made_up_words(300)
        for n in (0, 5, 50):
            with self.subTest(bpe_merges=n):
                letters = bpe_model(corpus, n)
                self.assertEqual(len(m.merges), n)
                texts = random_texts(letters) + corpus[:100] + ['']
                tokens = 0
                for text in texts:
                    ids = m.encode(text)
                    self.assertEqual(m.decode(ids), text)
                    self.assertEqual((ids[0], ids[-1]), (m.BOS, m.BOS))
                    self.assertNotIn(m.BOS, ids[1:-1])
                    tokens += len(ids) - 2
                chars = sum(map(len, texts))
                print(f'  {n} merges: {tokens} tokens for {chars} characters')
                if n:  # the round trip went through merged tokens
                    self.assertLess(tokens, chars)
                else:
                    self.assertEqual(tokens, chars)


class EncodeAgainstReference(Case):
    """encode() against ref_encode(): the merges applied in the order learned, each to every
    non-overlapping occurrence, left to right."""

    def test_by_hand(self):
        tiny_model(vocab='abc')
        m.use_merges([(1, 2), (0, 1)])  # 'bc' learned before 'ab'
        self.assertEqual(m.chars, ['a', 'b', 'c', 'bc', 'ab'])
        self.assertEqual(m.encode('abc'), [m.BOS, 0, 3, m.BOS])  # 'a' 'bc', not 'ab' 'c'
        self.assertEqual(m.encode('abab'), [m.BOS, 4, 4, m.BOS])
        m.use_merges([(0, 0), (3, 0)])  # 'aa', then 'aaa'
        self.assertEqual(m.encode('aaaaa'), [m.BOS, 3, 4, m.BOS])  # 'aa' 'aa' 'a', then 'aaa'
        self.assertEqual(m.encode('aaa'), [m.BOS, 4, m.BOS])  # 'aa' 'a', then 'aaa'
        self.assertEqual(m.encode(''), [m.BOS, m.BOS])

    def test_many_texts_against_the_reference(self):
        corpus = made_up_words(300)
        for n in (1, 5, 50):
            with self.subTest(bpe_merges=n):
                letters = bpe_model(corpus, n)
                pairs = list(m.merges)
                self.assertEqual(list(m.merges.values()),
                                 list(range(len(letters), len(letters) + n)))
                differ = [t for t in random_texts(letters) + corpus
                          if m.encode(t) != [m.BOS] + ref_encode(t, letters, pairs) + [m.BOS]]
                self.assertEqual(differ[:5], [])


class LearnMergesAgainstReference(Case):
    """learn_merges() against ref_learn(): the most frequent pair (a tie: the one counted
    first), merged, again and again."""

    def learned(self, docs, n):
        tiny_model(vocab=''.join(docs) or 'a')
        return [tuple(p) for p in m.learn_merges(docs, n)]

    def test_by_hand(self):
        # (a, a) 5 times; then (aa, aa) and (aa, a) once each: the first counted; then (aa, a)
        self.assertEqual(self.learned(['aaaa', 'aaa'], 10), [(0, 0), (1, 1), (1, 0)])
        self.assertEqual(self.learned(['ba', 'ab'], 10), [(1, 0), (0, 1)])  # a tie: (b, a) first
        self.assertEqual(self.learned(['ab', 'ba'], 10), [(0, 1), (1, 0)])
        self.assertEqual(self.learned(['a', 'b', 'ab'], 10), [(0, 1)])  # then nothing to merge
        self.assertEqual(self.learned(['abab'], 0), [])

    def test_against_the_reference(self):
        for docs in (made_up_words(300), made_up_words(50, seed=7), WORDS * 3,
                     ['aaaaaaa', 'aaab', 'ab' * 9, 'b']):
            letters = sorted(set(''.join(docs)))
            for n in (1, 5, 40):
                with self.subTest(docs=docs[:3], n=n):
                    self.assertEqual(self.learned(docs, n), ref_learn(docs, letters, n))

    def test_the_order_of_the_documents_breaks_ties(self):
        docs = made_up_words(40, seed=3)
        letters = sorted(set(''.join(docs)))
        flipped = docs[::-1]
        self.assertEqual(self.learned(flipped, 30), ref_learn(flipped, letters, 30))
        self.assertNotEqual(ref_learn(flipped, letters, 30), ref_learn(docs, letters, 30))


class TrainingDocumentsOnly(FileCase):
    """Merges are learned from the training documents: a pair found only in held-out ones is
    never merged, and the held-out documents still encode and round-trip."""

    def test_a_pair_only_in_held_out_docs_is_not_merged(self):
        held = []  # lines full of 'qx' that split_docs holds out: crc32 % 10 == 0
        for word in itertools.cycle(made_up_words(100)):
            line = 'qx' * 6 + word
            if zlib.crc32(line.encode()) % 10 == 0 and line not in held:
                held.append(line)
            if len(held) == 4:
                break
        path = self.write('secret.txt', '\n'.join(WORDS * 3 + held))
        n = 30
        run = m.setup([f'--input_file={path}', f'--bpe_merges={n}', *TINY])
        for line in held:
            self.assertIn(line, run['val_docs'])
            self.assertNotIn(line, run['train_docs'])
        self.assertEqual(len(m.merges), n)
        letters = [c for c in m.chars if len(c) == 1]
        self.assertIn('q', letters)  # the vocabulary has every character of the file
        merged = [m.chars[t] for t in m.merges.values()]
        self.assertEqual([t for t in merged if 'q' in t or 'x' in t], [])
        self.assertEqual(list(m.merges), ref_learn(run['train_docs'], letters, n))
        for doc in run['val_docs']:
            ids = m.encode(doc)
            self.assertEqual(m.decode(ids), doc)
            self.assertEqual(ids[1:-1], ref_encode(doc, letters, list(m.merges)))
        # the control: learned from every document, 'qx' would be among the merges
        everything = ref_learn(run['train_docs'] + run['val_docs'], letters, n)
        self.assertIn((letters.index('q'), letters.index('x')), everything)


class Vocabulary(FileCase):
    """The characters, then a token per merge whose text is its two halves', then BOS."""

    def test_characters_then_merges_then_bos(self):
        text = '\n'.join(made_up_words(200))
        path = self.write('words.txt', text)
        n = 25
        m.setup([f'--input_file={path}', f'--bpe_merges={n}', *TINY])
        letters = sorted(set(text) - {'\n'})
        self.assertEqual(m.chars[:len(letters)], letters)
        self.assertEqual(len(m.merges), n)
        self.assertEqual(m.vocab_size, len(letters) + n + 1)
        self.assertEqual(m.BOS, m.vocab_size - 1)
        self.assertEqual(len(m.chars), m.vocab_size - 1)
        self.assertEqual(len(m.state_dict['wte']), m.vocab_size)
        self.assertEqual(len(m.state_dict['lm_head']), m.vocab_size)
        for (a, b), t in m.merges.items():
            self.assertEqual(m.chars[t], m.chars[a] + m.chars[b])
            self.assertLess(max(a, b), t)  # made of earlier tokens
            self.assertNotIn(m.BOS, (a, b))
        self.assertEqual(list(m.merges.values()), list(range(len(letters), m.BOS)))

    def test_zero_merges_is_the_character_model(self):
        m.setup([f'--input_file={self.file}', *TINY])
        self.assertEqual(m.merges, {})
        self.assertEqual(m.chars, sorted(set(''.join(WORDS))))
        self.assertEqual(m.vocab_size, len(m.chars) + 1)


class BitsPerChar(FileCase):
    """bits_per_char(loss, docs) = loss * predicted tokens / their characters / ln 2, the end of
    a document counting as one character, over every prediction, however long the document."""
    DOCS = WORDS + ['elizabethscarlett', 'abigailharperevelynmia', 'a', 'ab']  # some > block_size

    def test_characters_closed_form(self):
        tiny_model(vocab=''.join(self.DOCS), seed=2)
        loss = m.evaluate(self.DOCS)
        tokens = sum(len(d) + 1 for d in self.DOCS)  # predictions: every one, once
        chars = sum(map(len, self.DOCS)) + len(self.DOCS)  # and the end of each
        self.assertEqual(tokens, chars)  # characters: a token each, and the end counts one
        want = loss / math.log(2)  # so bits = loss * tokens / chars / ln 2 = loss / ln 2
        got = m.bits_per_char(loss, self.DOCS)
        report('bits/char, character tokens, against loss / ln 2', abs(got - want) / want,
               EXACT_TOL)
        self.assertLessEqual(abs(got - want), EXACT_TOL * want)

    def test_merges_by_hand(self):
        """The total nats of the reference forward pass over the characters its tokens cover."""
        bpe_model(self.DOCS, 15, seed=2)
        sd = m.float_weights()
        nats = chars = 0.0
        longest = 0
        for doc in self.DOCS:
            tokens = m.encode(doc)
            nats += math.fsum(reference_losses(sd, tokens))
            read = tokens[1:]
            chars += len(m.decode(read)) + read.count(m.BOS)
            longest = max(longest, max(len(m.chars[t]) for t in read if t != m.BOS))
        self.assertGreater(longest, 2)  # merged tokens stand for several characters
        want = nats / chars / math.log(2)
        got = m.bits_per_char(m.evaluate(self.DOCS), self.DOCS)
        report('bits/char with 15 merges, against a count by hand', abs(got - want) / want,
               SAME_TOL)
        self.assertLessEqual(abs(got - want), SAME_TOL * want)

    def test_main_reports_bits_per_char_of_the_held_out_docs(self):
        for n in (0, 10):
            with self.subTest(bpe_merges=n):
                reset()
                r = self.main(f'--input_file={self.file}', *TINY, f'--bpe_merges={n}',
                              '--num_steps=3', '--num_samples=0')
                random.seed(0)
                _, val_docs = m.split_docs(slurp(self.file, 'r'))
                self.assertEqual(m.evaluate(val_docs), r['val_loss'])
                if n == 0:  # characters: bits = nats / ln 2
                    want = r['val_loss'] / math.log(2)
                else:
                    sd = m.float_weights()
                    tokens = [m.encode(d) for d in val_docs]
                    nats = math.fsum(x for t in tokens for x in reference_losses(sd, t))
                    covered = sum(len(m.decode(t[1:])) + t[1:].count(m.BOS) for t in tokens)
                    want = nats / covered / math.log(2)
                diff = abs(r['val_bits_per_char'] - want) / want
                report(f'main() val bits/char, {n} merges', diff, SAME_TOL)
                self.assertLessEqual(diff, SAME_TOL)


class FilesWithMerges(ModelFileCase):
    """A model with merges saved by --save: --load brings back its merges, vocabulary and
    weights bit for bit; --resume goes on exactly; --bpe_merges may not contradict it."""
    argv = ('--bpe_merges=20', '--num_steps=10', '--eval_docs=10', '--num_samples=5')

    def test_the_file_holds_the_characters_and_the_merges(self):
        merges, chars, _, _ = self.trained_state
        self.assertEqual(len(merges), 20)
        self.assertEqual(self.blob['chars'], sorted(set(''.join(WORDS))))
        self.assertEqual(self.blob['merges'], [list(p) for p in merges])

    def test_load_is_bit_identical(self):
        tiny_model(vocab='xyz', seed=9)  # another model, replaced by the load
        r = self.main(f'--input_file={self.words}', f'--load={self.good}', '--num_steps=0',
                      '--eval_docs=10', '--num_samples=5')
        merges, chars, vocab_size, weights = self.trained_state
        self.assertEqual(list(m.merges.items()), list(merges.items()))
        self.assertEqual(m.chars, chars)
        self.assertEqual(m.vocab_size, vocab_size)
        self.assertEqual(m.bpe_merges, 20)
        self.assertEqual(m.float_weights(), weights)  # every weight, bit for bit
        self.assertEqual(r['samples'], self.trained['samples'])
        self.assertEqual(r['val_loss'], self.trained['val_loss'])
        self.assertEqual(r['val_bits_per_char'], self.trained['val_bits_per_char'])

    def test_resume_is_exact(self):
        """20 steps in one run against 10, stopped by Ctrl-C, then --resume for the other 10."""
        whole, halves = (os.path.join(self.d, f) for f in ('whole.json', 'halves.json'))
        run = [f'--input_file={self.words}', *TINY, '--bpe_merges=20', '--num_steps=20',
               '--eval_docs=5', '--num_samples=3']
        a = self.main(*run, f'--save={whole}')
        reset()
        real = m.adam_step

        def stop_after_step_10(step, mm, vv, lr):
            if step == 9:
                os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C: training stops after this step
            real(step, mm, vv, lr)

        with mock.patch.object(m, 'adam_step', stop_after_step_10):
            self.main(*run, f'--save={halves}')
        self.assertEqual(json.loads(slurp(halves))['training']['step'], 10)
        reset()
        b = self.main(f'--resume={halves}', '--eval_docs=5', '--num_samples=3')
        A, B = json.loads(slurp(whole)), json.loads(slurp(halves))
        self.assertEqual(B['training']['step'], 20)
        self.assertEqual(A['merges'], B['merges'])
        diff = max(abs(x - y) for k in A['state_dict'] for ra, rb in
                   zip(A['state_dict'][k], B['state_dict'][k]) for x, y in zip(ra, rb))
        report('weights, 20 steps against 10 + resume 10', diff, 0.0)
        self.assertEqual(diff, 0.0)
        self.assertEqual(A['state_dict'], B['state_dict'])
        self.assertEqual((A['training']['m'], A['training']['v']),
                         (B['training']['m'], B['training']['v']))
        self.assertEqual((a['val_loss'], a['samples']), (b['val_loss'], b['samples']))

    def test_a_contradicting_bpe_merges_flag_is_refused(self):
        f, load = f'--input_file={self.words}', f'--load={self.good}'
        self.assert_refused([f, load, '--bpe_merges=5'], '--bpe_merges=5 contradicts',
                            repr(self.good), 'bpe_merges=20')
        self.assert_refused([f, load, '--bpe_merges=0'], '--bpe_merges=0 contradicts')
        code, out, err = command_line(f, load, '--bpe_merges=20', '--num_steps=0',
                                      '--eval_docs=0', '--num_samples=1')
        self.assertEqual((code, err), (0, ''))  # agreeing with the file is fine


class HostileMerges(ModelFileCase):
    """Merges in a model file are untrusted: each must be a pair of ids of earlier tokens."""
    argv = ('--bpe_merges=20', '--num_steps=2', '--eval_docs=0', '--num_samples=0')

    def cases(self):
        pairs, c = self.blob['merges'], len(self.blob['chars'])
        k = 5  # the pair changed: its tokens may be characters or tokens 0..k-1 merged

        def one(pair):  # the good list, pair k replaced: as many tokens, the weights still fit
            return pairs[:k] + [pair] + pairs[k + 1:]

        a, b = pairs[k]
        return {
            'not a list': {str(i): p for i, p in enumerate(pairs)},
            'a text': 'ab' * 10,
            'a number': 20,
            'a pair of 3': one([a, b, 0]),
            'a pair of 1': one([a]),
            'a pair as text': one(f'{a},{b}'),
            'a negative id': one([-1, b]),
            'an id of itself': one([a, c + k]),
            'an id of a later token': one([c + k + 1, b]),
            'the id of BOS': one([c + len(pairs), b]),
            'a string id': one([str(a), b]),
            'a decimal id': one([float(a), b]),
            'a bool id': one([True, b]),
            'a null id': one([None, b]),
            'a huge id': one([10 ** 30, b]),
        }

    def test_the_good_file_loads(self):
        """The control: unchanged, with every pair rewritten as it was, it loads."""
        path = self.hostile('good.json', merges=[list(p) for p in self.blob['merges']])
        code, out, err = command_line(f'--input_file={self.words}', f'--load={path}',
                                      '--num_steps=0', '--eval_docs=0', '--num_samples=1')
        self.assertEqual((code, err), (0, ''))

    def test_each_is_one_line_and_exit_2(self):
        for i, (name, merges) in enumerate(self.cases().items()):
            path = self.hostile(f'bad{i}.json', merges=merges)
            with self.subTest(name):
                self.assert_refused([f'--input_file={self.words}', f'--load={path}',
                                     '--num_steps=0'], repr(path), 'merges')

    def test_a_repeated_pair_is_refused(self):
        """A pair given twice makes a token that encode() never uses, and save_model's
        chars[:-len(merges)] keeps one merged text among the characters."""
        pairs = self.blob['merges']
        path = self.hostile('twice.json', merges=pairs[:5] + [pairs[1]] + pairs[6:])
        self.assert_refused([f'--input_file={self.words}', f'--load={path}', '--num_steps=0'],
                            repr(path), 'merges')


class ExplainAndPromptWithMerges(ModelFileCase):
    """explain() reads the text token by token, as encode() cuts it; a prompt is encoded and
    every sample starts with it."""
    argv = ('--bpe_merges=20', '--num_steps=30', '--eval_docs=0', '--num_samples=0')

    def load(self):
        self.main(f'--input_file={self.words}', f'--load={self.good}', '--num_steps=0',
                  '--eval_docs=0', '--num_samples=0')

    def test_explain_shows_each_token(self):
        self.load()
        shown = m.chars + ['¶']
        for text in ('sophia', 'isabella', 'elizabeth'):
            with self.subTest(text):
                tokens = m.encode(text)[:m.block_size + 1]
                self.assertLess(len(tokens), len(text) + 2)  # merged tokens in it
                rows, out = quiet(m.explain, text)
                self.assertEqual(len(rows), len(tokens) - 1)
                read = re.findall(r'(?m)^ *(\d+) +(\S+) +(\S+) +[\d.]+ +[\d.]+ \|', out)
                self.assertEqual(read, [(str(i), shown[tokens[i]], shown[tokens[i + 1]])
                                        for i in range(len(tokens) - 1)])
                want = reference_losses(m.float_weights(), tokens)
                diff = max(abs(r['loss'] - w) for r, w in zip(rows, want))
                report(f'explain({text!r}) losses against the reference', diff, SAME_TOL)
                self.assertLessEqual(diff, SAME_TOL)

    def test_the_columns_line_up_with_tokens_wider_than_a_character(self):
        """Issue 28: with merged tokens, the columns went askew (a token was printed as wide as
        it is, and the header, the top 5 and each head's shades assumed one character). Every
        row's '|' under the header's, every row's top-5 percentages in the same columns, and
        each head's shade in the column of the token it weighs."""
        self.load()
        text = 'isabella'
        widths = {len(m.chars[t]) for t in m.encode(text)[1:-1]}
        self.assertGreater(max(widths), 1)  # tokens of more than one character
        _, out = quiet(m.explain, text)
        lines = out.splitlines()
        head = next(i for i, line in enumerate(lines) if line.startswith('pos read'))
        rows = [line for line in lines if re.match(r' *\d+ ', line)]
        self.assertEqual(len(rows), len(m.encode(text)) - 1)
        self.assertEqual({row.index('|') for row in rows}, {lines[head].index('|')})
        self.assertEqual(len({tuple(m.start() for m in re.finditer('%', row)) for row in rows}),
                         1)
        for i, line in enumerate(lines):
            if not line.lstrip().startswith('reads '):
                continue
            starts = [t.start() for t in re.finditer(r'\S+', line)][1:]  # after 'reads'
            for shades in lines[i + 1:i + 1 + m.n_layer * m.n_head]:
                self.assertRegex(shades, r'^ +layer \d+ head \d+ ')
                marks = [j for j, c in enumerate(shades) if c in '░▒▓█' and j > 21]
                self.assertLessEqual(set(marks), set(starts), f'{line}\n{shades}')
                self.assertLessEqual(len(shades.rstrip()), len(line.rstrip()) + max(widths))

    def test_samples_start_with_the_prompt(self):
        self.load()
        prompt = next(p for p in ('sophi', 'isabe', 'emil', 'ava', 'so')
                      if len(m.encode(p)) < len(p) + 2)  # one with a merged token
        fed = []
        real = m.gpt

        def spy(token_id, pos_id, *args, **kwargs):
            fed.append((pos_id, token_id))
            return real(token_id, pos_id, *args, **kwargs)

        m.prompt = prompt
        with mock.patch.object(m, 'gpt', spy):
            m.sample()
        prompt_ids = m.encode(prompt)[:-1]
        self.assertEqual(fed[:len(prompt_ids)], list(enumerate(prompt_ids)))
        r = self.main(f'--input_file={self.words}', f'--load={self.good}', '--num_steps=0',
                      '--eval_docs=0', '--num_samples=10', f'--prompt={prompt}')
        self.assertEqual(len(r['samples']), 10)
        self.assertEqual([s for s in r['samples'] if not s.startswith(prompt)], [])

    def cut_marks(self, draw, vocab='ab', pairs=()):
        """samples()'s one line, from a model certain of token draw(pos) at each position."""
        tiny_model('--num_samples=1', vocab=vocab)
        m.use_merges(list(pairs))
        m.use_weights()

        def gpt(token_id, pos_id, *args, **kwargs):
            return [100.0 if i == draw(pos_id) else 0.0 for i in range(m.vocab_size)]

        with mock.patch.object(m, 'gpt', gpt):
            return quiet(m.samples, ['x'], ['y'])[1].splitlines()[0]

    def test_the_cut_mark_control(self):
        """The control for the two below: block_size tokens and no end, or a short sample."""
        self.assertEqual(self.cut_marks(lambda pos: 0), 'sample  1: aaaaaaaa…')
        self.assertEqual(self.cut_marks(lambda pos: m.BOS if pos == 3 else 0), 'sample  1: aaa')
        self.assertEqual(self.cut_marks(lambda pos: 2, pairs=[(0, 1)]),
                         'sample  1: abababababababab…')

    def test_a_sample_that_drew_its_end_is_not_marked(self):
        """samples() marks len(encode(doc)) > block_size + 1: 7 characters and the end, drawn at
        the last position (block_size=8), encode to 9 tokens (with both BOS): not cut."""
        self.assertEqual(self.cut_marks(lambda pos: m.BOS if pos == 7 else 0),
                         'sample  1: aaaaaaa')

    def test_with_merges_the_cut_mark_is_approximate(self):
        """Drawn one character at a time, 'a' 'b' 'a' 'b' ... fill the context with no end; but
        encode() merges them into 'ab' tokens, half as many, so samples() sees no cut. The
        mark is a hint that the code documents as approximate with merges: this pins it."""
        self.assertEqual(self.cut_marks(lambda pos: pos % 2, pairs=[(0, 1)]),
                         'sample  1: abababab')


# ===================================== 8-bit weights ==========================================

def my_dequantize(rows):
    """8-bit rows back to floats, written here: base64, then signed bytes, times the scale."""
    out = []
    for scale, text in rows:
        raw = base64.b64decode(text)
        out.append([scale * q for q in struct.unpack(f'{len(raw)}b', raw)])
    return out


class QuantizeDequantize(Case):
    """One scale per row, max|row| / 127; each weight a signed byte, within scale / 2."""

    def matrix(self):
        rng = random.Random(4)
        rows = [[rng.gauss(0, s) for _ in range(n)]
                for n in (1, 2, 3, 7, 8, 32) for s in (1e-3, 0.08, 1.0, 1e3)]
        rows += [[0.0] * 8, [-2.5] + [0.1] * 7, [0.3] * 5, [-1e-300, 1e-301, 0.0],
                 [1e300, -1e300, 5e299], [127.0, -127.0, 0.5, -0.5, 1.5]]
        return rows

    def test_every_weight_within_half_a_scale(self):
        mat = self.matrix()
        rows = m.quantize(mat)
        self.assertEqual(len(rows), len(mat))
        back = m.dequantize(rows)
        self.assertEqual(back, my_dequantize(rows))
        worst = worst_ulps = 0.0
        for row, (scale, text), got in zip(mat, rows, back):
            top = max(map(abs, row))
            self.assertIs(type(scale), float)
            self.assertEqual(scale, top / 127 if top else scale)  # the closed form
            self.assertEqual(len(text), 4 * math.ceil(len(row) / 3))  # a byte per weight
            self.assertEqual(len(base64.b64decode(text, validate=True)), len(row))
            self.assertEqual(len(got), len(row))
            self.assertTrue(all(type(x) is float for x in got))
            if not top:  # a row of zeros survives
                self.assertEqual(got, row)
                continue
            for x, y in zip(row, got):
                worst = max(worst, abs(x - y) / (scale / 2))
            i = max(range(len(row)), key=lambda j: abs(row[j]))  # the largest comes back
            worst_ulps = max(worst_ulps, abs(got[i] - row[i]) / math.ulp(row[i]))
        report('8-bit weights, |error| / (scale / 2)', worst, 1.0 + 1e-9)
        self.assertLessEqual(worst, 1.0 + 1e-9)  # the quotient's own rounding
        self.assertGreater(worst, 0.9)  # rounding, not truncation or a finer grid
        report("each row's largest |weight|, in ulps", worst_ulps, ULPS)
        self.assertLessEqual(worst_ulps, ULPS)

    def test_the_bytes_are_the_rounded_quotients(self):
        row = [1.0, -1.0, 0.5, 0.25, -0.126, 0.004, 0.0039]
        (scale, text), = m.quantize([row])
        self.assertEqual(scale, 1 / 127)
        self.assertEqual(list(struct.unpack('7b', base64.b64decode(text))),
                         [127, -127, 64, 32, -16, 1, 0])  # 63.5 -> 64, 31.75 -> 32, 0.4953 -> 0

    def test_tiny_weights(self):
        """max|row| / 127 of a subnormal max loses its precision: max / scale can pass 127.5
        (--init_std=1e-321 --int8 --save=m.json ends in OverflowError's traceback)."""
        for top in (9.4e-322, 1e-320, 5e-324, 2.2e-308):
            with self.subTest(top=top):
                row = [top, -top, top / 3]
                (scale, text), = m.quantize([row])
                got, = m.dequantize([[scale, text]])
                self.assertLessEqual(max(abs(x - y) for x, y in zip(row, got)), scale / 2)


class Int8Files(ModelFileCase):
    """--int8 --save writes a byte per weight; --load reads it into the same float model, with a
    held-out loss close to the float one; such a file cannot be resumed."""
    argv = ('--num_steps=60', '--eval_docs=0', '--num_samples=0')

    @classmethod
    def corpus(cls):
        return made_up_words(300, seed=11)

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.q = os.path.join(cls.class_dir, 'int8.json')
        quiet(m.main, [f'--input_file={cls.words}', f'--load={cls.good}', '--num_steps=0',
                       '--int8', f'--save={cls.q}', '--eval_docs=0', '--num_samples=0'])
        reset()
        cls.qblob = json.loads(slurp(cls.q))

    def test_load_and_sample_through_the_same_code(self):
        quick = [f'--input_file={self.words}', '--num_steps=0', '--num_samples=5']
        sample = m.sample
        f = self.main(*quick, f'--load={self.good}')
        self.assertIs(m.sample, sample)
        float_weights = m.float_weights()
        q = self.main(*quick, f'--load={self.q}')
        self.assertIs(m.sample, sample)  # no other path for 8-bit weights
        weights = m.float_weights()
        self.assertTrue(all(type(x) is float for mat in weights.values() for row in mat
                            for x in row))
        want = {k: my_dequantize(rows) for k, rows in self.qblob['state_dict'].items()}
        self.assertEqual(weights, want)
        self.assertEqual(self.qblob['state_dict'],
                         {k: m.quantize(w) for k, w in float_weights.items()})
        random.seed(m.seed)
        self.assertEqual([m.sample() for _ in range(5)], q['samples'])
        # the loss is the dequantized weights' (the reference forward pass), close to the float's
        random.seed(0)
        _, val_docs = m.split_docs(slurp(self.words, 'r'))
        tokens = [m.encode(d) for d in val_docs]
        ref = math.fsum(x for t in tokens for x in reference_losses(want, t))
        ref /= sum(len(t) - 1 for t in tokens)
        self.assertLessEqual(abs(q['val_loss'] - ref), SAME_TOL * ref)
        diff = abs(q['val_loss'] - f['val_loss'])
        report(f'held-out loss, 8-bit {q["val_loss"]:.4f} against float {f["val_loss"]:.4f}',
               diff, INT8_TOL)
        self.assertLessEqual(diff, INT8_TOL)
        self.assertGreater(diff, 0.0)  # the weights did change
        tiny_model(vocab=''.join(self.corpus()))  # untrained: far worse than either
        self.assertGreater(m.evaluate(val_docs) - f['val_loss'], 2 * INT8_TOL)

    def test_the_run_that_saves_8_bits_reports_their_held_out_loss(self):
        """Issue 28: --int8 changed nothing in the run that saved it; its loss took a second run.
        The run goes on with the weights as saved: its held-out loss is that of the 8-bit file,
        loaded (bit for bit), not the float model's."""
        q = os.path.join(self.d, 'q.json')
        flags = [f'--input_file={self.words}', '--num_steps=0', '--num_samples=3']
        r, out = quiet(m.main, [*flags, f'--load={self.good}', '--int8', f'--save={q}'])
        self.assertIn(f'saved the model to {q} at step 0 of 0, 60 steps in all; the run goes on '
                      f'with its 8-bit weights\n', out)
        reset()  # --int8 stays set, as in a notebook
        loaded = self.main(*flags, f'--load={q}')
        floats = self.main(*flags, f'--load={self.good}')
        report(f'held-out loss in the saving run {r["val_loss"]:.6f}, of the file loaded '
               f'{loaded["val_loss"]:.6f}, of the float model {floats["val_loss"]:.6f}',
               abs(r['val_loss'] - loaded['val_loss']), 0.0)
        self.assertEqual((r['val_loss'], r['train_loss'], r['samples']),
                         (loaded['val_loss'], loaded['train_loss'], loaded['samples']))
        self.assertNotEqual(r['val_loss'], floats['val_loss'])

    def test_the_file_is_smaller(self):
        self.assertIs(self.qblob['int8'], True)
        self.assertNotIn('training', self.qblob)
        weights = [len(json.dumps(b['state_dict'])) for b in (self.blob, self.qblob)]
        files = [os.path.getsize(p) for p in (self.good, self.q)]
        print(f'  weights: {weights[0]} bytes as floats, {weights[1]} in 8 bits: '
              f'{weights[0] / weights[1]:.1f}x; files {files[0]} and {files[1]}: '
              f'{files[0] / files[1]:.1f}x')
        self.assertGreater(weights[0] / weights[1], 4)
        params = sum(len(r) for mat in self.blob['state_dict'].values() for r in mat)
        stored = sum(len(base64.b64decode(t)) for mat in self.qblob['state_dict'].values()
                     for _, t in mat)
        self.assertEqual(stored, params)  # a byte per weight

    def test_an_8_bit_model_saved_again_in_8_bits_is_the_same(self):
        again = os.path.join(self.d, 'again.json')
        self.main(f'--input_file={self.words}', f'--load={self.q}', '--num_steps=0', '--int8',
                  f'--save={again}', '--eval_docs=0', '--num_samples=0')
        rows = json.loads(slurp(again))['state_dict']
        for k, mat in self.qblob['state_dict'].items():
            self.assertEqual([t for _, t in rows[k]], [t for _, t in mat], k)
            for (s1, _), (s2, _) in zip(rows[k], mat):
                self.assertLessEqual(abs(s1 - s2), 2 * math.ulp(s2))

    def test_resume_of_an_8_bit_file_is_refused(self):
        line = self.assert_refused([f'--input_file={self.words}', f'--resume={self.q}'],
                                   repr(self.q), 'holds no training state', '--load')
        print(f'  {line}')

    def test_int8_never_drops_a_resumed_runs_training_state(self):
        """--int8 says how --save writes. Saving back over the run that --resume goes on with
        would drop its training state: refused at once, naming the file. Without --save it
        would do nothing: refused too (issue 28: it did nothing, silently)."""
        before = slurp(self.good)
        self.assert_refused([f'--input_file={self.words}', f'--resume={self.good}', '--int8'],
                            '--int8 saves the model in 8 bits, with no training state: give '
                            '--save=FILE, another file than', repr(self.good))
        self.assertEqual(slurp(self.good), before)
        self.assert_refused([f'--input_file={self.words}', '--int8', *TINY, '--num_steps=0'],
                            '--int8 saves the model in 8 bits, with no training state: give '
                            '--save=FILE')
        self.assertEqual(sorted(os.listdir(self.d)), ['words.txt'])  # nothing saved
        other = os.path.join(self.d, 'q.json')  # the control: resumed, then saved elsewhere
        code, out, err = command_line(f'--input_file={self.words}', f'--resume={self.good}',
                                      '--int8', f'--save={other}', '--num_samples=0')
        self.assertEqual((code, err), (0, ''))
        self.assertIn('it is finished; --load it to train more', out)
        self.assertTrue(json.loads(slurp(other))['int8'])
        self.assertNotIn('training', json.loads(slurp(other)))


class HostileInt8Files(ModelFileCase):
    """8-bit rows in a model file are untrusted: each must be [a finite scale, base64 of one
    byte per column]. A scale that is a text must not be repeated q times (memory)."""
    argv = ('--num_steps=2', '--eval_docs=0', '--num_samples=0', '--int8')

    def with_row(self, name, row, matrix='wpe'):
        """The good 8-bit file with the first row of matrix replaced; its path."""
        sd = self.blob['state_dict']
        return self.hostile(name, state_dict=dict(sd, **{matrix: [row] + sd[matrix][1:]}))

    def cases(self):
        sd = self.blob['state_dict']
        scale, text = sd['wpe'][0]
        cols = len(base64.b64decode(text))

        def b64(n, byte=b'\x7f'):
            return base64.b64encode(byte * n).decode()

        paths = {name: self.with_row(f'bad{i}.json', row) for i, (name, row) in enumerate({
            'a list scale': [[scale], text],
            'a null scale': [None, text],
            'an object scale': [{'scale': scale}, text],
            'a NaN scale': [math.nan, text],
            'an Infinity scale': [math.inf, text],
            'a -Infinity scale': [-math.inf, text],
            'a scale that overflows': [1e308, b64(cols)],
            'a scale of 400 digits': ['9' * 400, text],
            'text not base64': [scale, '!' * len(text)],
            'text not ASCII': [scale, 'é' * len(text)],
            'text with no padding': [scale, text.rstrip('=')],
            'text a number': [scale, 12345],
            'a row one short': [scale, b64(cols - 1)],
            'a row one long': [scale, b64(cols + 1)],
            'a row empty': [scale, ''],
            'a row of the scale only': [scale],
            'a row of 3': [scale, text, text],
            'a row as text': text,
            'a row as a number': scale,
            'a row of floats': [scale] * cols,
            'a row as null': None,
        }.items())}
        for i, (name, mat) in enumerate({
                'a matrix as text': text, 'a matrix as a number': 5, 'a matrix as null': None,
                'a matrix as an object': {'0': [scale, text]}}.items()):
            paths[name] = self.hostile(f'mat{i}.json', state_dict=dict(sd, wpe=mat))
        paths['float rows marked 8-bit'] = self.hostile(
            'floats.json', state_dict={k: my_dequantize(w) for k, w in sd.items()})
        return paths

    def test_the_good_file_loads(self):
        code, out, err = command_line(f'--input_file={self.words}', f'--load={self.good}',
                                      '--num_steps=0', '--eval_docs=0', '--num_samples=1')
        self.assertEqual((code, err), (0, ''))
        self.assertIs(self.blob['int8'], True)

    def test_each_is_one_line_and_exit_2(self):
        for name, path in self.cases().items():
            with self.subTest(name):
                self.assert_refused([f'--input_file={self.words}', f'--load={path}',
                                     '--num_steps=0'], repr(path))

    def test_a_megabyte_text_scale_fails_in_little_memory(self):
        """scale * q with a text scale would repeat it up to 127 times for every weight: in a
        process limited to 512 MB of address space it must still be refused as a bad file."""
        big = self.with_row('big.json', ['1' * 2 ** 20, base64.b64encode(
            b'\x7f' * len(base64.b64decode(self.blob['state_dict']['wpe'][0][1]))).decode()])
        code = ('import resource, sys\n'
                'resource.setrlimit(resource.RLIMIT_AS, (512 * 2 ** 20, 512 * 2 ** 20))\n'
                f'sys.path.insert(0, {ROOT!r})\n'
                'import microgpt\n'
                'microgpt.command_line(sys.argv[1:])\n')
        r = subprocess.run([sys.executable, '-c', code, f'--input_file={self.words}',
                            f'--load={big}', '--num_steps=0'], capture_output=True, text=True,
                           timeout=120, cwd=self.d)
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertEqual(r.stdout, '')
        self.assertRegex(r.stderr, rf'^microgpt: model file {re.escape(repr(big))} is not a '
                                   r'microgpt model[^\n]*\n$')

    def test_a_scale_must_be_a_number(self):
        """dequantize() calls float(scale): the text '0.01' passes, as does true (1.0), and a
        row {"0.01": 0, "<base64>": 0} unpacks into its two keys."""
        scale, text = self.blob['state_dict']['wpe'][0]
        for i, (name, row) in enumerate({
                'a text scale': [repr(scale), text],
                'a megabyte text scale of a small number': ['0.' + '0' * 2 ** 20 + '1', text],
                'a true scale': [True, text],
                'a row as an object': {repr(scale): 0, text: 0}}.items()):
            path = self.with_row(f'text{i}.json', row)
            with self.subTest(name):
                self.assert_refused([f'--input_file={self.words}', f'--load={path}',
                                     '--num_steps=0'], repr(path))


if __name__ == '__main__':
    unittest.main()
