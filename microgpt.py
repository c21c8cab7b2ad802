"""microgpt: a whole GPT in plain Python, standard library only: data, tokenizer, autograd,
model, Adam, training, evaluation and sampling. `python microgpt.py` runs it; --help lists
its settings.

Part 1 is the GPT, whole on its own: cut the file at Part 2 and it still trains and samples.
Part 2 makes it fast without changing what it computes. Part 3 runs it.
"""
import math, random, zlib
from operator import mul
import base64, contextlib, difflib, gc, itertools, json, multiprocessing, os, re, shutil, signal
import struct, sys, threading, time

# ============================= Part 1: the GPT ===============================
# Part 2 swaps in faster dot, linear, softmax, cross_entropy, batch_loss, evaluate, sample.
# --- settings: the reference run ---------------------------------------------
n_layer = 1               # transformer blocks
n_embd = 16               # width of the vector that represents each token
n_head = 4                # attention heads; each one reads n_embd // n_head of those numbers
block_size = 16           # context length: the most positions the model sees at once
num_steps = 1000          # training steps: Adam updates
batch_size = 1            # documents per step; their mean loss makes one update
learning_rate = 0.01      # Adam's step size at step 0; it decays linearly to 0
beta1 = 0.85              # Adam: how slowly the mean of the gradient forgets
beta2 = 0.99              # Adam: how slowly the mean of the squared gradient forgets
eps = 1e-8                # Adam: keeps the step finite when a gradient is ~0
init_std = None           # std of the initial weights; None: 0.08 * sqrt(16 / n_embd)
temperature = 0.5         # sampling: below 1 picks likely characters more often, above 1 less
prompt = ''               # every sample starts with this text and continues it
seed = 42                 # one seed for the training order, the initial weights and the samples

# --- dataset: each line a document; a tenth, chosen by its text, held out ----
def split_docs(text):
    """-> (train_docs, val_docs): the non-blank lines, exactly. A checksum of its text picks
    each document's side: repeats share one, all runs agree; the seed shuffles train_docs."""
    docs = [doc for doc in text.replace('\r\n', '\n').split('\n') if doc.strip()]
    crc = {doc: zlib.crc32(doc.encode('utf-8')) for doc in docs}
    val_texts = {doc for doc in docs if crc[doc] % 10 == 0}  # about 1 in 10
    if not val_texts or val_texts == set(docs):  # a tiny file: one held out
        val_texts = {min(docs, key=crc.get, default='')}
    train_docs = [doc for doc in docs if doc not in val_texts]
    random.shuffle(train_docs)
    return train_docs, [doc for doc in docs if doc in val_texts]

# --- tokenizer: a token per character, plus BOS, which starts and ends a doc --
def use_vocab(vocab):  # vocab: the characters, in token-id order
    global chars, stoi, BOS, vocab_size
    chars = list(vocab)
    stoi = {c: i for i, c in enumerate(chars)}  # character -> token id
    BOS = len(chars)                            # the last id
    vocab_size = len(chars) + 1

def encode(doc):
    return [BOS] + [stoi[c] for c in doc] + [BOS]

def decode(ids):
    return ''.join(chars[i] for i in ids if i != BOS)

# --- autograd: numbers that remember how they were made; the chain rule -------
tape = []  # each Value made from others, in the order made: after its children

class Value:
    """One number in the graph: its data, d(loss)/d(data), its local gradients."""
    __slots__ = ('data', 'grad', '_children', '_local_grads')  # no dict: faster
    def __init__(self, data, children=(), local_grads=()):
        self.data, self.grad = data, 0.0
        self._children, self._local_grads = children, local_grads  # d(self)/d(child)
        if children:
            tape.append(self)
    def __add__(self, other):
        other = other if isinstance(other, Value) else Value(other)
        return Value(self.data + other.data, (self, other), (1.0, 1.0))
    def __mul__(self, other):
        other = other if isinstance(other, Value) else Value(other)
        return Value(self.data * other.data, (self, other), (other.data, self.data))
    def __pow__(self, k): return Value(self.data ** k, (self,), (k * self.data ** (k - 1),))
    def log(self): return Value(math.log(self.data), (self,), (1 / self.data,))
    def exp(self): return Value(math.exp(self.data), (self,), (math.exp(self.data),))
    def relu(self): return Value(max(0.0, self.data), (self,), (float(self.data > 0),))
    def __neg__(self): return self * -1
    def __radd__(self, other): return self + other
    def __sub__(self, other): return self + (-other)
    def __rsub__(self, other): return other + (-self)
    def __rmul__(self, other): return self * other
    def __truediv__(self, other): return self * other ** -1
    def __rtruediv__(self, other): return other * self ** -1
    def backward(self):
        """The chain rule: each node passes local_grad * its grad on to each child. Read from
        its newest end, the tape reaches a node after all that use it: when its grad is whole."""
        self.grad = 1.0
        for v in reversed(tape):
            for child, local_grad in zip(v._children, v._local_grads):
                child.grad += local_grad * v.grad
        tape.clear()  # the graph is used up; the next forward pass records anew

# From here on, every function takes Values (recorded) or plain floats (not).
def exp(x): return x.exp() if isinstance(x, Value) else math.exp(x)
def log(x): return x.log() if isinstance(x, Value) else math.log(x)
def relu(x): return x.relu() if isinstance(x, Value) else max(0.0, x)
def data(x): return x.data if isinstance(x, Value) else x

# --- model: a GPT-2-like transformer that reads one token at a time ----------
def shapes():  # every weight matrix by its GPT-2 name: (rows, columns)
    n = n_embd
    sizes = {'wte': (vocab_size, n), 'wpe': (block_size, n), 'lm_head': (vocab_size, n)}
    for i in range(n_layer):
        sizes.update({f'layer{i}.attn_w{c}': (n, n) for c in 'qkvo'})
        sizes.update({f'layer{i}.mlp_fc1': (4 * n, n), f'layer{i}.mlp_fc2': (n, 4 * n)})
    return sizes

def init_weights():  # {name: rows of random floats}
    std = 0.08 * (16 / n_embd) ** 0.5 if init_std is None else init_std  # logits alike at any width
    return {name: [[random.gauss(0, std) for _ in range(cols)] for _ in range(rows)]
            for name, (rows, cols) in shapes().items()}

def use_weights(weights=None):  # the parameters: these weights, or new random ones
    global state_dict, params
    weights = weights or init_weights()
    state_dict = {name: [[Value(x) for x in row] for row in weights[name]] for name in shapes()}
    params = [p for mat in state_dict.values() for row in mat for p in row]

def dot(a, b):  # sum of a_i * b_i
    return sum(map(mul, a, b))

def linear(x, w):  # (nout, nin) @ (nin,) -> (nout,): a dot product per row of w
    return [dot(w_row, x) for w_row in w]

def softmax(logits):  # -> probabilities that sum to 1
    top = max(data(l) for l in logits)  # changes nothing, but keeps exp() finite
    exps = [exp(l - top) for l in logits]
    inv_total = sum(exps) ** -1
    return [e * inv_total for e in exps]

def rmsnorm(x):  # rescale x to a mean square of 1
    scale = (dot(x, x) / len(x) + 1e-5) ** -0.5
    return [xi * scale for xi in x]

def empty_cache():  # keys and values: per layer, a vector per position read
    return [[] for _ in range(n_layer)], [[] for _ in range(n_layer)]

def gpt(token_id, pos_id, keys, values, sd=None, attention=None):
    """The logits (vocab_size,) of the next token. keys, values: per layer, the vectors of the
    positions read so far; this call adds its own, so attention only looks back. sd: the
    weights, state_dict by default. attention: a list to append each head's weights to."""
    sd = sd or state_dict
    head_dim = n_embd // n_head
    x = rmsnorm([t + p for t, p in zip(sd['wte'][token_id], sd['wpe'][pos_id])])  # (n_embd,)
    for li in range(n_layer):
        # 1) attention: each head averages the values so far, weighted by how their keys fit q
        x_residual = x
        x = rmsnorm(x)
        q = linear(x, sd[f'layer{li}.attn_wq'])  # (n_embd,) what it looks for
        k = linear(x, sd[f'layer{li}.attn_wk'])  # (n_embd,) what it offers
        v = linear(x, sd[f'layer{li}.attn_wv'])  # (n_embd,) what it passes on
        keys[li].append(k)
        values[li].append(v)
        x_attn = []
        for h in range(n_head):
            hs = h * head_dim  # this head's slice: hs .. hs + head_dim
            q_h = q[hs:hs + head_dim]
            k_h = [k_t[hs:hs + head_dim] for k_t in keys[li]]  # (T, head_dim)
            v_h = [v_t[hs:hs + head_dim] for v_t in values[li]]
            attn_logits = [dot(q_h, k_t) * head_dim ** -0.5 for k_t in k_h]  # (T,)
            attn_weights = softmax(attn_logits)  # (T,)
            if attention is not None:
                attention.append(attn_weights)
            head_out = [dot(attn_weights, [v_t[j] for v_t in v_h]) for j in range(head_dim)]
            x_attn.extend(head_out)
        x = linear(x_attn, sd[f'layer{li}.attn_wo'])
        x = [a + b for a, b in zip(x, x_residual)]
        # 2) MLP: widen 4x, relu, project back
        x_residual = x
        x = rmsnorm(x)
        x = linear(x, sd[f'layer{li}.mlp_fc1'])  # (4 * n_embd,)
        x = [relu(xi) for xi in x]
        x = linear(x, sd[f'layer{li}.mlp_fc2'])  # (n_embd,)
        x = [a + b for a, b in zip(x, x_residual)]
    return linear(x, sd['lm_head'])  # (vocab_size,)

# --- loss: how surprised the model is by each real next token ----------------
def cross_entropy(logits, target):  # -log softmax(logits)[target], never log(0)
    top = max(data(l) for l in logits)
    return log(sum(exp(l - top) for l in logits)) + top - logits[target]

def doc_losses(tokens, sd=None):  # a loss per position: token t+1 given 0..t
    keys, values = empty_cache()
    losses = []
    for pos_id in range(min(block_size, len(tokens) - 1)):  # at most block_size
        token_id, target_id = tokens[pos_id], tokens[pos_id + 1]
        logits = gpt(token_id, pos_id, keys, values, sd)
        losses.append(cross_entropy(logits, target_id))
    return losses

def window(tokens):  # a long document: block_size + 1 tokens from a random start
    start = random.randrange(len(tokens) - block_size) if len(tokens) > block_size + 1 else 0
    return tokens[start:start + block_size + 1]

# --- optimizer: Adam, with bias correction -----------------------------------
def adam_step(step, m, v, lr):  # m, v: running means of each gradient, its square
    bias1 = 1 - beta1 ** (step + 1)  # m and v start at 0, so they run low early:
    bias2 = 1 - beta2 ** (step + 1)  # m_hat and v_hat undo that
    for i, p in enumerate(params):
        m[i] = beta1 * m[i] + (1 - beta1) * p.grad
        v[i] = beta2 * v[i] + (1 - beta2) * p.grad * p.grad
        m_hat = m[i] / bias1
        v_hat = v[i] / bias2
        p.data -= lr * m_hat / (math.sqrt(v_hat) + eps)
        p.grad = 0.0

# --- training: batches of documents, one Adam update each --------------------
def batch_loss(batch):  # mean loss of some token lists; backward() fills p.grad
    doc_means = [sum(ls) / len(ls) for ls in map(doc_losses, batch)]  # over positions
    loss = sum(doc_means) / len(doc_means)
    loss.backward()
    return loss.data

def train(train_docs, m, v, start=0):  # yields (step, loss); m, v: Adam's, to go on later
    for step in range(start, num_steps):
        docs = [train_docs[(step * batch_size + j) % len(train_docs)] for j in range(batch_size)]
        batch = [window(encode(doc)) for doc in docs]
        loss = batch_loss(batch)
        adam_step(step, m, v, learning_rate * (1 - step / num_steps))  # decays to 0
        yield step, loss

# --- evaluation: the mean loss per predicted token, on documents not trained on
def evaluate(docs, progress=None):  # progress(done, total): called after each doc
    start = len(tape)
    losses = []
    for done, doc in enumerate(docs, 1):
        losses += [data(loss) for loss in doc_losses(encode(doc))]
        del tape[start:]  # no backward() follows: drop the graph made here
        if progress:
            progress(done, len(docs))
    return math.fsum(losses) / len(losses)  # fsum: exact, in any order

# --- sampling: feed the model its own choices, one character at a time -------
def sample(sd=None):  # a new document that starts with prompt: block_size at most
    start = len(tape)
    keys, values = empty_cache()
    tokens = [BOS] + [stoi[c] for c in prompt]
    for pos_id in range(block_size):
        logits = gpt(tokens[pos_id], pos_id, keys, values, sd)
        if pos_id + 1 < len(tokens):
            continue  # still reading the prompt
        top = max(map(data, logits))
        probs = softmax([(data(l) - top) / temperature for l in logits])  # top first: no overflow
        token_id = random.choices(range(vocab_size), weights=probs)[0]
        if token_id == BOS:
            break  # the model says the document ends here
        tokens.append(token_id)
    del tape[start:]  # no backward() follows: drop the graph made here
    return decode(tokens)

# ================ Part 2: everything else is just efficiency =================
# Each item computes what Part 1 does, only faster; --name=False (--workers=1) turns it off.
# Each keeps the Part 1 function it replaces as plain_<name>.
fused = True              # fused graph nodes: a step makes ~2,900 of them, not ~55,000
no_grad = True            # evaluate and sample on plain floats, with no graph
prefix_cache = True       # evaluation reuses the work of a shared prefix
pause_gc = True           # the garbage collector rests in training: no cycles to free
workers = os.cpu_count() or 1  # processes that share each batch (batch_size at most)

# --- fused nodes (~ tensor kernels): one node for a dot product, softmax output, loss
# Candidly: they trade clarity for speed (4.9x in training); Part 1 has none.
plain_dot, plain_linear, plain_softmax, plain_cross_entropy = dot, linear, softmax, cross_entropy

def dot(a, b):  # one node: d/da_i = b_i, d/db_i = a_i
    if not (fused and a and isinstance(a[0], Value) and isinstance(b[0], Value)):
        return plain_dot(a, b)
    ad = [ai.data for ai in a]
    bd = [bi.data for bi in b]
    return Value(sum(map(mul, ad, bd)), a + b, bd + ad)

def linear(x, w):  # one node per output: d/dw_ij = x_j, d/dx_j = w_ij
    if not (fused and isinstance(x[0], Value) and isinstance(w[0][0], Value)):
        return plain_linear(x, w)
    xd = [xi.data for xi in x]  # read x's data once, for every row
    rows = [[wi.data for wi in w_row] for w_row in w]
    return [Value(sum(map(mul, wd, xd)), w_row + x, xd + wd) for w_row, wd in zip(w, rows)]

def softmax(logits):  # one node per output: d p_i / d logit_j = p_i * (1[i = j] - p_j)
    if not (fused and isinstance(logits[0], Value)):
        return plain_softmax(logits)
    probs = plain_softmax([l.data for l in logits])
    return [Value(p, logits, [p * ((i == j) - q) for j, q in enumerate(probs)])
            for i, p in enumerate(probs)]

def cross_entropy(logits, target):  # one node: d loss / d logit_j = p_j - 1[j = target]
    if not (fused and isinstance(logits[0], Value)):
        return plain_cross_entropy(logits, target)
    floats = [l.data for l in logits]
    grads = [p - (j == target) for j, p in enumerate(plain_softmax(floats))]
    return Value(plain_cross_entropy(floats, target), logits, grads)

# --- plain floats (~ torch.no_grad), a prefix cache (~ inference servers) ---
plain_evaluate, plain_sample = evaluate, sample

def float_weights():  # state_dict as plain floats: gpt() on these builds no graph
    return {name: [[p.data for p in row] for row in mat] for name, mat in state_dict.items()}

def sample(sd=None):
    return plain_sample(float_weights() if no_grad and sd is None else sd)

def evaluate(docs, progress=None):  # sorted, a doc often starts as the one before
    if not no_grad:
        return plain_evaluate(docs, progress)
    sd = float_weights()
    keys, values = empty_cache()
    logits = []  # per position fed so far: what a shared start computed, with keys, values
    fed = []
    losses = []
    for done, doc in enumerate(sorted(docs) if prefix_cache else docs, 1):
        tokens = encode(doc)[:block_size + 1]  # its first block_size predictions
        shared = len(os.path.commonprefix([tokens[:-1], fed])) if prefix_cache else 0
        for cache in keys + values + [logits]:  # keep what the shared start computed
            del cache[shared:]
        for pos_id in range(shared, len(tokens) - 1):
            logits.append(gpt(tokens[pos_id], pos_id, keys, values, sd))
        losses += [cross_entropy(logits[t], tokens[t + 1]) for t in range(len(tokens) - 1)]
        fed = tokens[:-1]
        if progress:
            progress(done, len(docs))
    return math.fsum(losses) / len(losses)

# --- a resting collector (~ memory management): the graph has no cycles to free
@contextlib.contextmanager
def resting_collector():  # in training: it would scan the graph again and again
    paused = pause_gc and gc.isenabled()
    if paused:
        gc.disable()
    try:
        yield
    finally:
        if paused:
            gc.enable()

# --- data parallelism (~ multi-GPU training): worker processes share a batch --
plain_batch_loss = batch_loss
pool = []  # (pipe, process) of each other worker, while training with workers

def share_grads(weights, batch):  # a share's summed loss, and its summed gradient
    for p, w in zip(params, weights):
        p.data, p.grad = w, 0.0
    loss = plain_batch_loss(batch)
    return loss * len(batch), [p.grad * len(batch) for p in params]

def serve(pipe):  # in a worker: shares of batches in, gradients out, to the end
    while True:
        pipe.send(share_grads(*pipe.recv()))

def batch_loss(batch):  # this process and each worker take a share: floats travel
    if not pool:
        return plain_batch_loss(batch)
    n = len(pool) + 1
    weights = [p.data for p in params]
    batch = sorted(batch, key=len)  # dealt out in turn: shares of about equal work
    try:
        for i, (pipe, _) in enumerate(pool):
            pipe.send((weights, batch[i + 1::n]))
        results = [share_grads(weights, batch[::n])] + [pipe.recv() for pipe, _ in pool]
    except (EOFError, OSError):  # a worker ended: killed, or out of memory
        fail('a worker process ended during training; try --workers=1', 1)
    shares = [grads for _, grads in results]
    for p, grads in zip(params, zip(*shares)):  # grads: p's, one from each share
        p.grad = sum(grads) / len(batch)
    return sum(loss for loss, _ in results) / len(batch)

@contextlib.contextmanager
def worker_pool(n):  # n - 1 workers forked from this process, killed and joined at exit
    with contextlib.ExitStack() as undo:
        undo.callback(pool.clear)
        for _ in range(n - 1):
            ours, theirs = multiprocessing.Pipe()
            process = multiprocessing.get_context('fork').Process(target=serve, args=(theirs,))
            process.daemon = True
            process.start()
            theirs.close()  # theirs is the worker's: if it dies, recv() here ends, not waits
            undo.callback(process.join)
            undo.callback(process.kill)
            pool.append((ours, process))
        yield

# =========================== Part 3: running it ==============================
# main() first: the run in order. Then what it uses: flags, files, the training
# window, explain(), and the command line.


# --- run: every step of `python microgpt.py`, in order -----------------------
def main(argv=()):
    """Settings, data, model, training, saving, evaluation and samples, as
    `python microgpt.py` does them. argv: --name=value flags. Raises MicrogptError."""
    if isinstance(argv, str):
        fail(f'main() takes a list of flags: main({argv.split()!r})')
    if '-h' in argv or '--help' in argv:
        print(help_text())
        return
    with all_or_nothing():  # every check before any work; a failed one changes nothing
        given = configure(argv)
        load_from = given.get('load', load)  # the file flags are for this run only
        resume_from = given.get('resume', resume)
        save_to = given.get('save', save) or resume_from  # a resumed run saves back to its file
        state = None
        if load_from or resume_from:
            state = load_model(load_from or resume_from, given, bool(resume_from))
        path = input_path()
        if path != input_file:
            print(f'reading {path}: the current folder has no {input_file}')
        text = read_text(path)
        input_crc = zlib.crc32(text.replace('\r\n', '\n').encode('utf-8'))  # for --resume
        if state and state['input_crc'] != input_crc:
            fail(f'{path!r} is not the text that {resume_from!r} was trained on: give that '
                 f'--input_file, or --load to start a new schedule on this one')
        random.seed(seed)
        train_docs, val_docs = split_docs(text)
        if not train_docs:
            fail(f'input file {path!r} needs 2 different non-empty lines: to train on, to hold out')
        if not (load_from or resume_from):
            use_vocab(sorted(set(''.join(train_docs + val_docs))))
            use_weights()
        check_known(prompt, '--prompt')
        check_known(given.get('explain', ''), '--explain')
        check_known(''.join(train_docs + val_docs), 'the input file')
        if save_to:
            check_save_path(save_to)

    print(f'{len(train_docs)} train docs, {len(val_docs)} held out | vocab {vocab_size} '
          f'| {len(params)} params | fused={fused}')
    too_long = sum(len(doc) >= block_size for doc in train_docs)
    if too_long:
        print(f'{too_long} train docs are longer than the context: training reads a window of each')
    if state:
        random.setstate(state['random_state'])
        done = ': it is finished; --load it to train more' if state['step'] == num_steps else ''
        print(f'resuming {resume_from} at step {state["step"]} of {num_steps}{done}')
    adam = state or {'step': 0, 'm': [0.0] * len(params), 'v': [0.0] * len(params)}
    step = run_training(train_docs, val_docs, adam['m'], adam['v'], adam['step'])

    if save_to:
        save_model(save_to, adam['m'], adam['v'], step, input_crc)
        more = f'; go on with --resume={save_to}' if step < num_steps else ''
        more += f' --input_file={input_file}' if more and input_file != 'input.txt' else ''
        print(f'saved the model to {save_to} at step {step} of {num_steps}{more}')

    n = min(eval_docs, len(val_docs))
    if n:
        val_loss = evaluate(val_docs[:n], progress_of('held-out docs'))
        train_loss = evaluate(train_docs[:n], progress_of('train docs'))
        print(f'val loss {fmt(val_loss)} | train loss {fmt(train_loss)}')

    random.seed(seed)  # so the samples depend only on the weights and the seed
    samples = [sample() for _ in range(num_samples)]
    for i, doc in enumerate(samples, 1):
        cut = '…' if len(doc) == block_size else ''  # no end drawn: cut at the context
        print(f'sample {i:2d}: {doc + cut if doc else "(empty)"}')
    train_set = set(train_docs)
    copies = sum(doc in train_set for doc in samples)  # equal to a training document
    if samples:
        print(f'{len(samples) - copies} of {len(samples)} samples are new, '
              f'{copies} copy a train doc')
    if given.get('explain'):
        explain(given['explain'])


# --- settings of the run, and the flags that change any setting --------------
input_file = 'input.txt'  # the training text: one document per line
eval_interval = 100       # score eval_iters held-out docs every this many steps; 0: never
eval_iters = 50           # held-out docs scored at each eval_interval (always the same)
eval_docs = 5000          # held-out docs to score after training (as many train docs)
num_samples = 20          # how many samples to print at the end
save = ''                 # write the model, and what --resume needs, to this JSON file
load = ''                 # start from a saved model's weights, with a new schedule
resume = ''               # go on with a run saved by --save, exactly where it stopped
FLAGS = {  # every --name=value flag, by part: a setting, or --explain=TEXT
    'Part 1, the GPT': 'n_layer n_embd n_head block_size num_steps batch_size '
                       'learning_rate beta1 beta2 eps init_std temperature prompt seed',
    'Part 2, efficiency': 'fused no_grad prefix_cache pause_gc workers',
    'Part 3, running it': 'input_file eval_interval eval_iters eval_docs num_samples '
                          'save load resume explain'}
KIND = {name: type(globals().get(name, '')) for names in FLAGS.values()
        for name in names.split()}
KIND['init_std'] = lambda text: None if text.lower() == 'none' else float(text)  # by width
SHAPE = ('n_layer', 'n_embd', 'n_head', 'block_size')  # a saved model's shape
RUN = ('num_steps', 'batch_size', 'learning_rate', 'beta1', 'beta2', 'eps', 'seed')

class MicrogptError(Exception):  # one line: what is wrong, and what to do
    def __init__(self, message, code=2):  # exit code: 2 bad settings or input, 1 a run gone wrong
        super().__init__(message)
        self.code = code

def fail(message, code=2):  # from None: the message says it all, with no chained traceback
    raise MicrogptError(message, code) from None

def settings():  # {name: value} of every setting as it stands now
    return {name: globals()[name] for name in KIND if name != 'explain'}

@contextlib.contextmanager
def all_or_nothing():  # if the block fails, the settings and the model are as they were
    names = [*settings(), 'chars', 'stoi', 'BOS', 'vocab_size', 'state_dict', 'params']
    before = {name: globals()[name] for name in names if name in globals()}
    try:
        yield
    except BaseException:  # Ctrl-C too
        for name in names:
            globals().pop(name, None)
        globals().update(before)
        raise

def configure(argv):
    """Check the --name=value flags, and every setting with them; then apply them over
    the settings as they stand (the defaults, or what a notebook cell or a program
    assigned), where they stay. Returns {name: value} of the flags. Raises MicrogptError."""
    given = {}
    for i, arg in enumerate(argv):
        name, has_value, text = arg[2:].partition('=')
        kind = KIND.get(name) if arg.startswith('--') else None
        if kind is None:
            close = difflib.get_close_matches(name or arg, KIND, n=1)
            hint = f'did you mean --{close[0]}?' if close else 'see --help'
            fail(f'unknown setting {arg!r}; {hint}')
        if name in given:
            fail(f'--{name} is given twice; give it once')
        if not has_value and kind is not bool:
            value = argv[i + 1] if i + 1 < len(argv) else 'VALUE'
            fail(f'--{name} needs "=" before its value: write --{name}={value}')
        text = text if has_value else 'true'  # a bare switch turns it on
        if kind is bool and text.lower() not in ('true', 'false'):
            fail(f'--{name} takes True or False, not {text!r}')
        try:
            given[name] = text.lower() == 'true' if kind is bool else kind(text)
        except ValueError:
            whole = 'a whole number' if kind is int else 'a number'
            fail(f'--{name} takes {whole}, not {text!r}')
    s = {**settings(), **given}
    check_settings(s, shape=not (s['load'] or s['resume']))  # else the file's: load_model()
    run_only = ('save', 'load', 'resume', 'explain')  # main() reads these from given
    globals().update({name: value for name, value in given.items() if name not in run_only})
    return given

def check_settings(s, where='', shape=True):  # s: {name: value}; stops at the first bad one
    for name, value in s.items():  # a cell can assign anything: of its kind, or a whole number
        kind = float if name == 'init_std' else KIND[name]
        if type(value) is not kind and not (kind is float and type(value) is int) and not (
                name == 'init_std' and value is None):
            fail(f'{where}{name} must be {kind.__name__}, not {value!r}')
    if shape and min(s[k] for k in SHAPE) < 1:
        fail(f'{where}n_layer, n_embd, n_head and block_size must be at least 1')
    if shape and s['n_embd'] % s['n_head']:
        fail(f'{where}n_embd={s["n_embd"]} must be a multiple of n_head={s["n_head"]}')
    if shape and len(s['prompt']) >= s['block_size']:
        fail(f'{where}--prompt must be shorter than block_size={s["block_size"]}')
    if min(s['batch_size'], s['workers']) < 1:
        fail(f'{where}batch_size and workers must be at least 1')
    counts = ('num_steps', 'num_samples', 'eval_interval', 'eval_iters', 'eval_docs', 'seed')
    if min(s[k] for k in counts) < 0:
        fail(f'{where}{", ".join(counts)} cannot be negative')
    if not all(0 < s[k] < math.inf for k in ('learning_rate', 'eps', 'temperature')):
        fail(f'{where}learning_rate, eps and temperature must be finite and > 0')
    if s['init_std'] is not None and not 0 <= s['init_std'] < math.inf:
        fail(f'{where}init_std must be finite and >= 0')
    if not (0 <= s['beta1'] < 1 and 0 <= s['beta2'] < 1):
        fail(f'{where}beta1 and beta2 must be at least 0 and below 1')
    if s['load'] and s['resume']:
        fail(f'{where}--load and --resume both read a model: give one of them')

def help_text():  # each flag, its value now, and the comment beside its setting
    try:
        with open(__file__, encoding='utf-8') as f:
            comments = dict(re.findall(r'^(\w+) = .*?  # (.*)$', f.read(), re.M))
    except (NameError, OSError):  # pasted into a notebook: no file to read
        comments = {}
    comments['explain'] = 'after sampling, an x-ray of the model reading this text'
    lines = ['usage: python microgpt.py [--name=value ...]  (a bare --switch means True)']
    for part, names in FLAGS.items():
        lines.append(f'{part}:')
        for name in names.split():
            value = repr(settings()[name]) if name in settings() else 'TEXT'
            flag = f'--{name}={value}'
            lines.append(f'  {flag:25} {comments.get(name, "")}')
    return '\n'.join(lines)


# --- files: the text, and the model as JSON, checked as untrusted input ------
def input_path():  # input_file, or by default the input.txt beside this file
    if input_file != 'input.txt' or os.path.exists(input_file) or '__file__' not in globals():
        return input_file
    beside = os.path.join(os.path.dirname(os.path.abspath(__file__)), input_file)
    return beside if os.path.exists(beside) else input_file

def read_text(path, limit=2**28):  # the text of a UTF-8 file of at most 256 MB
    try:
        with open(path, 'rb') as f:  # 1 MB at a time: f.read(limit) takes all of limit at once
            raw = b''.join(itertools.islice(iter(lambda: f.read(2**20), b''), limit // 2**20 + 1))
        if len(raw) > limit:
            fail(f'input file {path!r} is over {limit >> 20} MB; use a part of it')
        return raw.decode('utf-8-sig')  # -sig: drop a byte-order mark
    except (OSError, UnicodeDecodeError) as e:  # missing, a folder, not UTF-8, ...
        fail(f'cannot read input file {path!r} ({e}); pass a UTF-8 text file')

def check_known(text, what):  # the model has a token for each character of text
    unknown = ''.join(sorted(set(text) - set(chars)))
    if unknown:
        fail(f'the model does not know these characters of {what}: {unknown[:20]!r}; '
             f'it knows {"".join(chars)[:60]!r}')

def check_save_path(path):  # before any work: a save that would fail, or destroy a file, fails
    try:
        if os.path.isdir(path):
            fail(f'--save={path} is a folder; save the model as a file')
        if os.path.isfile(path):
            with open(path, 'rb') as f:
                is_model = f.read(11) == b'{"config": '  # what save_model() writes first
            if not is_model:
                fail(f'--save={path} is a file but not a model (the input file?); use a new name')
        with open(f'{path}.tmp{os.getpid()}', 'w', encoding='utf-8'):
            pass
        os.remove(f'{path}.tmp{os.getpid()}')
    except OSError as e:
        fail(f'cannot save the model to {path!r}: {e.strerror}')

def pack(floats):  # Adam's m or v as text: exact, and 3x faster to write than JSON numbers
    return base64.b64encode(struct.pack(f'<{len(floats)}d', *floats)).decode('ascii')

def unpack(text, n):  # -> n finite floats, or None
    try:
        raw = base64.b64decode(text, validate=True)
    except (TypeError, ValueError):  # not a string, or not base64
        return None
    if len(raw) != 8 * n:
        return None
    floats = list(struct.unpack(f'<{n}d', raw))
    return floats if all(map(math.isfinite, floats)) else None

def save_model(path, m, v, step, input_crc):  # via a temp file, flushed, then renamed
    training = {'step': step, 'settings': {k: KIND[k](globals()[k]) for k in RUN},
                'input_crc': input_crc, 'random_state': random.getstate(),
                'm': pack(m), 'v': pack(v)}
    blob = {'config': {k: globals()[k] for k in SHAPE}, 'chars': chars,
            'state_dict': float_weights(), 'training': training}
    tmp = f'{path}.tmp{os.getpid()}'
    try:
        with open(tmp, 'w', encoding='utf-8') as f:
            f.write(json.dumps(blob))  # in one piece: 1.7x faster than json.dump(blob, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as e:
        fail(f'cannot save the model to {path!r}: {e.strerror}', 1)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)

@all_or_nothing()
def load_model(path, given, resuming):
    """Read a model file, all of it checked as untrusted input before anything is built
    from it. Its shape, and to resume its run's settings, replace the settings; a flag
    that contradicts one is an error. Returns, to resume, {'step', 'm', 'v',
    'random_state', 'input_crc'}, else None. Raises MicrogptError."""
    bad = f'model file {path!r} is not a microgpt model (use a file made by --save):'
    try:
        with open(path, 'rb') as f:
            blob = json.loads(f.read())
    except OSError as e:
        fail(f'cannot read model file {path!r}: {e.strerror}')
    except (ValueError, RecursionError, MemoryError) as e:  # not JSON, or nested too deep
        fail(f'{bad} {type(e).__name__} {str(e)[:60]}')
    if type(blob) is not dict:
        fail(f'{bad} it needs the keys config, chars and state_dict')
    config, vocab, weights = blob.get('config'), blob.get('chars'), blob.get('state_dict')
    if type(config) is not dict or set(config) != set(SHAPE) or any(
            type(config[k]) is not int for k in SHAPE):
        fail(f'{bad} its config needs whole numbers {SHAPE}')
    if type(vocab) is not list or len(set(vocab)) != len(vocab) or any(
            type(c) is not str or len(c) != 1 for c in vocab):
        fail(f'{bad} its chars must be distinct single characters')

    training = blob.get('training') if resuming else {}
    if type(training) is not dict:
        fail(f'{path!r} holds no training state (saved before --resume existed); '
             f'--load starts a new schedule from its weights')
    if resuming:
        run = training.get('settings')
        if type(run) is not dict or set(run) != set(RUN) or any(
                type(run[k]) is not KIND[k] for k in RUN):
            fail(f'{bad} its training settings need {RUN}')
        config = {**config, **run}

    for name in [name for name in config if name in given]:
        if given[name] != config[name]:
            fail(f'--{name}={given[name]} contradicts {path!r}, with {name}={config[name]}')
    check_settings({**settings(), **config}, f'with the model in {path!r}: ')
    globals().update(config)
    use_vocab(vocab)

    if type(weights) is not dict or len(weights) != 3 + 6 * n_layer:
        fail(f'{bad} not all the matrices')
    for name, (rows, cols) in shapes().items():  # no bigger than the file: its size bounds it
        mat = weights.get(name)
        if type(mat) is not list or len(mat) != rows or any(
                type(row) is not list or len(row) != cols for row in mat):
            fail(f'{bad} {name} shape')
        if not all(type(x) is float and math.isfinite(x) for row in mat for x in row):
            fail(f'{bad} {name} holds something other than finite decimal numbers')
    use_weights(weights)
    if not all(map(math.isfinite, gpt(BOS, 0, *empty_cache(), float_weights()))):
        fail(f'{bad} its weights make nan or inf logits')
    return check_training(training, bad) if resuming else None

def check_training(training, bad):  # the state to resume, checked: see load_model()
    step = training.get('step')
    if type(step) is not int or not 0 <= step <= num_steps:
        fail(f'{bad} its step must be a whole number from 0 to num_steps={num_steps}')
    if type(training.get('input_crc')) is not int:
        fail(f'{bad} its input_crc must be a whole number')
    m = unpack(training.get('m'), len(params))
    v = unpack(training.get('v'), len(params))
    if m is None or v is None or min(v) < 0:
        fail(f"{bad} Adam's m and v need {len(params)} finite numbers each, v >= 0")
    try:
        state = training.get('random_state')
        state = (state[0], tuple(state[1]), state[2])
        random.Random().setstate(state)  # which checks it
    except (TypeError, ValueError, IndexError, KeyError, OverflowError):
        fail(f"{bad} its random_state is not one that Python's random module saved")
    return dict(training, m=m, v=v, random_state=state)


# --- the training window: progress, held-out loss, a chart; Ctrl-C stops it --
def in_terminal():  # a terminal redraws a line in place; elsewhere, whole lines
    isatty = getattr(sys.stdout, 'isatty', None)  # IDLE and notebooks have other streams
    return bool(isatty and isatty())

def fmt(loss):  # four decimals; huge ones short: 1.2e+21
    return f'{loss:.4f}' if abs(loss) < 1e4 else f'{loss:.3g}'

def progress_of(name):  # -> progress(done, total) for evaluate(), from 1 s on: in place in a
    start = time.time()  # terminal; elsewhere (a pipe, a notebook) a line every 10 s
    shown = [start]
    def progress(done, total):
        line = f'evaluating {name}: {done} / {total}'
        if in_terminal() and time.time() - start > 1:
            print(line if done < total else ' ' * len(line), end='\r', flush=True)
        elif not in_terminal() and time.time() - shown[-1] >= 10:
            print(line, flush=True)
            shown.append(time.time())
    return progress

def chart(curves, height=8, width=60):
    """Curves on one grid, as lines of at most 72 columns. curves: {mark: [(step, loss)]},
    in order; a later curve's mark is drawn over an earlier one's. A column shows a
    curve's mean over its steps: the lowest mean on the bottom row, the highest on the
    top one, unless they are within 1%: then the rows span 1%, and the curves look flat."""
    first = min(step for points in curves.values() for step, _ in points)
    last = max(step for points in curves.values() for step, _ in points)
    columns = {}
    for mark, points in curves.items():
        for step, loss in points:
            column = (step - first) * (width - 1) // max(1, last - first)
            columns.setdefault((mark, column), []).append(loss)
    means = {key: sum(losses) / len(losses) for key, losses in columns.items()}
    lo = min(means.values())
    span = max(max(means.values()) - lo, abs(lo) / 100) or 1.0
    grid = [[' '] * width for _ in range(height)]
    for (mark, col), y in means.items():
        grid[height - 1 - round((y - lo) / span * (height - 1))][col] = mark
    edges = {0: fmt(lo + span), height - 1: fmt(lo)}
    lines = [f'{edges.get(r, ""):>10} │{"".join(row)}' for r, row in enumerate(grid)]
    steps = f'step {first:<{width - 17}}{f"step {last}":>12}'
    return lines + [f'{"":10} └{"─" * width}', f'{"":12}{steps}']

def run_training(train_docs, val_docs, m, v, start=0):
    """Part 1's train() from step start, shown as it goes, with the held-out loss every
    eval_interval steps and a chart at the end. Ctrl-C or SIGTERM stops it between two
    steps. Returns the steps done. Raises MicrogptError at a nan or inf loss."""
    losses = []
    means = []  # of the last 100 losses
    vals = []   # (step, held-out loss)
    asks = []   # to stop, from Ctrl-C or SIGTERM
    warned = False  # that the loss diverges
    width = 0  # of the progress line last drawn
    def ask(signum, frame):
        asks.append('Ctrl-C' if signum == signal.SIGINT else 'SIGTERM')
    n = min(workers, batch_size)
    if n > 1 and 'fork' not in multiprocessing.get_all_start_methods():
        print('training in one process: this platform cannot fork worker processes')
        n = 1
    started = time.time()
    live = in_terminal()  # asked once: stdout does not change during a run
    step = start - 1

    with contextlib.ExitStack() as undo:  # all set up here is undone, however it ends
        for signum in (signal.SIGINT, signal.SIGTERM):
            if threading.current_thread() is not threading.main_thread():
                break  # only the main thread can take signals
            previous = signal.signal(signum, ask)
            undo.callback(signal.signal, signum, previous)
        undo.enter_context(resting_collector())
        undo.enter_context(worker_pool(n))
        for step, loss in train(train_docs, m, v, start):
            if not math.isfinite(loss):
                fail(f'loss nan/inf at step {step + 1}: lower --learning_rate', 1)
            losses.append(loss)
            means.append(sum(losses[-100:]) / len(losses[-100:]))
            if means[-1] > 1.5 * math.log(vocab_size) and not warned:  # once
                warned = True
                print(f'step {step + 1}: diverges, mean loss {fmt(means[-1])} > ln({vocab_size})'
                      f' = {math.log(vocab_size):.2f} (a uniform guess): lower --learning_rate'
                      f' (now {learning_rate})')
            last = step + 1 == num_steps or bool(asks)
            if eval_interval and eval_iters and val_docs and ((step + 1) % eval_interval == 0
                                                              or last):
                vals.append((step + 1, evaluate(val_docs[:eval_iters])))
            last = last or bool(asks)  # a stop asked for in the evaluation
            if live or last or (step + 1) % max(1, num_steps // 10) == 0:
                ms = (time.time() - started) * 1000 / (step + 1 - start)
                held = f'val {fmt(vals[-1][1])} | ' if vals else ''
                line = (f'step {step + 1:5d} / {num_steps} | loss {fmt(loss)} | mean '
                        f'{fmt(means[-1])} | {held}{ms:.1f} ms/step | '
                        f'eta {ms * (num_steps - step - 1) / 1000:.0f}s ')
                if live:  # clipped: a line that wraps cannot be drawn over
                    line = line[:shutil.get_terminal_size().columns - 1]
                print(line.ljust(width), end='\r' if live and not last else '\n',
                      flush=True)
                width = len(line)  # a shorter line next covers all of this one
            if asks:
                print(f'stopped by {asks[0]} at step {step + 1}')
                break

    if not all(math.isfinite(p.data) for p in params):
        fail(f'the weights became nan or inf at step {step + 1}: lower --learning_rate', 1)
    if len(means) > 1:
        print('\n'.join(chart({'·': list(enumerate(means, start + 1)), 'o': vals})))
        held = f'   o held-out loss ({len(val_docs[:eval_iters])} docs)' if vals else ''
        print(f'{"":12}· train loss, mean of the last 100 steps{held}')
    return step + 1


# --- explain(): the model reading one text, position by position -------------
def explain(text):
    """Show the model reading text: at each position the real next character's probability
    and loss, the top 5 guesses, and each head's attention over what it has read. Returns
    the rows, each {'probs', 'loss', 'attention'}. Raises MicrogptError."""
    if 'state_dict' not in globals():
        fail('there is no model yet: run main(), or make one with use_vocab() and use_weights()')
    check_known(text, 'the text to explain')
    shown = ['·' if c == ' ' else c if c.isprintable() else '¤' for c in chars] + ['¶']
    tokens = encode(text)
    print(f'explain {text!r} (¶ is BOS, the start or the end; · a space; ¤ another invisible)')
    if len(tokens) - 1 > block_size:
        print(f'the context holds {block_size} positions: this explains {text[:block_size]!r}')
        tokens = tokens[:block_size + 1]
    print('pos read next  p(next)   loss | top 5 guesses')
    sd = float_weights()
    keys, values = empty_cache()
    rows = []
    for pos_id in range(len(tokens) - 1):
        token_id, target_id = tokens[pos_id], tokens[pos_id + 1]
        attention = []  # each head's weights, layer by layer
        logits = gpt(token_id, pos_id, keys, values, sd, attention)
        probs = softmax(logits)
        loss = cross_entropy(logits, target_id)
        rows.append({'probs': probs, 'loss': loss, 'attention': attention})
        top = sorted(range(vocab_size), key=lambda i: -probs[i])[:5]
        bars = ' '.join(f'{shown[i]} {probs[i]:4.0%} {"█" * round(5 * probs[i]):5}' for i in top)
        print(f'{pos_id:3d}   {shown[token_id]}    {shown[target_id]}  '
              f'{probs[target_id]:7.4f} {loss:6.3f} | {bars}')
        print(f'{"reads":>21}', *(shown[i] for i in tokens[:pos_id + 1]))
        for h, weights in enumerate(attention):
            shades = ' '.join(' ░▒▓█'[round(4 * w)] for w in weights)
            print(f'{f"layer {h // n_head} head {h % n_head}":>21} {shades}')
    mean = sum(row['loss'] for row in rows) / len(rows)
    print(f'mean loss {mean:.4f} over {len(rows)} predictions')
    return rows


# --- the command line: where an error becomes a message and an exit code ---
def command_line(argv):
    host = signal.signal(signal.SIGTERM, signal.default_int_handler)  # cleans up as Ctrl-C
    if hasattr(sys.stdout, 'reconfigure'):  # IDLE, IPython: other streams
        sys.stdout.reconfigure(errors='replace')  # what a console cannot show: '?'
    code = 0
    try:
        main(argv)
    except MicrogptError as e:
        message, code = str(e), e.code
    except KeyboardInterrupt:
        message, code = 'interrupted', 130
    except MemoryError:
        message, code = 'out of memory: the model or the data is too big for this machine', 1
    except BrokenPipeError:  # piped into `head`: stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    finally:
        signal.signal(signal.SIGTERM, host)  # IDLE, %run and runpy get theirs back
    if code:
        print(f'microgpt: {message}', file=sys.stderr)
        sys.exit(code)

if __name__ == '__main__':
    if '__file__' in globals():  # a script: python, IDLE's Run Module, %run, runpy
        command_line(sys.argv[1:])
    else:  # pasted into a notebook cell, where sys.argv is the kernel's
        main()
