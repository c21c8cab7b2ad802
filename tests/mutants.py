"""Do the tests bite? Break microgpt.py on purpose, one mistake at a time, and see which tests fail.

    python tests/mutants.py          # about 20 mutants, one test-suite run each (a few minutes)

Each mutant is a copy of the repository with one line of microgpt.py changed: a wrong local gradient,
a broken causal order, BOS handling, Adam's bias correction, and so on. A mutant that no test
catches is printed as SURVIVED and makes the script exit 1.
"""
import os, re, shutil, subprocess, sys, tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MUTANTS = [  # (what it breaks, text in microgpt.py, replacement)
    ('add: local gradient', 'return Value(self.data + other.data, (self, other), (1.0, 1.0))',
     'return Value(self.data + other.data, (self, other), (1.0, 0.5))'),
    ('mul: local gradients swapped', '(self, other), (other.data, self.data))', '(self, other), (self.data, other.data))'),
    ('pow: local gradient', '(k * self.data ** (k - 1),)', '(k * self.data ** k,)'),
    ('log: local gradient', '(1 / self.data,)', '(1 / self.data ** 2,)'),
    ('exp: local gradient', 'return Value(e, (self,), (e,))', 'return Value(e, (self,), (1.0,))'),
    ('relu: local gradient', '(float(self.data > 0),)', '(float(self.data >= 0) * 0.5 + 0.5,)'),
    ('backward: = instead of +=', 'child.grad += local_grad * g', 'child.grad = local_grad * g'),
    ('backward: topological order', 'for v in reversed(topo):', 'for v in topo:'),
    ('fused sum: local gradient', '(1.0,) * len(xs))', '(0.5,) * len(xs))'),
    ('fused dot: local gradients swapped', 'ws + xs, xd + wd)', 'ws + xs, wd + xd)'),
    ('fused softmax: local gradient', 'p * ((i == j) - q)', 'p * ((i == j) + q)'),
    ('fused cross-entropy: local gradient', 'p - (j == target)', 'p - 0.9 * (j == target)'),
    ('causality: the model sees the token it must predict',
     'cross_entropy(gpt(tokens[t], t, keys, values, sd), tokens[t + 1])',
     'cross_entropy(gpt(tokens[t + 1], t, keys, values, sd), tokens[t + 1])'),
    ('causality: positions run last to first, so each one attends to the future',
     'for t in range(n)]', 'for t in reversed(range(n))]'),
    ('BOS: no end-of-document token', 'return [BOS] + [stoi[c] for c in doc] + [BOS]', 'return [BOS] + [stoi[c] for c in doc]'),
    ('BOS: id collides with a character', 'BOS, vocab_size = len(chars), len(chars) + 1', 'BOS, vocab_size = 0, len(chars) + 1'),
    ('BOS: samples do not stop at BOS', 'if token == BOS: break', 'if token == BOS: pass'),
    ('Adam: no bias correction', 'c1, c2 = 1 - beta1 ** (step + 1), 1 - beta2 ** (step + 1)', 'c1, c2 = 1.0, 1.0'),
    ('Adam: bias correction off by one step', 'c1, c2 = 1 - beta1 ** (step + 1), 1 - beta2 ** (step + 1)',
     'c1, c2 = 1 - beta1 ** (step + 2), 1 - beta2 ** (step + 2)'),
    ('rmsnorm: sum instead of mean', 'scale = (dot(x, x) / len(x) + 1e-5) ** -0.5', 'scale = (dot(x, x) + 1e-5) ** -0.5'),
    ('attention: scale by sqrt(head size) the wrong way', '* hs ** -0.5 for kt', '* hs ** 0.5 for kt'),
    ('MLP: no residual', "x = [a + b for a, b in zip(linear(hidden, sd[f'layer{li}.mlp_fc2']), x)]",
     "x = linear(hidden, sd[f'layer{li}.mlp_fc2'])"),
    ('evaluation: mean per document, not per token',
     'losses = [loss for doc in docs for loss in doc_losses(encode(doc), weights)]',
     'losses = [sum(ls) / len(ls) for ls in (doc_losses(encode(doc), weights) for doc in docs)]'),
    ('loss: log-sum-exp without the max', 'return log(vsum([exp(l - m) for l in logits])) + m - logits[target]',
     'return log(vsum([exp(l) for l in logits])) - logits[target]'),
]


def main():
    source = open(os.path.join(ROOT, 'microgpt.py'), encoding='utf-8').read()
    survived = 0
    for what, old, new in MUTANTS:
        if source.count(old) != 1:
            print(f'!! {what}: the text to change is not in microgpt.py exactly once; update tests/mutants.py')
            survived += 1
            continue
        with tempfile.TemporaryDirectory() as d:
            shutil.copytree(os.path.join(ROOT, 'tests'), os.path.join(d, 'tests'))
            shutil.copy(os.path.join(ROOT, 'input.txt'), d)
            with open(os.path.join(d, 'microgpt.py'), 'w', encoding='utf-8') as f: f.write(source.replace(old, new))
            r = subprocess.run([sys.executable, '-m', 'unittest', 'discover', '-s', 'tests'], cwd=d,
                               capture_output=True, text=True, timeout=900)
        caught = sorted(set(re.findall(r'^(?:FAIL|ERROR): (\w+) \(', r.stderr, re.M)))
        if r.returncode == 0:
            survived += 1
            print(f'SURVIVED  {what}')
        else:
            print(f'caught    {what}: {len(caught)} failing tests, e.g. {", ".join(caught[:3])}')
    print(f'{len(MUTANTS) - survived} of {len(MUTANTS)} mutants caught')
    sys.exit(1 if survived else 0)


if __name__ == '__main__':
    main()
