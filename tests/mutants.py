"""Do the tests bite? Break microgpt.py on purpose, one mistake at a time, and see which tests fail.

    python tests/mutants.py     # every mutant, one test-suite run each, two at a time (~30 minutes)

Each mutant is a copy of the repository with one line of microgpt.py changed: a wrong local
gradient, a broken causal order, BOS handling, Adam's bias correction, and so on. A mutant that no
test catches is printed as SURVIVED and makes the script exit 1. Each suite stops at its first
failure (-f), so a caught mutant costs less than a whole run.
"""
import concurrent.futures, os, re, shutil, subprocess, sys, tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MUTANTS = [  # (what it breaks, text in microgpt.py, replacement)
    ('add: local gradient',
     'return Value(self.data + other.data, (self, other), (1.0, 1.0))',
     'return Value(self.data + other.data, (self, other), (1.0, 0.5))'),
    ('mul: local gradients swapped',
     '(self, other), (other.data, self.data))',
     '(self, other), (self.data, other.data))'),
    ('pow: local gradient',
     '(k * self.data ** (k - 1),)',
     '(k * self.data ** k,)'),
    ('log: local gradient',
     '(1 / self.data,)',
     '(1 / self.data ** 2,)'),
    ('exp: local gradient',
     '(self,), (math.exp(self.data),))',
     '(self,), (1.0,))'),
    ('relu: local gradient',
     '(float(self.data > 0),)',
     '(float(self.data >= 0) * 0.5 + 0.5,)'),
    ('backward: = instead of +=',
     'child.grad += local_grad * v.grad',
     'child.grad = local_grad * v.grad'),
    ('backward: the tape read oldest first',
     'for v in reversed(tape):',
     'for v in tape:'),
    ('fused dot: local gradients swapped',
     'a + b, bd + ad)',
     'a + b, ad + bd)'),
    ('fused linear: local gradients swapped',
     'w_row + x, xd + wd)',
     'w_row + x, wd + xd)'),
    ('fused softmax: local gradient',
     'p * ((i == j) - q)',
     'p * ((i == j) + q)'),
    ('fused cross-entropy: local gradient',
     'p - (j == target)',
     'p - 0.9 * (j == target)'),
    ('causality: the model sees the token it must predict',
     'tokens[pos_id], tokens[pos_id + 1]\n        logits = gpt(token_id, pos_id, keys, value'
     's, sd)\n',
     'tokens[pos_id + 1], tokens[pos_id + 1]\n        logits = gpt(token_id, pos_id, keys, v'
     'alues, sd)\n'),
    ('causality: positions run last to first, so each one attends to the future',
     'for pos_id in range(min(block_size, len(tokens) - 1)):',
     'for pos_id in reversed(range(min(block_size, len(tokens) - 1))):'),
    ('position embedding off by one',
     "sd['wpe'][pos_id]",
     "sd['wpe'][min(pos_id + 1, block_size - 1)]"),
    ('the value cache stores the keys',
     'values[li].append(v)',
     'values[li].append(k)'),
    ('heads overlap',
     'hs = h * head_dim',
     'hs = h'),
    ('attention: scale by sqrt(head size) the wrong way',
     '* head_dim ** -0.5 for k_t',
     '* head_dim ** 0.5 for k_t'),
    ('no norm before the MLP',
     "        x = rmsnorm(x)\n        x = linear(x, sd[f'layer{li}.mlp_fc1'])",
     "        x = linear(x, sd[f'layer{li}.mlp_fc1'])"),
    ('no relu',
     'x = [relu(xi) for xi in x]',
     'x = [xi for xi in x]'),
    ('MLP: no residual',
     "        x = linear(x, sd[f'layer{li}.mlp_fc2'])  # (n_embd,)\n        x = [a + b for a"
     ', b in zip(x, x_residual)]',
     "        x = linear(x, sd[f'layer{li}.mlp_fc2'])  # (n_embd,)"),
    ('output layer tied to the token embedding',
     "return linear(x, sd['lm_head'])",
     "return linear(x, sd['wte'])"),
    ('rmsnorm: sum instead of mean',
     'scale = (dot(x, x) / len(x) + 1e-5) ** -0.5',
     'scale = (dot(x, x) + 1e-5) ** -0.5'),
    ('BOS: no end-of-document token',
     'return [BOS] + [stoi[c] for c in doc] + [BOS]',
     'return [BOS] + [stoi[c] for c in doc]'),
    ('BOS: id collides with a character',
     'BOS = len(chars)  ',
     'BOS = 0  '),
    ('BOS: samples do not stop at BOS',
     '        if token_id == BOS:\n            break',
     '        if token_id == BOS:\n            pass'),
    ('Adam: no bias correction',
     'bias1 = 1 - beta1 ** (step + 1)',
     'bias1 = 1.0'),
    ('Adam: bias correction off by one step',
     'bias2 = 1 - beta2 ** (step + 1)',
     'bias2 = 1 - beta2 ** (step + 2)'),
    ('loss: log-sum-exp without the max',
     'return log(sum(exp(l - top) for l in logits)) + top - logits[target]',
     'return log(sum(exp(l) for l in logits)) - logits[target]'),
    # the mistakes that issue 9 found no test for
    ('a document makes one prediction fewer than block_size',
     'range(min(block_size, len(tokens) - 1)):',
     'range(min(block_size - 1, len(tokens) - 1)):'),
    ('the learning rate never decays',
     'learning_rate * (1 - step / num_steps)',
     'learning_rate * 1'),
    ('the training loss summed, not averaged',
     '[sum(ls) / len(ls) for ls in map(doc_losses, batch)]',
     '[sum(ls) for ls in map(doc_losses, batch)]'),
    ('the shuffle removed',
     'random.shuffle(train_docs)',
     'train_docs.sort()'),
    ('val loss computed on training documents',
     'val_loss = evaluate(val_docs[:n]',
     'val_loss = evaluate(train_docs[:n]'),
    # Part 2 and 3
    ('prefix cache: one position too many kept',
     'del cache[shared:]',
     'del cache[shared + 1:]'),
    ('batches: the mean over documents forgotten',
     'loss = sum(doc_means) / len(doc_means)',
     'loss = sum(doc_means)'),
    ('workers: a share dealt twice',
     'pipe.send((weights, batch[i + 1::n]))',
     'pipe.send((weights, batch[::n]))'),
    ('long documents: the window always at the start',
     'random.randrange(len(tokens) - block_size) if',
     '0 if'),
    ('long documents: the window one token short',
     'return tokens[start:start + block_size + 1]',
     'return tokens[start:start + block_size]'),
    ('running mean over all steps',
     'sum(losses[-100:]) / len(losses[-100:])',
     'sum(losses) / len(losses)'),
    ('copies counted against the held-out documents',
     'train_set = set(train_docs)',
     'train_set = set(val_docs)'),
    ('model file: non-finite weights accepted',
     'type(x) is float and math.isfinite(x)',
     'type(x) is float'),
    ('Ctrl-C stops in the middle of a step',
     'previous = signal.signal(signum, ask)',
     'previous = signal.signal(signum, signal.default_int_handler)'),
    # sampling through the KV cache, the fused loss at underflow, whole-number settings
    ('sampling: one cache shared by every layer',
     '    keys, values = empty_cache()\n    tokens = [BOS] + [stoi[c] for c in prompt]',
     '    keys, values = [[]] * n_layer, [[]] * n_layer\n    tokens = [BOS] + [stoi[c] for c'
     ' in prompt]'),
    ('sampling: the cache does not carry to the next position',
     'logits = gpt(tokens[pos_id], pos_id, keys, values, sd)\n        if pos_id + 1 < len(to'
     'kens):',
     'logits = gpt(tokens[pos_id], pos_id, *empty_cache(), sd)\n        if pos_id + 1 < len('
     'tokens):'),
    ('fused loss: -log(softmax) instead of log-sum-exp',
     'Value(plain_cross_entropy(floats, target), logits',
     'Value(-math.log(plain_softmax(floats)[target]), logits'),
    ('whole-number settings truncate decimals',
     'if kind is bool else kind(text)',
     'if kind is bool else (int(float(text)) if kind is int else kind(text))'),
    # the data, the start, resuming
    ('the split by chance, not by content',
     'if crc[doc] % 10 == 0}',
     'if random.random() < 0.1}'),
    ('the split at every line break that splitlines() knows',
     "text.replace('\\r\\n', '\\n').split('\\n')",
     'text.splitlines()'),
    ('the initial weights do not scale with the width',
     'std = 0.08 * (16 / n_embd) ** 0.5 if',
     'std = 0.08 if'),
    ('evaluate() drops a graph it did not make',
     '        del tape[start:]  # no backward() follows: drop the graph made here\n        i'
     'f progress:',
     '        tape.clear()\n        if progress:'),
    ('resume: the random state not restored',
     "random.setstate(state['random_state'])",
     'random.seed(seed)'),
    ('resume: Adam restarts from zero',
     'return dict(training, m=m, v=v,',
     'return dict(training, m=[0.0] * len(m), v=v,'),
    ('resume: the input file is not compared',
     "if state and state['input_crc'] !=",
     "if False and state['input_crc'] !="),
    ('a refused model file leaves its shape behind',
     '@all_or_nothing()\ndef load_model',
     'def load_model'),
    # the training window, the command line
    ('held-out loss during training on other documents each time',
     'evaluate(val_docs[:eval_iters])',
     'evaluate(val_docs[step % 3:][:eval_iters])'),
    ('divergence told at every step',
     'math.log(vocab_size) and not warned:',
     'math.log(vocab_size):'),
    ('chart: the top value rounded down a row',
     'grid[height - 1 - round(',
     'grid[height - 1 - int('),
    ('chart: a curve that barely moves fills the height',
     'span = max(max(means.values()) - lo, abs(lo) / 100)',
     'span = max(max(means.values()) - lo, 0)'),
    ('samples: no mark when cut at the context',
     "cut = '…' if len(doc) == block_size else ''",
     "cut = ''"),
    ('a bare switch means False',
     "text = text if has_value else 'true'",
     "text = text if has_value else 'false'"),
    ('a repeated flag: the last one wins',
     "fail(f'--{name} is given twice; give it once')",
     'pass'),
    ('no input.txt beside the script',
     'return beside if os.path.exists(beside) else input_file',
     'return input_file'),
]


def try_mutant(source, what, old, new):
    """Run the suite on a copy with one change; return the line to print, and whether it was
    caught."""
    if source.count(old) != 1:
        return (f'!! {what}: the text to change is not in microgpt.py exactly once; '
                'update tests/mutants.py', False)
    with tempfile.TemporaryDirectory() as d:
        shutil.copytree(os.path.join(ROOT, 'tests'), os.path.join(d, 'tests'))
        shutil.copy(os.path.join(ROOT, 'input.txt'), d)
        with open(os.path.join(d, 'microgpt.py'), 'w', encoding='utf-8') as f:
            f.write(source.replace(old, new))
        r = subprocess.run([sys.executable, '-m', 'unittest', 'discover', '-s', 'tests', '-f'],
                           cwd=d, capture_output=True, text=True, timeout=900)  # -f: first failure
    caught = sorted(set(re.findall(r'^(?:FAIL|ERROR): (\w+) \(', r.stderr, re.M)))
    if r.returncode == 0:
        return f'SURVIVED  {what}', False
    which = (f'{len(caught)} failing tests, e.g. {", ".join(caught[:3])}' if caught
             else 'the suite stopped')
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
