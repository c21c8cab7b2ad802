"""Do the tests bite? Break microgpt.py on purpose, one mistake at a time, and see which tests fail.

    python tests/mutants.py               # every mutant, two at a time (~10 minutes, 2 cores)
    python tests/mutants.py -j 1 merge    # only the mutants whose description says "merge"

Each mutant is a copy of the repository (microgpt.py, tests/, input.txt) in a temporary folder
with one text of microgpt.py changed: a wrong local gradient, a broken causal order, BOS handling,
Adam's bias correction, the self-check's bound, and so on. Its first tests (the classes named
beside it) run first; if they pass, so does the rest of the suite, test_1 to test_5, so that a
mutant is SURVIVED only if no test at all catches it (test_6_readme is left out: it compares
README.md, which the copy does not hold). A SURVIVED mutant makes the script exit 1. Each run stops
at its first failure (-f). The unmutated copy runs too, whole: if it fails, nothing is counted.
"""
import concurrent.futures, os, re, shutil, signal, subprocess, sys, tempfile, time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SUITE = ['tests.test_1_gpt', 'tests.test_2_efficiency', 'tests.test_3_production',
         'tests.test_4_running', 'tests.test_5_guard_rails']
TIMEOUT = 1800  # seconds for one run of the suite: a mutant that hangs it counts as caught

MUTANTS = [  # (what it breaks, text in microgpt.py, replacement, the tests to run first)
    # ---- Part 1: autograd
    ('add: local gradient',
     'return Value(self.data + other.data, (self, other), (1.0, 1.0))',
     'return Value(self.data + other.data, (self, other), (1.0, 0.5))', 'test_1_gpt.ValueOps'),
    ('mul: local gradients swapped',
     '(self, other), (other.data, self.data))',
     '(self, other), (self.data, other.data))', 'test_1_gpt.ValueOps'),
    ('pow: local gradient',
     '(k * self.data ** (k - 1),)',
     '(k * self.data ** k,)', 'test_1_gpt.ValueOps'),
    ('log: local gradient',
     '(1 / self.data,)',
     '(1 / self.data ** 2,)', 'test_1_gpt.ValueOps'),
    ('exp: local gradient',
     '(self,), (math.exp(self.data),))',
     '(self,), (1.0,))', 'test_1_gpt.ValueOps'),
    ('relu: local gradient',
     '(float(self.data > 0),)',
     '(float(self.data >= 0) * 0.5 + 0.5,)', 'test_1_gpt.ValueOps'),
    ('backward: = instead of +=',
     'child.grad += local_grad * v.grad',
     'child.grad = local_grad * v.grad', 'test_1_gpt.Backward'),
    ('backward: skips the nodes whose grad is negative, not only those at 0',
     'if v.grad == 0.0:',
     'if v.grad <= 0.0:', 'test_1_gpt.Backward'),
    ('backward: the tape read oldest first',
     'for v in reversed(tape):',
     'for v in tape:', 'test_1_gpt.Backward'),
    ('backward: a used-up graph gives zero gradients, not an error',
     'if self._children and self not in reversed(tape):',
     'if False:', 'test_1_gpt.Backward'),
    # ---- Part 1: the model
    ('causality: the model sees the token it must predict',
     'logits = gpt(tokens[start + pos_id], pos_id, keys, values, sd)',
     'logits = gpt(tokens[start + pos_id + 1], pos_id, keys, values, sd)',
     'test_1_gpt.Loss test_1_gpt.Evaluation'),
    ('causality: positions run last to first, so each one attends to the future',
     'for pos_id in range(min(block_size, len(tokens) - 1 - start)):',
     'for pos_id in reversed(range(min(block_size, len(tokens) - 1 - start))):',
     'test_1_gpt.Causality test_1_gpt.ReferenceModel'),
    ('position embedding off by one',
     "sd['wpe'][pos_id]",
     "sd['wpe'][min(pos_id + 1, block_size - 1)]", 'test_1_gpt.ReferenceModel'),
    ('the value cache stores the keys',
     'values[li].append(v)',
     'values[li].append(k)', 'test_1_gpt.ReferenceModel'),
    ('heads overlap',
     'hs = h * head_dim',
     'hs = h', 'test_1_gpt.ReferenceModel'),
    ('attention: scale by sqrt(head size) the wrong way',
     '* head_dim ** -0.5 for k_t',
     '* head_dim ** 0.5 for k_t', 'test_1_gpt.ReferenceModel'),
    ('no norm before the MLP',
     "        x = rmsnorm(x)\n        x = linear(x, sd[f'layer{li}.mlp_fc1'])",
     "        x = linear(x, sd[f'layer{li}.mlp_fc1'])", 'test_1_gpt.ReferenceModel'),
    ('no relu',
     'x = [relu(xi) for xi in x]',
     'x = [xi for xi in x]', 'test_1_gpt.ReferenceModel'),
    ('MLP: no residual',
     "        x = linear(x, sd[f'layer{li}.mlp_fc2'])  # (n_embd,)\n        x = [a + b for a"
     ', b in zip(x, x_residual)]',
     "        x = linear(x, sd[f'layer{li}.mlp_fc2'])  # (n_embd,)", 'test_1_gpt.ReferenceModel'),
    ('output layer tied to the token embedding',
     "return linear(x, sd['lm_head'])",
     "return linear(x, sd['wte'])", 'test_1_gpt.ReferenceModel'),
    ('rmsnorm: sum instead of mean',
     'scale = (dot(x, x) / len(x) + 1e-5) ** -0.5',
     'scale = (dot(x, x) + 1e-5) ** -0.5', 'test_1_gpt.SoftmaxAndRmsnorm'),
    ('the initial weights do not scale with the width',
     'std = 0.08 * (16 / n_embd) ** 0.5 if',
     'std = 0.08 if', 'test_1_gpt.Initialization'),
    # ---- Part 1: data, tokens, loss, Adam, training, evaluation, sampling
    ('the split by chance, not by content',
     'if crc[doc] % 10 == 0}',
     'if random.random() < 0.1}', 'test_1_gpt.Split'),
    ('the split at every line break that splitlines() knows',
     "text.replace('\\r\\n', '\\n').split(ends)",
     'text.splitlines()', 'test_1_gpt.Split'),
    ('paragraphs: every line a document all the same',
     "ends = '\\n\\n' if paragraphs else '\\n'",
     "ends = '\\n'", 'test_1_gpt.Split'),
    ('paragraphs: the empty lines around a paragraph kept in it',
     "docs = [doc.strip('\\n') for doc in",
     "docs = [doc for doc in", 'test_1_gpt.Split'),
    ('the shuffle removed',
     'random.shuffle(train_docs)',
     'train_docs.sort()', 'test_1_gpt.Split'),
    ('BOS: no end-of-document token',
     'return [BOS] + [stoi[c] for c in doc] + [BOS]',
     'return [BOS] + [stoi[c] for c in doc]', 'test_1_gpt.Tokenizer test_1_gpt.Loss'),
    ('BOS: id collides with a character',
     'BOS = len(chars)  ',
     'BOS = 0  ', 'test_1_gpt.Tokenizer'),
    ('BOS: samples do not stop at BOS',
     '        if token_id == BOS:\n            break',
     '        if token_id == BOS:\n            pass', 'test_1_gpt.Sampling'),
    ('loss: log-sum-exp without the max',
     'return log(sum(exp(logit - top) for logit in logits)) + top - logits[target]',
     'return log(sum(exp(logit) for logit in logits)) - logits[target]', 'test_1_gpt.Loss'),
    ('a document makes one prediction fewer than block_size',
     'range(min(block_size, len(tokens) - 1 - start)):',
     'range(min(block_size - 1, len(tokens) - 1 - start)):',
     'test_1_gpt.Loss test_1_gpt.Evaluation'),
    ('long documents scored: each window scores all its predictions, some twice',
     'if start == 0 or pos_id >= block_size // 2:',
     'if True:', 'test_1_gpt.Loss test_1_gpt.Evaluation'),
    ('long documents scored: windows that do not overlap, each new one with no past',
     'len(tokens) - 1 - block_size // 2), (block_size + 1) // 2):',
     'len(tokens) - 1), block_size):', 'test_1_gpt.Evaluation'),
    ('long documents: the window always at the start',
     'random.randrange(len(tokens) - block_size) if',
     '0 if', 'test_1_gpt.Loss'),
    ('long documents: the window one token short',
     'return tokens[start:start + block_size + 1]',
     'return tokens[start:start + block_size]', 'test_1_gpt.Loss'),
    ('Adam: no bias correction',
     'bias1 = 1 - beta1 ** (step + 1)',
     'bias1 = 1.0', 'test_1_gpt.Adam'),
    ('Adam: bias correction off by one step',
     'bias2 = 1 - beta2 ** (step + 1)',
     'bias2 = 1 - beta2 ** (step + 2)', 'test_1_gpt.Adam'),
    ('the learning rate never decays',
     'learning_rate * (1 - step / num_steps)',
     'learning_rate * 1', 'test_1_gpt.Adam'),
    ('the training loss summed, not averaged',
     '[sum(ls) / len(ls) for ls in map(doc_losses, batch)]',
     '[sum(ls) for ls in map(doc_losses, batch)]', 'test_1_gpt.Training'),
    ('batches: the mean over documents forgotten',
     'loss = sum(doc_means) / len(doc_means)',
     'loss = sum(doc_means)', 'test_1_gpt.Training'),
    ('evaluate() drops a graph it did not make',
     '        del tape[start:]  # no backward() follows: drop the graph made here\n    return '
     'math.fsum',
     '        tape.clear()\n    return math.fsum', 'test_1_gpt.Evaluation'),
    ('sampling: one cache shared by every layer',
     '    keys, values = empty_cache()\n    tokens = encode(prompt)[:-1]',
     '    keys, values = [[]] * n_layer, [[]] * n_layer\n    tokens = encode(prompt)[:-1]',
     'test_1_gpt.SamplingMatchesReference'),
    ('sampling: the cache does not carry to the next position',
     'logits = gpt(tokens[pos_id], pos_id, keys, values, sd)\n        if pos_id + 1 < len(to'
     'kens):',
     'logits = gpt(tokens[pos_id], pos_id, *empty_cache(), sd)\n        if pos_id + 1 < len('
     'tokens):', 'test_1_gpt.SamplingMatchesReference'),
    ('Part 1 main(): the held-out loss on the training documents',
     "print(f'val loss {evaluate(val_docs):.4f} on {len(val_docs)} held-out docs')",
     "print(f'val loss {evaluate(train_docs):.4f} on {len(val_docs)} held-out docs')",
     'test_1_gpt.EveryRulerIsACut'),
    ('Part 1 main(): Adam from a step of its own schedule',
     'for step, loss, _ in train(train_docs, m, v):',
     'for step, loss, _ in train(train_docs, m, v, 1):', 'test_1_gpt.EveryRulerIsACut'),
    # ---- Part 2: the fast functions, the master switch, the proof
    ('fused dot: local gradients swapped',
     'a + b, bd + ad)',
     'a + b, ad + bd)', 'test_2_efficiency.FusedNodes'),
    ('fused linear: local gradients swapped',
     'w_row + x, xd + wd)',
     'w_row + x, wd + xd)', 'test_2_efficiency.FusedNodes'),
    ('fused softmax: local gradient',
     'p * ((i == j) - q)',
     'p * ((i == j) + q)', 'test_2_efficiency.FusedNodes'),
    ('fused cross-entropy: local gradient',
     'p - (j == target)',
     'p - 0.9 * (j == target)', 'test_2_efficiency.FusedNodes'),
    ('fused loss: -log(softmax) instead of log-sum-exp',
     'Value(part1_cross_entropy(floats, target), logits',
     'Value(-math.log(part1_softmax(floats)[target]), logits', 'test_2_efficiency.FusedNodes'),
    ('the master switch: part2=False leaves the fused dot on',
     'if not (part2 and fused and a and',
     'if not (fused and a and', 'test_2_efficiency.TheMasterSwitch'),
    ('the master switch: part2=False leaves evaluate() on plain floats',
     '    if not (part2 and no_grad):\n',
     '    if not no_grad:\n', 'test_2_efficiency.TheMasterSwitch'),
    ('Part 2 evaluate(): a later window scores what the window before scored',
     'scored = range(block_size // 2 if start else 0, len(tokens) - 1)',
     'scored = range(len(tokens) - 1)', 'test_2_efficiency.PlainFloatsAndThePrefixCache'),
    ('prefix cache: one position too many kept',
     'del cache[shared:]',
     'del cache[shared + 1:]', 'test_2_efficiency.PlainFloatsAndThePrefixCache'),
    ('workers: a share dealt twice',
     'pipe.send((weights, batch[i + 1::n]))',
     'pipe.send((weights, batch[::n]))', 'test_2_efficiency.DataParallelism'),
    ('the self-check scores a long held-out document whole, slowly',
     'val_docs = [d[:2 * block_size] for d in val_docs]',
     'val_docs = list(val_docs)', 'test_2_efficiency.TheProof'),
    ('the self-check compares Part 2 with itself',
     "map(rel_diff, fast, slow)",
     "map(rel_diff, fast, fast)", 'test_2_efficiency.TheProofCatchesAnEdit'),
    ('the self-check: Part 2 may differ from Part 1 by 1e-3',
     'if diffs[worst] > 1e-9:',
     'if diffs[worst] > 1e-3:', 'test_2_efficiency.TheProof'),
    ('the check line: Part 2 off, yet it says that Part 2 equals Part 1',
     "if part2 else 'Part 2 is off'",
     "if True else 'Part 2 is off'", 'test_2_efficiency.TheProofCatchesAWrongGradient'),
    ('the self-check: no weight with a gradient (all 0) ends in a traceback',
     'return max((abs(x - y) for x, y in zip(a, b)), default=0.0) / scale',
     'return max(abs(x - y) for x, y in zip(a, b)) / scale', 'test_2_efficiency.TheProofInARun'),
    ('the self-check: finite differences with too large a step',
     'def self_check(doc, val_docs, n_fd=20, h=1e-6):',
     'def self_check(doc, val_docs, n_fd=20, h=1e-2):', 'test_2_efficiency.TheProof'),
    ('the self-check: one-sided differences over 2h',
     '(float_loss(tokens, i, h) - float_loss(tokens, i, -h)) / (2 * h)',
     '(float_loss(tokens, i, h) - float_loss(tokens, i, 0)) / (2 * h)',
     'test_2_efficiency.TheProof'),
    ('the self-check: part2 not restored after an error',
     '    try:\n        slow = (*loss_and_grads(tokens), [evaluate(val_docs)])\n    finally:\n'
     "        part2 = on",
     "    slow = (*loss_and_grads(tokens), [evaluate(val_docs)])\n    part2 = on",
     'test_2_efficiency.TheProof'),
    ('the self-check turns Part 2 on in a --part2=False run',
     "        part2 = on",
     "        part2 = True", 'test_2_efficiency.TheProof'),
    # ---- Part 3: byte-pair merges, bits per character, 8-bit weights
    ('merges learned from the held-out documents too',
     'use_merges(learn_merges(train_docs, bpe_merges))',
     'use_merges(learn_merges(train_docs + val_docs, bpe_merges))',
     'test_3_production.TrainingDocumentsOnly'),
    ('merges: a tie goes to the pair counted last',
     'pair = max(counts, key=counts.get)',
     'pair = max(reversed(counts), key=counts.get)',
     'test_3_production.LearnMergesAgainstReference'),
    ('encode: the merge learned last applied first',
     'key=lambda p: merges.get(p, math.inf)',
     'key=lambda p: -merges.get(p, -1)', 'test_3_production.EncodeAgainstReference'),
    ('bits per character: the characters of a long document past its first context not counted',
     'for t in encode(doc)[1:]]',
     'for t in encode(doc)[1:block_size + 1]]', 'test_3_production.BitsPerChar'),
    ('bits per character: the end of a document counts no character',
     'if t != BOS else 1 for t in predicted)',
     'if t != BOS else 0 for t in predicted)', 'test_3_production.BitsPerChar'),
    ('8-bit weights: the largest at 126, not 127',
     'max(max(map(abs, row)) / 127, sys.float_info.min)',
     'max(max(map(abs, row)) / 126, sys.float_info.min)', 'test_3_production.QuantizeDequantize'),
    ('8-bit weights: truncated, not rounded',
     "array.array('b', [round(x / scale) for x in row])",
     "array.array('b', [int(x / scale) for x in row])", 'test_3_production.QuantizeDequantize'),
    ('model file: repeated merge pairs accepted',
     ' or len(set(map(tuple, pairs))) < len(pairs):',
     ':', 'test_3_production.HostileMerges'),
    ('model file: 8-bit scales not checked to be numbers',
     "if blob.get('int8') and not all(type(r[0]) is float",
     "if False and not all(type(r[0]) is float", 'test_3_production.HostileInt8Files'),
    # ---- Part 4: running it
    ('spread(): the first n documents',
     'return [docs[i * len(docs) // n] for i in range(n)] if n < len(docs) else docs',
     'return docs[:n]', 'test_4_running.Spread'),
    ('held-out loss during training on other documents each time',
     "log['vals'].append((step + 1, evaluate(eval_set)))",
     "log['vals'].append((step + 1, evaluate(spread(val_docs[step % 3:], eval_iters))))",
     'test_4_running.HeldOutDuringTraining'),
    ('running mean over all steps',
     "recent = log['losses'][-100:]",
     "recent = log['losses']", 'test_4_running.TrainingProgress'),
    ('divergence judged on one step, not on the running mean',
     "if log['means'][-1] > worse and not log['warned']:",
     "if loss > worse and not log['warned']:", 'test_4_running.Divergence'),
    ('explain: the top 5 guesses least likely first',
     'top = sorted(range(vocab_size), key=lambda i: -probs[i])[:5]',
     'top = sorted(sorted(range(vocab_size), key=lambda i: -probs[i])[:5], key=lambda i: probs[i])',
     'test_4_running.Explain'),
    ('explain: the top 5 guesses in token order',
     'top = sorted(range(vocab_size), key=lambda i: -probs[i])[:5]',
     'top = sorted(sorted(range(vocab_size), key=lambda i: -probs[i])[:5])',
     'test_4_running.Explain'),
    ('divergence told at every step',
     "if log['means'][-1] > worse and not log['warned']:",
     "if log['means'][-1] > worse:", 'test_4_running.Divergence'),
    ('the compute meter: attention left out',
     'return 6 * (weights * T + attention)',
     'return 6 * weights * T', 'test_4_running.ComputeMeter'),
    ('the compute meter: 4 FLOPs a weight per token, not 6',
     'return 6 * (weights * T + attention)',
     'return 4 * (weights * T + attention)', 'test_4_running.ComputeMeter'),
    ('chart: the top value rounded down a row',
     'grid[height - 1 - round(',
     'grid[height - 1 - int(', 'test_4_running.Chart'),
    ('chart: a curve that barely moves fills the height',
     'span = max(max(means.values()) - lo, abs(lo) / 100)',
     'span = max(max(means.values()) - lo, 0)', 'test_4_running.Chart'),
    ('val loss computed on training documents',
     'val_loss = evaluate(held_out)',
     'val_loss = evaluate(train_docs[:len(held_out)])', 'test_4_running.FinalEvaluation'),
    ('samples: no mark when cut at the context',
     "cut = '…' if len(encode(doc)) > block_size + 1 else ''",
     "cut = ''", 'test_4_running.Samples'),
    ('samples: a paragraph printed with its line breaks raw, not as aligned lines',
     "'\\n           '.join(lines)",
     "'\\n'.join(lines)", 'test_4_running.Samples'),
    ('explain: a line break printed raw inside the table',
     "c.replace(' ', '·').replace('\\n', '↵')",
     "c.replace(' ', '·')", 'test_4_running.Explain'),
    ('memorisation: train and held-out copies swapped',
     'train_set, val_set = set(train_docs), set(val_docs)',
     'train_set, val_set = set(val_docs), set(train_docs)',
     'test_4_running.Memorisation test_4_running.Samples'),
    ('the cut: Part 4 reads a flag it cannot check',
     "    if argv:\n        fail(f'{argv[0]!r}: the guard rails",
     "    if False:\n        fail(f'{argv[0]!r}: the guard rails", 'test_1_gpt.EveryRulerIsACut'),
    # ---- the guard rails
    ('--resume: the shape rules checked on the settings as they stand, not the saved model',
     "check_settings({**settings(), **config}, f'with the model in {path!r}: ')",
     "check_settings(settings(), f'with the model in {path!r}: ')",
     'test_5_guard_rails.Resume'),
    ('explain(text=...): the text by keyword not checked',
     "check_known(args[0] if args else kwargs.get('text', ''), what)",
     "check_known(args[0], what)", 'test_4_running.Explain'),
    ('-h is not --help',
     "if {'-h', '--help'} & set(argv):", "if {'--help'} & set(argv):", 'test_5_guard_rails.Help'),
    ('--help with no source to read: the usage line only',
     "for line in source or [f'{name} = ...' for name in KIND]:",
     'for line in source:', 'test_5_guard_rails.Help'),
    ('--help with no source to read: the settings without their values',
     "for line in source or [f'{name} = ...' for name in KIND]:",
     "for line in source or [f'{name}' for name in KIND]:", 'test_5_guard_rails.Help'),
    ("a setting's kind is the type of the value in the file",
     'KIND = dict(  # what each setting takes',
     'KIND = (lambda **kinds: {k: type(globals()[k]) for k in kinds})(  # what each setting takes',
     'test_5_guard_rails.CellAssignments'),
    ('the kind table: seed a number',
     'num_samples=int, seed=int,', 'num_samples=int, seed=float,', 'test_5_guard_rails.Flags'),
    ('--help: the parts not read from the rulers',
     "ruler = re.match(r'# =+ (Part \\d): (.*?) =', line)",
     "ruler = None", 'test_5_guard_rails.Help'),
    ('reset_settings() leaves the shape as it is',
     'globals().update(DEFAULTS)',
     'globals().update({k: v for k, v in DEFAULTS.items() if k not in SHAPE})',
     'test_5_guard_rails.ResetSettings'),
    ('whole-number settings truncate decimals',
     ' else kind(text)\n',
     ' else (int(float(text)) if kind is int else kind(text))\n', 'test_5_guard_rails.Flags'),
    ('numbers parsed as JSON: .01 and 1. refused',
     ' else kind(text)\n',
     ' else json.loads(text)\n', 'test_5_guard_rails.Flags'),
    ('switches: only lower-case true and false',
     'word = text.lower()',
     'word = text', 'test_5_guard_rails.Flags'),
    ('a bare switch means False',
     "text = text if has_value else 'true'",
     "text = text if has_value else 'false'", 'test_5_guard_rails.Flags'),
    ('a repeated flag: the last one wins',
     "fail(f'--{name} is given twice; give it once')",
     'pass', 'test_5_guard_rails.Flags'),
    ('a failed setup leaves its settings and model behind',
     '@all_or_nothing()\ndef setup',
     'def setup', 'test_5_guard_rails.AllOrNothing'),
    ('model file: non-finite weights accepted',
     'if type(x) is not float or not math.isfinite(x):',
     'if type(x) is not float:', 'test_5_guard_rails.HostileModelFiles'),
    ('resume: the random state not restored',
     "random.setstate(state['random_state'])",
     'random.seed(seed)', 'test_5_guard_rails.Resume'),
    ('resume: Adam restarts from zero',
     'return dict(checked, training=dict(training, m=m, v=v))',
     'return dict(checked, training=dict(training, m=[0.0] * len(m), v=v))', 'test_5_guard_rails.Resume'),
    ('resume: the input file is not compared',
     "if state.get('input_crc', run['input_crc']) != run['input_crc']:",
     "if False:", 'test_5_guard_rails.Resume'),
    ('resume: the input file it was trained on not used',
     "path = state['input_file'] if state and 'input_file' not in given else input_file",
     'path = input_file', 'test_5_guard_rails.Resume'),
    ('resume: the input file saved as given, not absolute',
     "'input_file': os.path.abspath(run['input_path'])",
     "'input_file': run['input_path']", 'test_5_guard_rails.Save test_5_guard_rails.Resume'),
    ('Ctrl-C stops in the middle of a step',
     'previous = signal.signal(signum, lambda s, f: asks.append(signal.Signals(s).name))',
     'previous = signal.signal(signum, signal.default_int_handler)',
     'test_4_running.CtrlCAndSigterm'),
    ('--int8 saves over the resumed run, dropping its training state',
     "if int8 and run['resumed'] and run['save'] == run['resumed']:",
     'if False:', 'test_3_production.Int8Files'),
    ('a model whose training diverged samples anyway',
     'if not all(math.isfinite(p.data) for p in params):  # a run that diverged',
     'if False:', 'test_5_guard_rails.Notebooks'),
    ('a later cell that changes the shape is not noticed',
     '            if globals()[name] != value:\n',
     '            if False:\n', 'test_4_running.NotebookCells'),
]


def run_tests(folder, names):
    """Run these tests in folder, stopping at the first failure. -> (passed, failing tests)."""
    p = subprocess.Popen([sys.executable, '-m', 'unittest', '-f', *names], cwd=folder,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         start_new_session=True)  # its own group: a timeout ends all it started
    try:
        _, err = p.communicate(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        p.communicate()
        return False, [f'timed out after {TIMEOUT} s']
    return p.returncode == 0, sorted(set(re.findall(r'^(?:FAIL|ERROR): (\w+) \(', err, re.M)))


def try_mutant(source, what, old, new, first):
    """Run the tests on a copy with one change (none: old is None); -> (line to print, caught)."""
    if old is not None and source.count(old) != 1:
        return (f'!! {what}: the text to change is not in microgpt.py exactly once; '
                'update tests/mutants.py', False)
    started = time.time()
    with tempfile.TemporaryDirectory() as d:
        shutil.copytree(os.path.join(ROOT, 'tests'), os.path.join(d, 'tests'),
                        ignore=shutil.ignore_patterns('__pycache__'))
        shutil.copy(os.path.join(ROOT, 'input.txt'), d)
        with open(os.path.join(d, 'microgpt.py'), 'w', encoding='utf-8') as f:
            f.write(source if old is None else source.replace(old, new))
        first = [f'tests.{name}' for name in first.split()]
        passed, failing = run_tests(d, first) if first else (True, [])
        stage = 'its first tests'
        if passed:
            passed, failing = run_tests(d, SUITE)
            stage = 'the rest of the suite'
    took = f'{time.time() - started:4.0f} s'
    if old is None:
        return (f'{took}  unmutated: {"passes" if passed else "FAILS: " + ", ".join(failing)}',
                passed)
    if passed:
        return f'{took}  SURVIVED  {what}', False
    return f'{took}  caught    {what}: by {stage}, {", ".join(failing[:3])}', True


def main(argv):
    jobs = 2  # two suites at a time, one per core
    if argv[:1] == ['-j']:
        jobs, argv = int(argv[1]), argv[2:]
    chosen = [mutant for mutant in MUTANTS
              if not argv or any(word.lower() in mutant[0].lower() for word in argv)]
    with open(os.path.join(ROOT, 'microgpt.py'), encoding='utf-8') as f:
        source = f.read()
    started = time.time()
    caught = 0
    with concurrent.futures.ThreadPoolExecutor(jobs) as pool:
        baseline = pool.submit(try_mutant, source, 'unmutated', None, None, '')
        results = [pool.submit(try_mutant, source, *mutant) for mutant in chosen]
        line, ok = baseline.result()
        print(line, flush=True)
        if not ok:
            for future in results:
                future.cancel()
            print('the unmutated copy fails: fix the suite first')
            sys.exit(2)
        for future in results:
            line, ok = future.result()
            print(line, flush=True)
            caught += ok
    minutes = (time.time() - started) / 60
    print(f'{caught} of {len(chosen)} mutants caught, in {minutes:.0f} minutes ({jobs} at a time)')
    sys.exit(0 if caught == len(chosen) else 1)


if __name__ == '__main__':
    main(sys.argv[1:])
