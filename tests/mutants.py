"""Do the tests bite? Break microgpt.py on purpose, one mistake at a time, and see which tests fail.

    python tests/mutants.py          # 43 mutants, one test-suite run each, two at a time (~10 minutes)

Each mutant is a copy of the repository with one line of microgpt.py changed: a wrong local gradient,
a broken causal order, BOS handling, Adam's bias correction, and so on. A mutant that no test
catches is printed as SURVIVED and makes the script exit 1.
"""
import concurrent.futures, os, re, shutil, subprocess, sys, tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MUTANTS = [  # (what it breaks, text in microgpt.py, replacement)
    ('add: local gradient', 'return Value(self.data + other.data, (self, other), (1.0, 1.0))',
     'return Value(self.data + other.data, (self, other), (1.0, 0.5))'),
    ('mul: local gradients swapped', '(self, other), (other.data, self.data))', '(self, other), (self.data, other.data))'),
    ('pow: local gradient', '(k * self.data ** (k - 1),)', '(k * self.data ** k,)'),
    ('log: local gradient', '(1 / self.data,)', '(1 / self.data ** 2,)'),
    ('exp: local gradient', '(self,), (math.exp(self.data),))', '(self,), (1.0,))'),
    ('relu: local gradient', '(float(self.data > 0),)', '(float(self.data >= 0) * 0.5 + 0.5,)'),
    ('backward: = instead of +=', 'child.grad += local_grad * v.grad', 'child.grad = local_grad * v.grad'),
    ('backward: the tape read oldest first', 'for v in reversed(tape):', 'for v in tape:'),
    ('fused dot: local gradients swapped', 'a + b, bd + ad)', 'a + b, ad + bd)'),
    ('fused linear: local gradients swapped', 'w_row + x, xd + wd)', 'w_row + x, wd + xd)'),
    ('fused softmax: local gradient', 'p * ((i == j) - q)', 'p * ((i == j) + q)'),
    ('fused cross-entropy: local gradient', 'p - (j == target)', 'p - 0.9 * (j == target)'),
    ('causality: the model sees the token it must predict',
     'cross_entropy(gpt(tokens[t], t, keys, values, sd), tokens[t + 1])',
     'cross_entropy(gpt(tokens[t + 1], t, keys, values, sd), tokens[t + 1])'),
    ('causality: positions run last to first, so each one attends to the future',
     'tokens[t + 1]) for t in range(n)]', 'tokens[t + 1]) for t in reversed(range(n))]'),
    ('position embedding off by one', "sd['wpe'][pos_id]", "sd['wpe'][min(pos_id + 1, block_size - 1)]"),
    ('the value cache stores the keys', 'values[li].append(v)', 'values[li].append(k)'),
    ('heads overlap', 'hs = h * head_dim', 'hs = h'),
    ('attention: scale by sqrt(head size) the wrong way', '* head_dim ** -0.5 for k_t', '* head_dim ** 0.5 for k_t'),
    ('no norm before the MLP', """        x = rmsnorm(x)
        x = linear(x, sd[f'layer{li}.mlp_fc1'])""", """        x = linear(x, sd[f'layer{li}.mlp_fc1'])"""),
    ('no relu', 'x = [relu(xi) for xi in x]', 'x = [xi for xi in x]'),
    ('MLP: no residual', """        x = linear(x, sd[f'layer{li}.mlp_fc2'])  # (n_embd,)
        x = [a + b for a, b in zip(x, x_residual)]""", """        x = linear(x, sd[f'layer{li}.mlp_fc2'])  # (n_embd,)"""),
    ('output layer tied to the token embedding', "return linear(x, sd['lm_head'])", "return linear(x, sd['wte'])"),
    ('rmsnorm: sum instead of mean', 'scale = (dot(x, x) / len(x) + 1e-5) ** -0.5', 'scale = (dot(x, x) + 1e-5) ** -0.5'),
    ('BOS: no end-of-document token', 'return [BOS] + [stoi[c] for c in doc] + [BOS]', 'return [BOS] + [stoi[c] for c in doc]'),
    ('BOS: id collides with a character', 'BOS, vocab_size = len(chars), len(chars) + 1', 'BOS, vocab_size = 0, len(chars) + 1'),
    ('BOS: samples do not stop at BOS', """        if token == BOS:
            break""", """        if token == BOS:
            pass"""),
    ('Adam: no bias correction', 'c1, c2 = 1 - beta1 ** (step + 1), 1 - beta2 ** (step + 1)', 'c1, c2 = 1.0, 1.0'),
    ('Adam: bias correction off by one step', 'c1, c2 = 1 - beta1 ** (step + 1), 1 - beta2 ** (step + 1)',
     'c1, c2 = 1 - beta1 ** (step + 2), 1 - beta2 ** (step + 2)'),
    ('loss: log-sum-exp without the max', 'return log(sum(exp(l - top) for l in logits)) + top - logits[target]',
     'return log(sum(exp(l) for l in logits)) - logits[target]'),
    # the mistakes that issue 9 found no test for
    ('a document makes one prediction fewer than block_size', 'n = min(block_size, len(tokens) - 1)',
     'n = min(block_size - 1, len(tokens) - 1)'),
    ('the learning rate never decays', 'learning_rate * (1 - step / num_steps)', 'learning_rate * 1'),
    ('the training loss summed, not averaged', 'sum(losses) / len(losses) for losses in map(doc_losses, batch)',
     'sum(losses) for losses in map(doc_losses, batch)'),
    ('the shuffle removed', 'random.shuffle(docs)', 'docs.sort()'),
    ('val loss computed on training documents', 'evaluate(val_docs[:n])', 'evaluate(train_docs[:n])'),
    # Part 2 and 3
    ('prefix cache: one position too many kept', 'del cache[shared:]', 'del cache[shared + 1:]'),
    ('batches: the mean over documents forgotten', 'loss = sum(doc_means) / len(doc_means)', 'loss = sum(doc_means)'),
    ('workers: a share dealt twice', 'pipe.send((weights, batch[i + 1::n]))', 'pipe.send((weights, batch[::n]))'),
    ('long documents: the window always at the start', 'random.randrange(len(tokens) - block_size) if', '0 if'),
    ('long documents: the window one token short', 'return tokens[start:start + block_size + 1]',
     'return tokens[start:start + block_size]'),
    ('running mean over all steps', 'sum(losses[-100:]) / len(losses[-100:])', 'sum(losses) / len(losses)'),
    ('copies counted against the held-out documents', 'map(set(train_docs).__contains__', 'map(set(val_docs).__contains__'),
    ('model file: non-finite weights accepted', 'type(x) is float and math.isfinite(x)', 'type(x) is float'),
    ('Ctrl-C stops in the middle of a step', 'lambda *_, why=why: stop.append(why)', 'signal.default_int_handler'),
]


def try_mutant(source, what, old, new):
    """Run the suite on a copy with one change; return the line to print and whether it was caught."""
    if source.count(old) != 1:
        return f'!! {what}: the text to change is not in microgpt.py exactly once; update tests/mutants.py', False
    with tempfile.TemporaryDirectory() as d:
        shutil.copytree(os.path.join(ROOT, 'tests'), os.path.join(d, 'tests'))
        shutil.copy(os.path.join(ROOT, 'input.txt'), d)
        with open(os.path.join(d, 'microgpt.py'), 'w', encoding='utf-8') as f: f.write(source.replace(old, new))
        r = subprocess.run([sys.executable, '-m', 'unittest', 'discover', '-s', 'tests'], cwd=d,
                           capture_output=True, text=True, timeout=900)
    caught = sorted(set(re.findall(r'^(?:FAIL|ERROR): (\w+) \(', r.stderr, re.M)))
    if r.returncode == 0:
        return f'SURVIVED  {what}', False
    which = f'{len(caught)} failing tests, e.g. {", ".join(caught[:3])}' if caught else 'the suite stopped'
    return f'caught    {what}: {which}', True


def main():
    with open(os.path.join(ROOT, 'microgpt.py'), encoding='utf-8') as f: source = f.read()
    with concurrent.futures.ThreadPoolExecutor(2) as pool:  # two suites at a time, one per core
        results = pool.map(lambda mutant: try_mutant(source, *mutant), MUTANTS)
        caught = 0
        for line, ok in results:
            print(line, flush=True)
            caught += ok
    print(f'{caught} of {len(MUTANTS)} mutants caught')
    sys.exit(0 if caught == len(MUTANTS) else 1)


if __name__ == '__main__':
    main()
