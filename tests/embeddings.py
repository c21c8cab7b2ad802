"""What the default model learned, and why it invents, measured (issue 30). The figures of
README.md's "What the model learned" and tests/README.md come from:

    python tests/embeddings.py [--seeds=42,1,2]   # about 20 s of CPU a seed

For each seed, the model before training (`--num_steps=0`: the very weights the run starts from)
and after the default run, both through `--embeddings`:
- vowels: the mean cosine of the wte rows of two different vowels (a e i o u; 10 pairs) against
  that of a vowel and a consonant (the other 21 letters; 105 pairs).
- p(text) from explain(): the model's probability of a whole name, end included, for a held-out
  name, a training name and the first sample of the run that is in neither split (invented).
It also checks the claim that `random.seed(seed); init_weights()` re-creates the initial weights:
it does not, since split_docs() shuffles first; after the same shuffle it does.
Standard library only; runs main() in this process, its output captured.
"""
import contextlib, io, math, os, random, re, sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
import microgpt as m  # noqa: E402

VOWELS = 'aeiou'
HELD_OUT, TRAINED = 'harper', 'emma'  # the first held-out name; the README's explain example


def vowel_cosines(cosines):
    """(mean cosine vowel-vowel, mean cosine vowel-consonant) of a cosine matrix over chars."""
    ids = {c: i for i, c in enumerate(m.chars)}
    vowels = [ids[c] for c in VOWELS]
    consonants = [ids[c] for c in m.chars if c.isalpha() and c not in VOWELS]
    same = [cosines[i][j] for i in vowels for j in vowels if i < j]
    mixed = [cosines[i][j] for i in vowels for j in consonants]
    return sum(same) / len(same), sum(mixed) / len(mixed)


def run(*argv):
    m.reset_settings()
    with contextlib.redirect_stdout(io.StringIO()):
        return m.main(['--eval_docs=0', '--embeddings', *argv])


def p_text(text):
    """explain()'s printed p(text), and exp(-sum of its losses) computed here."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        rows = m.explain(text)
    printed = float(re.search(r'p\(text\) = exp\(-[\d.]+\) = (\S+)', out.getvalue())[1])
    return printed, math.exp(-sum(row['loss'] for row in rows))


def main(argv):
    seeds = [42]
    for arg in argv:
        if arg.startswith('--seeds='):
            seeds = [int(s) for s in arg.split('=', 1)[1].split(',')]
        else:
            sys.exit(f'usage: python tests/embeddings.py [--seeds=42,1,2]; not {arg!r}')
    text = m.read_text(os.path.join(ROOT, 'input.txt'))
    os.chdir(ROOT)
    for seed in seeds:
        before = run(f'--seed={seed}', '--num_steps=0', '--num_samples=0')
        start = m.float_weights()
        random.seed(seed)
        bare = m.init_weights()  # nothing else drawn first
        random.seed(seed)
        train_docs, val_docs = m.split_docs(text)
        shuffled = m.init_weights()  # after split_docs() drew its shuffle, as setup() does
        print(f'seed {seed}: random.seed(seed); init_weights() gives the initial weights: '
              f'{bare == start}; after split_docs() first: {shuffled == start}')
        t0 = m.time.process_time()
        after = run(f'--seed={seed}')
        cpu = m.time.process_time() - t0
        for name, result in (('untrained', before), ('trained', after)):
            same, mixed = vowel_cosines(result['embeddings']['cosines'])
            print(f'  {name:9}: mean cosine vowel-vowel {same:+.3f}, vowel-consonant '
                  f'{mixed:+.3f}, difference {same - mixed:+.3f}')
        invented = next(s for s in after['samples'] if s not in train_docs + val_docs)
        assert HELD_OUT in val_docs and TRAINED in train_docs
        for kind, name in (('held-out', HELD_OUT), ('training', TRAINED), ('invented', invented)):
            printed, computed = p_text(name)
            print(f'  p({name!r}) = {printed:.3g} ({kind}; exp(-sum of losses) {computed:.3g})')
        print(f'  the trained run took {cpu:.1f} s of CPU; val loss {m.evaluate(val_docs):.4f} '
              f'on all {len(val_docs)} held-out names')


if __name__ == '__main__':
    main(sys.argv[1:])
