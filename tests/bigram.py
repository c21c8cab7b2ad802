"""Reference points for the held-out loss in the README: a uniform guess and a character bigram
model.

    python tests/bigram.py [--input_file=input.txt] [--paragraphs] [--seed=42]

It uses microgpt's own read_text and split_docs, so the held-out documents are exactly the ones
microgpt reports 'val loss' on, and counts the same predictions: every next character and the
closing BOS, of every document however long. The bigram model is
P(next | previous) = (count + 1) / (row total + vocab_size), counted
on the training documents only (add-one smoothing, so an unseen pair is not log(0)).
"""
import math, os, random, sys
from collections import Counter

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import microgpt as m  # noqa: E402

if {'-h', '--help'} & set(sys.argv[1:]):
    sys.exit(__doc__)
try:
    m.configure(sys.argv[1:])  # microgpt's own flags: --input_file, --paragraphs, --seed, ...
except m.MicrogptError as e:
    sys.exit(f'bigram.py: {e}')
random.seed(m.seed)
train_docs, val_docs = m.split_docs(m.read_text(m.input_file))
m.use_vocab(sorted(set(''.join(train_docs + val_docs))))


def pairs(docs):
    for doc in docs:
        tokens = m.encode(doc)
        for t in range(len(tokens) - 1):
            yield tokens[t], tokens[t + 1]


counts = Counter(pairs(train_docs))
totals = Counter()
for (a, _), c in counts.items(): totals[a] += c


losses = [-math.log((counts[a, b] + 1) / (totals[a] + m.vocab_size)) for a, b in pairs(val_docs)]
print(f'{len(train_docs)} train docs, {len(val_docs)} held out, vocab {m.vocab_size}')
print(f'uniform guess: val loss ln({m.vocab_size}) = {math.log(m.vocab_size):.4f}')
loss = sum(losses) / len(losses)  # a token a character: bits/char is loss / ln 2
print(f'character bigram, add-one smoothing: val loss {loss:.4f} ({loss / math.log(2):.3f} '
      f'bits/char)')
