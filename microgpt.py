"""microgpt: a whole GPT in plain Python, standard library only: data, tokenizer, autograd,
model, Adam, training, evaluation and sampling. `python microgpt.py` runs it; --help lists
its settings. Read it from the top. Each part uses only the parts above it, so the file cut
at any `# ====` ruler, with `main()` added, still trains and samples:

Part 1 is the GPT, whole on its own: it ends with its own main().
Part 2 makes it fast without changing what it computes, and Part 4's run proves it does.
Part 3 is what production changes in the model: subword tokens and 8-bit weights, measured.
Part 4 runs it: its main() replaces Part 1's. After it come only guard rails: stop there."""
import math, random, zlib  # Part 1
from operator import mul
import contextlib, gc  # Part 2
import array, base64, collections, itertools, sys  # Part 3
import json, os, pathlib, shlex, signal, threading, time  # Part 4
import difflib, functools, linecache, re, tempfile  # the guard rails

# ============================= Part 1: the GPT ===============================
# --- settings: the reference run ---------------------------------------------
input_file = 'input.txt'  # the training text: one document per line
paragraphs = False        # True: a document per paragraph, line breaks kept
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
num_samples = 20          # how many samples to print at the end
seed = 42                 # one seed for the training order, the initial weights and the samples

# --- dataset: each line a document; a tenth, chosen by its text, held out ----
def split_docs(text):  # -> (train_docs, val_docs): the non-blank lines (or paragraphs)
    ends = '\n\n' if paragraphs else '\n'  # an empty line ends a paragraph
    docs = [doc.strip('\n') for doc in text.replace('\r\n', '\n').split(ends) if doc.strip()]
    crc = {doc: zlib.crc32(doc.encode('utf-8')) for doc in docs}  # a doc's side: by its text
    val_texts = {doc for doc in docs if crc[doc] % 10 == 0}  # about 1 in 10
    if not val_texts or val_texts == set(docs):  # a tiny file: one held out
        val_texts = {min(docs, key=crc.get, default='')}
    train_docs = [doc for doc in docs if doc not in val_texts]
    random.shuffle(train_docs)
    return train_docs, [doc for doc in docs if doc in val_texts]

# --- tokenizer: a token per character, plus BOS, which starts and ends a doc --
def use_vocab(vocab):  # vocab: each token's text, in token-id order
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
class Value:
    """One number in the graph: its data, d(loss)/d(data), its local gradients."""
    __slots__ = ('data', 'grad', '_children', '_local_grads')  # no dict: faster
    def __init__(self, data, children=(), local_grads=()):
        self.data, self.grad = data, 0.0
        self._children, self._local_grads = children, local_grads  # d(self)/d(child)
    def __add__(self, other):
        other = other if isinstance(other, Value) else Value(other)
        return Value(self.data + other.data, (self, other), (1.0, 1.0))
    def __mul__(self, other):
        other = other if isinstance(other, Value) else Value(other)
        return Value(self.data * other.data, (self, other), (other.data, self.data))
    def __pow__(self, k): return Value(self.data ** k, (self,), (k * self.data ** (k - 1),))
    def __rpow__(self, base):  # x ** Value: not an op here, as in micrograd
        raise TypeError("x ** a Value: use (y * log(x)).exp(), with microgpt's log()")
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
    def __repr__(self): return f'Value(data={self.data}, grad={self.grad})'
    def backward(self):  # the chain rule: each node passes local_grad * grad to each child
        order, seen, stack = [], set(), [self]  # a search: no recursion
        while stack:
            v = stack.pop()
            if v is None:  # under it, a node whose children are all in order
                order.append(stack.pop())  # after them: a topological order
            elif v._children and v not in seen:  # a leaf passes nothing on
                if v._local_grads is None:  # freed: as in PyTorch, an error
                    raise RuntimeError('backward() through a used-up graph: compute it again')
                seen.add(v)
                stack += [v, None, *reversed(v._children)]  # children come off first to last
        self.grad += 1.0  # d(self)/d(self); a leaf's adds up, as in PyTorch
        for v in reversed(order):  # after all that use it, its grad is whole
            for child, local_grad in zip(v._children, v._local_grads):
                child.grad += local_grad * v.grad
            v._local_grads = None  # used up: freed, as in PyTorch

# From here on, every function takes Values (a graph) or plain floats (none).
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
    top = max(data(logit) for logit in logits)  # changes nothing, but keeps exp() finite
    exps = [exp(logit - top) for logit in logits]
    inv_total = sum(exps) ** -1  # one node for 1 / total, not a division per output
    return [e * inv_total for e in exps]

def rmsnorm(x):  # rescale x to a mean square of 1
    scale = (dot(x, x) / len(x) + 1e-5) ** -0.5
    return [xi * scale for xi in x]

def empty_cache():  # keys and values: per layer, a vector per position read
    return [[] for _ in range(n_layer)], [[] for _ in range(n_layer)]

def gpt(token_id, pos_id, keys, values, sd=None, attention=None):
    """The logits (vocab_size,) of the next token. keys, values: per layer, the positions read
    so far; this one's are added. sd: the weights; attention: gets each head's weights."""
    sd = sd or state_dict
    head_dim = n_embd // n_head
    x = [t + p for t, p in zip(sd['wte'][token_id], sd['wpe'][pos_id])]  # token + position
    x = rmsnorm(x)  # not redundant: the residual stream below starts from this x
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
            # q_h . k_t sums head_dim products: variance head_dim; / sqrt keeps softmax unsaturated
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
    top = max(data(logit) for logit in logits)
    return log(sum(exp(logit - top) for logit in logits)) + top - logits[target]

def doc_losses(tokens, sd=None):  # a loss per prediction, window by window
    losses = []
    for start in range(0, max(1, len(tokens) - 1 - block_size // 2), (block_size + 1) // 2):
        keys, values = empty_cache()  # a window: positions from 0 again
        for pos_id in range(min(block_size, len(tokens) - 1 - start)):
            logits = gpt(tokens[start + pos_id], pos_id, keys, values, sd)
            if start == 0 or pos_id >= block_size // 2:  # not scored before
                losses.append(cross_entropy(logits, tokens[start + pos_id + 1]))
    return losses

def window(tokens):  # a long document: one of the windows doc_losses() reads, at random
    last = len(tokens) - 1 - block_size // 2  # the last window starts before this
    start = random.randrange(0, last, (block_size + 1) // 2) if len(tokens) > block_size + 1 else 0
    return tokens[start:start + block_size + 1]  # so a doc's start is often trained on

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

def train(train_docs, m, v, start=0):  # yields (step, loss, batch); m, v: Adam's
    for step in range(start, num_steps):
        docs = [train_docs[(step * batch_size + j) % len(train_docs)] for j in range(batch_size)]
        batch = [window(encode(doc)) for doc in docs]
        loss = batch_loss(batch)
        adam_step(step, m, v, learning_rate * (1 - step / num_steps))  # decays to 0
        yield step, loss, batch

# --- evaluation: the mean loss per predicted token, on documents not trained on
def evaluate(docs, sd=None):  # sd: the weights, as in sample()
    losses = []
    for doc in docs:
        losses += [data(loss) for loss in doc_losses(encode(doc), sd)]
    return math.fsum(losses) / len(losses)  # fsum: exact, in any order

# --- sampling: feed the model its own choices, one token at a time -----------
def sample(sd=None):  # a new document that starts with prompt: block_size at most
    keys, values = empty_cache()
    tokens = encode(prompt)[:-1]  # BOS, then the prompt's tokens
    for pos_id in range(block_size):
        logits = gpt(tokens[pos_id], pos_id, keys, values, sd)
        if pos_id + 1 < len(tokens):
            continue  # still reading the prompt
        top = max(map(data, logits))
        probs = softmax([(data(logit) - top) / temperature for logit in logits])  # no overflow
        token_id = random.choices(range(vocab_size), weights=probs)[0]
        if token_id == BOS:
            break  # the model says the document ends here
        tokens.append(token_id)
    return decode(tokens)

# --- run: read, split, train, report the held-out loss, sample ---------------
def main():  # Part 4's main() replaces this one: the same training, checked and shown
    random.seed(seed)
    with open(input_file, encoding='utf-8') as f:
        train_docs, val_docs = split_docs(f.read())
    use_vocab(sorted(set(''.join(train_docs + val_docs))))
    use_weights()
    m, v = [0.0] * len(params), [0.0] * len(params)  # Adam's running means, from 0
    for step, loss, _ in train(train_docs, m, v):
        if (step + 1) % max(1, num_steps // 10) == 0:  # a line every tenth of the run
            print(f'step {step + 1:5d}/{num_steps} | loss {loss:.4f}')
    print(f'val loss {evaluate(val_docs):.4f} on {len(val_docs)} held-out docs')
    for i in range(num_samples):
        print(f'sample {i + 1:2d}: {sample()}')

# ================ Part 2: everything else is just efficiency =================
# Each replaces a Part 1 function (kept as part1_<name>); self_check() proves it exact.
part2 = True              # False: all of Part 2 off, Part 1 exactly as written
fused = True              # one graph node for a dot, softmax output or loss
tape = True               # backward() in training reads a tape, not a search
no_grad = True            # evaluate and sample on plain floats, with no graph
pause_gc = True           # no garbage collector in training: no cycles to free

# --- fused nodes (~ tensor kernels): gradients by hand, clarity traded for speed
part1_dot, part1_linear, part1_softmax, part1_cross_entropy = dot, linear, softmax, cross_entropy

def dot(a, b):  # one node: d/da_i = b_i, d/db_i = a_i
    if not (part2 and fused and a and isinstance(a[0], Value) and isinstance(b[0], Value)):
        return part1_dot(a, b)
    ad = [ai.data for ai in a]
    bd = [bi.data for bi in b]
    return Value(sum(map(mul, ad, bd)), a + b, bd + ad)

def linear(x, w):  # one node per output: d/dw_ij = x_j, d/dx_j = w_ij
    if not (part2 and fused and isinstance(x[0], Value) and isinstance(w[0][0], Value)):
        return part1_linear(x, w)
    xd = [xi.data for xi in x]  # read x's data once, for every row
    rows = [[wi.data for wi in w_row] for w_row in w]
    return [Value(sum(map(mul, wd, xd)), w_row + x, xd + wd) for w_row, wd in zip(w, rows)]

def softmax(logits):  # one node per output: d p_i / d logit_j = p_i * (1[i = j] - p_j)
    if not (part2 and fused and isinstance(logits[0], Value)):
        return part1_softmax(logits)
    probs = part1_softmax([logit.data for logit in logits])
    return [Value(p, logits, [p * ((i == j) - q) for j, q in enumerate(probs)])
            for i, p in enumerate(probs)]

def cross_entropy(logits, target):  # one node: d loss / d logit_j = p_j - 1[j = target]
    if not (part2 and fused and isinstance(logits[0], Value)):
        return part1_cross_entropy(logits, target)
    floats = [logit.data for logit in logits]
    grads = [p - (j == target) for j, p in enumerate(part1_softmax(floats))]
    return Value(part1_cross_entropy(floats, target), logits, grads)

# --- a tape (~ PyTorch's autograd records each op as it runs): no search
part1_Value, part1_batch_loss = Value, batch_loss
recording = None  # in batch_loss: each node made from others, in order

class Value(part1_Value):  # Part 1's, and in batch_loss, recorded
    __slots__ = ()
    def __init__(self, data, children=(), local_grads=()):
        self.data, self.grad = data, 0.0  # as in Part 1, not called: faster
        self._children, self._local_grads = children, local_grads
        if children and recording is not None:
            recording.append(self)
    def backward(self):  # in batch_loss: its recording, not a search
        if recording is None:
            return part1_Value.backward(self)
        self.grad += 1.0
        untouched = []  # another graph's, for a later backward()
        for v in reversed(recording):  # newest first: after its parents
            if v.grad == 0.0:  # passes nothing on (relu makes many such)
                untouched.append(v)
                continue
            for child, local_grad in zip(v._children, v._local_grads):
                child.grad += local_grad * v.grad
            v._local_grads = None  # used up, as in Part 1
        recording[:] = reversed(untouched)  # a next backward(): these, and what is made after

def batch_loss(batch):  # Part 1's, with the nodes it makes recorded
    global recording
    recording = [] if part2 and tape else None
    try:
        return part1_batch_loss(batch)
    finally:
        recording = None  # outside it: nothing recorded, nothing kept

# --- plain floats (~ torch.no_grad): evaluation and sampling build no graph -
part1_evaluate, part1_sample = evaluate, sample

def float_weights():  # state_dict as plain floats: gpt() builds no graph
    return {name: [[p.data for p in row] for row in mat] for name, mat in state_dict.items()}

def sample(sd=None):
    return part1_sample(float_weights() if part2 and no_grad and sd is None else sd)

def evaluate(docs, sd=None, each=iter):  # each(docs): the docs as read, for a progress line
    sd = float_weights() if part2 and no_grad and sd is None else sd
    return part1_evaluate(each(docs), sd)

# --- a resting collector (~ memory management): the graph has no cycles to free
def resting_collector():  # in training: it would scan the graph again and again
    rest = contextlib.ExitStack()  # for a with block, which undoes it
    if part2 and pause_gc and gc.isenabled():
        gc.disable()
        rest.callback(gc.enable)
    return rest

# --- the proof: Part 2 computes what Part 1 does; backprop is the chain rule
def loss_and_grads(tokens):  # one doc's loss and every gradient (then 0)
    loss = batch_loss([tokens])
    grads = [p.grad for p in params]
    for p in params:
        p.grad = 0.0
    return [loss], grads

def rel_diff(a, b):  # the largest |a_i - b_i|, relative to the largest |b_i|; none: 0
    scale = max(map(abs, b), default=0.0) or 1.0
    return max((abs(x - y) for x, y in zip(a, b)), default=0.0) / scale

def float_loss(tokens, i, dw):  # Part 1's mean loss on plain floats, weight i moved by dw
    w = params[i].data
    params[i].data = w + dw
    losses = doc_losses(tokens, float_weights())
    params[i].data = w
    return sum(losses) / len(losses)

def self_check(doc, val_docs, n_fd=20, h=1e-6):
    """-> ({what: relative difference} of Part 2's loss, gradients, held-out loss from Part 1's
    as written; backprop's from finite differences; on how many weights). Changes nothing."""
    global part2
    tokens = encode(doc)[:block_size + 1]
    val_docs = [d[:2 * block_size] for d in val_docs]  # long ones: two contexts, windows
    fast = (*loss_and_grads(tokens), [evaluate(val_docs)])
    on = part2
    part2 = False  # Part 1 exactly as written
    try:
        slow = (*loss_and_grads(tokens), [evaluate(val_docs)])
    finally:
        part2 = on
    diffs = dict(zip(('loss', 'gradients', 'held-out loss'), map(rel_diff, fast, slow)))
    grads = slow[1]
    moved = [i for i, g in enumerate(grads) if g]  # weights this doc reaches
    moved = moved[::max(1, len(moved) // n_fd)][:n_fd]
    # central finite differences: d loss / d w ~ (loss(w + h) - loss(w - h)) / 2h
    fd = [(float_loss(tokens, i, h) - float_loss(tokens, i, -h)) / (2 * h) for i in moved]
    return diffs, rel_diff(fd, [grads[i] for i in moved]), len(moved)

# ============= Part 3: what production changes in the model ==================
# Not exact: each changes the model, so each is measured (tests/README.md).
bpe_merges = 0            # subword tokens: merges of frequent pairs; 0: characters
int8 = False              # --save 8-bit weights, a scale per row; no --resume

# --- subword tokens (~ GPT-2's byte-pair encoding): frequent pairs merge --
merges = {}  # (left id, right id) -> merged token's id, in the order learned
char_encode = encode

def merge(ids, pair, new_id):  # each pair, left to right, becomes new_id
    out = []
    for t in ids:
        if out and (out[-1], t) == pair:
            out[-1] = new_id
        else:
            out.append(t)
    return out

def learn_merges(docs, n):  # -> n times the most frequent pair, merged
    seqs = [char_encode(doc)[1:-1] for doc in docs]  # character ids
    pairs = []
    for new_id in range(len(chars), len(chars) + n):
        counts = collections.Counter(itertools.chain.from_iterable(zip(s, s[1:]) for s in seqs))
        if not counts:
            break  # every document is one token
        pair = max(counts, key=counts.get)  # a tie: the pair counted first
        seqs = [merge(s, pair, new_id) for s in seqs]
        pairs.append(pair)
    return pairs

def use_merges(pairs):  # after use_vocab(characters): a token per pair
    global merges
    texts = [c for c in chars if len(c) == 1]  # a merged token has 2 or more
    merges = {}
    for a, b in pairs:
        merges[a, b] = len(texts)
        texts.append(texts[a] + texts[b])
    use_vocab(texts)

def encode(doc):  # characters, then merged: always the pair learned first
    ids = char_encode(doc)
    while True:
        pair = min(zip(ids, ids[1:]), key=lambda p: merges.get(p, math.inf), default=None)
        if pair not in merges:
            return ids
        ids = merge(ids, pair, merges[pair])

def bits_per_char(loss, docs):  # loss per token -> bits per character
    predicted = [t for doc in docs for t in encode(doc)[1:]]  # each scored once
    n_chars = sum(len(chars[t]) if t != BOS else 1 for t in predicted)  # end: 1
    return loss * len(predicted) / n_chars / math.log(2)

# --- 8-bit weights (~ quantized inference): a byte per weight, a scale per row
def quantize(mat):  # rows of floats -> rows of [scale, base64 of signed bytes]
    rows = []
    for row in mat:
        scale = max(max(map(abs, row)) / 127, sys.float_info.min)  # the largest: +-127
        q = array.array('b', [round(x / scale) for x in row])
        rows.append([scale, base64.b64encode(q.tobytes()).decode('ascii')])
    return rows

def dequantize(rows):  # -> floats, each within scale / 2 of its weight
    return [[scale * q for q in array.array('b', base64.b64decode(text, validate=True))]
            for scale, text in rows]

# ============================ Part 4: running it =============================
eval_interval = 100       # score eval_iters held-out docs this often; 0: never
eval_iters = 50           # held-out docs scored then, spread over all of them
eval_docs = 5000          # held-out docs scored at the end (as many train docs)
save = ''                 # write the model, and what --resume needs, to this file
load = ''                 # start from a saved model's weights, with a new schedule
resume = ''               # go on with a saved run, exactly where it stopped
embeddings = False        # after sampling: each token's nearest; a map of them

# --- run: every step of `python microgpt.py`, in order -----------------------
def main(argv=()):
    """Train a GPT and sample from it, as `python microgpt.py` does. argv: --name=value
    flags. Returns what the run produced: losses, compute, samples. Raises MicrogptError."""
    run = setup(argv)  # where the run's state is born: settings, documents, model, Adam
    train_docs, val_docs = run['train_docs'], run['val_docs']
    describe(run)
    if train_docs:  # else no text was read: nothing trains or is scored
        prove_part2(train_docs, val_docs)

    results = run_training(train_docs, val_docs, run['adam'])
    if run['save']:
        save_model(run['save'], run)
    elif run['adam']['step'] < num_steps:  # stopped, and nothing kept
        print('not saved: with --save=FILE a stopped run is kept, to --resume it')

    results.update(final_losses(train_docs, val_docs))
    results.update(samples(train_docs, val_docs))
    if embeddings:
        results['embeddings'] = show_embeddings()
    if run['given'].get('explain'):
        results['explain'] = explain(run['given']['explain'])
    return results

# --- errors: one class, one line: what is wrong and what to do ---------------
class MicrogptError(Exception):
    def __init__(self, message, code=2):  # exit 2: bad settings or input; 1: a run gone wrong
        super().__init__(message)
        self.code = code
    def _render_traceback_(self):  # what IPython and Jupyter show: the line, no traceback
        return [f'MicrogptError: {self}']

def fail(message, code=2):  # from None: the message says it all, no chained traceback
    raise MicrogptError(message, code) from None

def configure(argv):  # the flags -> {name: value}; the guard rails read them
    if argv:
        fail(f'{argv[0]!r}: the guard rails that read flags are cut from this file; assign '
             f'the setting before main() instead (name = value)')
    return {}

# --- setup: where a run's state is born --------------------------------------
def read_text(path, what='input file', flag='--input_file'):  # \r\n, \r: \n
    try:  # -sig: no byte-order mark
        return pathlib.Path(path).read_text(encoding='utf-8-sig')
    except (OSError, UnicodeDecodeError, MemoryError) as e:  # missing, not UTF-8, ...
        fail(f'cannot read {what} {path!r} ({str(e) or "too big"}); give {flag}=PATH, UTF-8 text')

def setup(argv):  # -> the run: its flags, documents, Adam's state, where it saves
    given = configure(argv)
    resuming = given.get('resume', resume)
    model_file = given.get('load', load) or resuming
    blob = read_model(model_file, resuming) if model_file else {}
    state = load_model(blob, resuming) if model_file else None
    path = state['input_file'] if state and 'input_file' not in given else input_file
    beside = os.path.join(os.path.dirname(globals().get('__file__', '')), path)
    path = path if os.path.exists(path) or not os.path.exists(beside) else beside
    saving = given.get('save', save) or resuming  # resumed: to its file
    needed = not model_file or num_steps or eval_docs or saving
    text = read_text(path) if needed else ''  # a saved model samples without it
    random.seed(seed)
    train_docs, val_docs = split_docs(text)
    if not model_file:  # a new model: a token per character of the text, random weights
        use_vocab(sorted(set(''.join(train_docs + val_docs))))
        use_merges(learn_merges(train_docs, bpe_merges))
        use_weights()
    if state:  # the run goes on with the random numbers as they were
        random.setstate(state['random_state'])
    adam = state or {'step': 0, 'm': [0.0] * len(params), 'v': [0.0] * len(params)}
    return {'given': given, 'train_docs': train_docs, 'val_docs': val_docs, 'adam': adam,
            'model_file': model_file, 'resumed': resuming, 'save': saving,
            'input_crc': zlib.crc32(text.encode('utf-8')), 'input_path': needed and path,
            'before': blob.get('steps', adam['step']) - adam['step']}  # earlier runs' steps

def describe(run):  # what the run starts from
    if run['resumed']:
        step = run['adam']['step']
        done = ': it is finished; --load it to train more' if step == num_steps else ''
        print(f'resuming {run["resumed"]} at step {step} of {num_steps}{done}')
    docs = f'{len(run["train_docs"])} train docs, {len(run["val_docs"])} held out'
    docs = docs if run['input_path'] else 'no text read: nothing to train or score'
    print(f'{docs} | vocab {vocab_size} | {len(params)} params | part2={part2}')

def spread(docs, n):  # n docs, evenly spread: fair, whatever their order
    return [docs[i * len(docs) // n] for i in range(n)] if n < len(docs) else docs

def prove_part2(train_docs, val_docs):  # before training: see self_check()
    diffs, fd, n = self_check(train_docs[0], sorted(spread(val_docs, 10), key=len)[:2])
    worst = max(diffs, key=diffs.get)
    if diffs[worst] > 1e-9:  # fused nodes make the loss and gradients; no_grad the held-out loss
        off = {'--no_grad=False' if what == 'held-out loss' else '--fused=False'
               for what, diff in diffs.items() if diff > 1e-9}  # the narrowest switches
        fail(f'Part 2 and Part 1 differ in the {worst} by {diffs[worst]:.1e} (relative; 1e-9 '
             f'allowed): Part 1 was probably edited; {" ".join(sorted(off))} or --part2=False '
             f'trains with it as written')
    same = f'Part 2 equals Part 1 to {diffs[worst]:.0e}' if part2 else 'Part 2 is off'
    note = ': not the chain rule' if fd >= 1e-5 else '' if n else ': no weight has a gradient'
    print(f'check: {same}, backprop equals finite differences to {fd:.0e} on {n} weights{note}')

# --- the training window: progress, held-out loss, a chart, the compute meter -
def train_flops(T):  # to train on a doc of T predicted tokens (tests/README.md)
    n = n_embd
    weights = n_layer * 12 * n * n + vocab_size * n  # qkvo, MLP, lm_head
    attention = n_layer * n * T * (T + 1)  # q.k, w.v: 2n a read, T(T+1)/2 reads
    return 6 * (weights * T + attention)  # 2 FLOPs a multiply-add; backward 2x

def fmt(x, places=4):  # every figure: four decimals; huge ones short: 1.2e+21
    return f'{x:.{places}f}' if abs(x) < 1e4 else f'{x:.3g}'

def run_training(train_docs, val_docs, adam):
    """Part 1's train(), shown: a line every tenth of the run (or 5 s), the held-out loss
    every eval_interval steps, a chart, the compute. Ctrl-C stops it between two steps."""
    start = adam['step']
    earlier = len(adam.setdefault('losses', []))  # resumed: its last losses, for the mean
    log = dict(losses=adam['losses'], means=[], vals=[], flops=0, tokens=0, warned=False)
    eval_set = spread(val_docs, eval_iters)
    started = shown = time.time()
    eval_time = 0.0

    with stop_requests() as asks, resting_collector():
        for step, loss, batch in train(train_docs, adam['m'], adam['v'], start):
            adam['step'] = step + 1
            record(log, step, loss, batch)
            last = step + 1 == num_steps or bool(asks)
            if eval_interval and eval_set and ((step + 1) % eval_interval == 0 or last):
                clock = time.time()
                log['vals'].append((step + 1, evaluate(eval_set)))
                eval_time += time.time() - clock
            if last or asks or (step + 1) % max(1, num_steps // 10) == 0 or time.time() - shown > 5:
                shown = time.time()
                ms = (shown - started) * 1000 / (step + 1 - start)
                print(progress(log, step, ms), flush=True)
            if asks:  # also one asked for during the evaluation
                print(f'stopped by {asks[0]} at step {step + 1}')
                break

    if not all(math.isfinite(p.data) for p in params):
        fail(f'the weights became nan or inf at step {adam["step"]}: lower --learning_rate', 1)
    if len(log['means']) > 1:
        print('\n'.join(chart({'·': list(enumerate(log['means'], start + 1)), 'o': log['vals']})))
        held = f'   o held-out loss ({len(eval_set)} docs)' if log['vals'] else ''
        print(f'{"":12}· train loss, mean of the last 100 steps{held}')
    seconds = time.time() - started - eval_time
    text = sum(len(encode(doc)) - 1 for doc in train_docs)  # its predictions: tokens read
    epochs = log['tokens'] / max(1, text)  # passes over the training text
    if log['flops']:  # a run within one tick of the clock took 0 s
        rate = f' = {log["flops"] / seconds:.3g} FLOP/s' if seconds > 0 else ''
        print(f'compute: {log["flops"]:.3g} FLOPs in {seconds:.1f} s{rate} | {log["tokens"]} '
              f'tokens | {epochs:.3g} epochs')
    return {'losses': log['losses'][earlier:], 'vals': log['vals'], 'flops': log['flops'],
            'seconds': seconds, 'tokens': log['tokens'], 'epochs': epochs}

def record(log, step, loss, batch):  # a step's loss and compute; the mean of the last 100
    if not math.isfinite(loss):
        fail(f'loss nan/inf at step {step + 1}: lower --learning_rate', 1)
    log['flops'] += sum(train_flops(len(t) - 1) for t in batch)
    log['tokens'] += sum(len(t) - 1 for t in batch)
    log['losses'].append(loss)
    recent = log['losses'][-100:]
    log['means'].append(sum(recent) / len(recent))
    worse = 1.5 * math.log(vocab_size)  # than guessing, by half
    if log['means'][-1] > worse and not log['warned']:  # judged on the mean, not one step
        log['warned'] = True
        print(f'step {step + 1}: diverges, mean loss {fmt(log["means"][-1])} > 1.5 ln('
              f'{vocab_size}) = {worse:.2f}, worse than guessing; it goes on. Lower '
              f'--learning_rate (now {learning_rate:g}) or --init_std, or undo a Part 1 edit')

def progress(log, step, ms):  # step, its loss, the running mean, the latest held-out loss
    held = f' | val {fmt(log["vals"][-1][1])}' if log['vals'] else ''
    return (f'step {step + 1:5d}/{num_steps} | loss {fmt(log["losses"][-1])} | mean '
            f'{fmt(log["means"][-1])}{held} | {ms:.{1 if ms < 100 else 0}f} ms | eta '
            f'{ms * (num_steps - step - 1) / 1000:.0f}s')

@contextlib.contextmanager
def stop_requests():  # -> a list that each Ctrl-C or SIGTERM adds its name to
    asks = []
    with contextlib.ExitStack() as undo:
        if threading.current_thread() is threading.main_thread():  # only it takes signals
            for signum in (signal.SIGINT, signal.SIGTERM):
                previous = signal.signal(signum, lambda s, f: asks.append(signal.Signals(s).name))
                undo.callback(signal.signal, signum, previous)
        yield asks

def chart(curves, height=8, width=60):
    """{mark: [(step, loss)]} -> lines of at most 72 columns, later marks over earlier ones.
    A column shows a curve's mean; rows span its lowest to highest mean (1% at least)."""
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

# --- after training: the loss on all held-out docs, samples, memorisation ----
def final_losses(train_docs, val_docs):  # on up to eval_docs of each side
    held_out = spread(val_docs, eval_docs)
    if not held_out:
        return {}
    print(f'evaluating {len(held_out)} held-out docs and as many train docs ...', flush=True)
    val_loss = evaluate(held_out, each=reported)
    train_loss = evaluate(train_docs[:len(held_out)], each=lambda docs: reported(docs, 'train'))
    bits = bits_per_char(val_loss, held_out)
    print(f'val loss {fmt(val_loss)} ({fmt(bits, 3)} bits/char) | train loss {fmt(train_loss)}')
    return {'val_loss': val_loss, 'train_loss': train_loss, 'val_bits_per_char': bits}

def reported(docs, side='held-out'):  # yields the docs; a line every 5 s, as in training
    clock = time.time()
    for i, doc in enumerate(docs):
        if time.time() - clock > 5:
            clock = time.time()
            print(f'{side} docs {i:5d}/{len(docs)} scored', flush=True)
        yield doc

def samples(train_docs, val_docs):  # new docs; how many copy a real one
    random.seed(seed)  # so the samples depend only on the weights and the seed
    docs = [sample() for _ in range(num_samples)]
    for i, doc in enumerate(docs, 1):
        cut = '…' if len(encode(doc)) > block_size + 1 else ''  # cut (with merges: about)
        shown = ''.join(c if c.isprintable() or c == '\n' else ascii(c)[1:-1] for c in doc)
        lines = (shown + cut or '(empty)').split('\n')  # a paragraph: its lines, aligned
        print(f'sample {i:2d}: ' + '\n           '.join(lines))
    distinct, train_set, val_set = set(docs), set(train_docs), set(val_docs)
    copies, held = len(distinct & train_set), len(distinct & val_set)
    if docs and train_set:  # a model that only generalises copies each side as its size says
        expect = copies * len(val_set) / len(train_set)
        print(f'{len(distinct)} distinct samples | copies among them: {copies} train, {held} '
              f'held-out ({expect:.1f} if it only generalised)')
    return {'samples': docs, 'train_copies': copies, 'held_out_copies': held}

# --- explain(): the model reading a text; show_embeddings(): what wte learned -
def explain(text):
    """Show the model reading text: at each position the next token's probability and loss,
    the top 5 guesses, each head's attention. -> rows of {'probs', 'loss', 'attention'}."""
    shown = [c.replace(' ', '·').replace('\n', '↵') for c in chars]
    shown = [c if c.isprintable() else '¤' for c in shown] + ['¶']
    wide = max(map(len, shown))  # merged tokens are wider: columns as wide
    tokens = encode(text)
    print(f'explain {text!r} (¶ is BOS, the start or the end; · a space; ↵ a line break;'
          f' ¤ another invisible)')
    if len(tokens) - 1 > block_size:
        print(f'the context holds {block_size} positions: this explains its first {block_size}')
        tokens = tokens[:block_size + 1]
    print(f'pos read{" " * (wide - 1)} next{" " * (wide - 1)}  p(next)   loss | top 5 guesses')
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
        bars = ' '.join(f'{shown[i]:{wide}} {probs[i]:4.0%} {"█" * round(5 * probs[i]):5}'
                        for i in top)
        print(f'{pos_id:3d}   {shown[token_id]:{wide}}    {shown[target_id]:{wide}}   '
              f'{probs[target_id]:7.4f} {fmt(loss, 3):>6} | {bars}')
        print(f'{"reads":>21}', *(f'{shown[i]:{wide}}' for i in tokens[:pos_id + 1]))
        for h, weights in enumerate(attention):
            shades = ' '.join(f'{" ░▒▓█"[round(4 * w)]:{wide}}' for w in weights)
            print(f'{f"layer {h // n_head} head {h % n_head}":>21} {shades}')
    total = sum(row['loss'] for row in rows)  # -log p(text): p(next) multiplied
    print(f'mean loss {fmt(total / len(rows))} over {len(rows)} predictions | '
          f'p(text) = exp(-{fmt(total, 3)}) = {math.exp(-total):.3g}')
    return rows

def show_embeddings():  # each token's 4 nearest by cosine; a map of wte's rows
    shown = [c.replace(' ', '·') if c.isprintable() else '¤' for c in chars] + ['¶']
    wte = float_weights()['wte']  # (vocab_size, n_embd)
    cosines = [[dot(a, b) / (math.hypot(*a) * math.hypot(*b) or 1) for b in wte] for a in wte]
    for i, row in enumerate(cosines):
        near = sorted(set(range(vocab_size)) - {i}, key=lambda j: -row[j])[:4]
        print(f'{shown[i]:>3} nearest:', *(f'{shown[j]} {row[j]:+.2f}' for j in near))
    centred = [[x - sum(col) / vocab_size for x, col in zip(row, zip(*wte))] for row in wte]
    directions = [[1.0] * n_embd, [k + 2.0 for k in range(n_embd)]]  # a start
    for _ in range(1000):  # power iteration: d <- covariance @ d, the 2nd at 90°
        a, b = (linear(linear(d, centred), list(zip(*centred))) for d in directions)
        b = [x - dot(a, b) / (dot(a, a) or 1) * y for x, y in zip(b, a)]
        directions = [[x / (math.hypot(*d) or 1) for x in d] for d in (a, b)]
    x, y = ([(v - min(p)) / (max(p) - min(p) or 1) for v in p]  # 0 to 1
            for p in (linear(d, centred) for d in directions))
    grid = [[''] * 49 for _ in range(13)]  # two tokens in a cell widen it
    for token, across, up in zip(shown, x, y):
        grid[round(12 * (1 - up))][round(48 * across)] += token
    lines = ['│' + ''.join(cell or ' ' for cell in row) for row in grid]
    print('wte on its 2 principal directions, 1st across:', *lines, sep='\n')
    return {'cosines': cosines, 'directions': directions, 'map': lines}

# --- files: a model as JSON; what --resume needs to go on exactly ------------
SHAPE = ('n_layer', 'n_embd', 'n_head', 'block_size')  # a saved model's shape
RUN = ('num_steps', 'batch_size', 'learning_rate', 'beta1', 'beta2', 'eps', 'seed',
       'paragraphs')  # and what makes the documents

def save_model(path, run):  # via a temp file, flushed, then renamed: never half a file
    adam = run['adam']
    steps = run['before'] + adam['step']  # every step that made these weights
    weights = {k: quantize(w) if int8 else w for k, w in float_weights().items()}
    blob = {'config': {k: globals()[k] for k in SHAPE}, 'chars': chars[:-len(merges) or None],
            'merges': list(merges), 'int8': int8, 'steps': steps, 'state_dict': weights}
    if not int8:  # what --resume needs: the run's settings, its text, Adam, the random state
        blob['training'] = {
            'step': adam['step'], 'settings': {k: globals()[k] for k in RUN},
            'input_crc': run['input_crc'], 'input_file': os.path.abspath(run['input_path']),
            'random_state': random.getstate(), 'm': adam['m'], 'v': adam['v'],
            'losses': adam.get('losses', [])[-100:]}  # for the running mean
    tmp = f'{path}.tmp{os.getpid()}'
    try:
        with open(tmp, 'w', encoding='utf-8') as f:
            f.write(json.dumps(blob))  # in one piece: faster than json.dump(blob, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as e:
        fail(f'cannot save the model to {path!r}: {e.strerror}', 1)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    if int8:  # from here on, the run evaluates and samples the weights as saved
        use_weights({k: dequantize(w) for k, w in weights.items()})
    more = f'; go on with --resume={shlex.quote(path)}' if adam['step'] < num_steps else ''
    more = '; the run goes on with its 8-bit weights' if int8 else more
    print(f'saved the model to {path} at step {adam["step"]} of {num_steps}'
          f'{f", {steps} steps in all" * (steps != adam["step"])}{more}')

def read_model(path, resuming):  # -> what save_model() wrote
    return json.loads(read_text(path, 'model file', '--resume' if resuming else '--load'))

def load_model(blob, resuming):  # save_model() undone; -> to resume, the training state
    globals().update(blob['config'], bpe_merges=len(blob['merges']))
    use_vocab(blob['chars'])
    use_merges(blob['merges'])
    weights = blob['state_dict']
    use_weights({k: dequantize(w) for k, w in weights.items()} if blob['int8'] else weights)
    if not resuming:
        return None
    training = blob['training']
    globals().update(training['settings'])  # the schedule and the seed it started with
    state = training['random_state']  # JSON made its tuples lists
    return dict(training, random_state=(state[0], tuple(state[1]), state[2]))

# ======== The guard rails: a learner may stop here. Flags, files, the command line ========
# --- settings: the flags; one check for flags, notebook cells, model files
KIND = dict(  # what each setting takes, whatever the file says
    input_file=str, n_layer=int, n_embd=int, n_head=int, block_size=int, num_steps=int,
    batch_size=int, learning_rate=float, beta1=float, beta2=float, eps=float, init_std=float,
    temperature=float, prompt=str, num_samples=int, seed=int, part2=bool, fused=bool,
    tape=bool, no_grad=bool, pause_gc=bool, bpe_merges=int, int8=bool,
    eval_interval=int, eval_iters=int, eval_docs=int, save=str, load=str, resume=str,
    embeddings=bool, paragraphs=bool)
WORDS = {bool: 'True or False', int: 'a whole number', float: 'a number', str: 'a text',
         list: 'a non-empty list of texts'}

def settings():  # {name: value} of every setting as it stands now
    return {name: globals()[name] for name in KIND}

DEFAULTS = settings()
flags = {}  # the run's flags: a model file must agree with them

def reset_settings():  # every setting back to its default in this file
    globals().update(DEFAULTS)

@contextlib.contextmanager
def all_or_nothing():  # if it fails: settings, model, random as they were
    before = dict(globals())
    state = random.getstate()
    try:
        yield
    except BaseException:  # Ctrl-C too
        globals().clear()  # what the block made, a first model, goes too
        globals().update(before)
        random.setstate(state)
        raise

def configure(argv):  # Part 4's, for real: checks, then sets, the flags; they stay set
    if isinstance(argv, str):
        fail(f'main() takes a list of flags: main({shlex.split(argv)!r})')
    flags.clear()
    for i, arg in enumerate(argv):
        name, has_value, text = arg[2:].partition('=')
        kind = {**KIND, 'explain': str}.get(name) if arg.startswith('--') else None
        if kind is None:
            close = [k for k in KIND if len(name) > 2 and name in k]  # --steps: num_steps
            close += difflib.get_close_matches(name or arg, [*KIND, 'explain'], n=1)
            hint = f'did you mean --{close[0]}?' if close else 'see --help'
            fail(f'unknown setting {arg!r}; {hint}')
        if name in flags:
            fail(f'--{name} is given twice; give it once')
        if not has_value and kind is not bool:
            value = argv[i + 1] if argv[i + 1:] and argv[i + 1][:2] != '--' else 'VALUE'
            fail(f'--{name} needs "=" before its value: write --{name}={shlex.quote(value)}')
        text = text if has_value else 'true'  # a bare switch turns it on
        words = {'true': True, 'false': False, 'none': None}  # switches; init_std's None
        try:  # check_settings, below, checks every value's kind and range
            flags[name] = text if kind is str else words[text.lower()] if kind is bool or (
                text.lower() in words) else kind(text)
        except (ValueError, KeyError):
            fail(f'--{name} takes {WORDS[kind]}, not {text!r}')
    s = {k: flags.get(k, v) for k, v in settings().items()}
    check_settings(s, shape=not (s['load'] or s['resume']))  # else the file's
    run_only = ('save', 'load', 'resume', 'explain')  # setup() reads them
    globals().update({k: v for k, v in flags.items() if k not in run_only})
    return flags

def check_settings(s, where='', shape=True):  # s: {name: value}; stops at the first bad one
    for name, value in s.items():  # a cell can assign anything
        kind = KIND[name]
        if not (type(value) is kind or kind is float and type(value) is int
                or name == 'init_std' and value is None):
            fail(f'{where}{name} takes {WORDS[kind]}, not {value!r}')
        low = 1 if name in (*SHAPE, 'batch_size') else 0
        above = name in ('learning_rate', 'eps', 'temperature')  # 0 breaks them
        if kind in (int, float) and value is not None and not (
                low <= value < math.inf and (value or not above)):
            must = 'at least 1' if low else '> 0' if above else 'not negative'
            fail(f'{where}{name} must be finite and {must}')
    if shape and s['n_embd'] % s['n_head']:
        fail(f'{where}n_embd={s["n_embd"]} must be a multiple of n_head={s["n_head"]}')
    if shape and len(s['prompt']) >= s['block_size']:
        fail(f'{where}prompt must be shorter than block_size={s["block_size"]}')
    if max(s['beta1'], s['beta2']) >= 1:
        fail(f'{where}beta1 and beta2 must be at least 0 and below 1')
    if s['load'] and s['resume']:
        fail(f'{where}--load and --resume both read a model: give one of them')

def help_text():  # by part, each flag, its value now and the comment beside its setting
    source = linecache.getlines(main.__code__.co_filename)  # the file, a cell
    lines = {'': 'usage: python microgpt.py [--name=value ...]  (a bare --switch means True)'}
    for line in source or [f'{name} = ...' for name in KIND]:  # no source: KIND
        ruler = re.match(r'# =+ (Part \d): (.*?) =', line)
        setting = re.match(r'(\w+) = .*?(?:  # (.*))?$', line)
        if ruler:
            lines[line] = f'{ruler[1]}, {ruler[2]}:'
        elif setting and setting[1] in KIND:  # its first assignment
            flag = f'--{setting[1]}={globals()[setting[1]]!r}'
            lines.setdefault(setting[1], f'  {flag:25} {setting[2] or ""}'.rstrip())
    explain = 'after sampling, an x-ray of the model reading this text'  # Part 4 runs it
    return '\n'.join([*lines.values(), f'  {"--explain=TEXT":25} {explain}'])

part4_main = main

@functools.wraps(part4_main)  # its docstring, for help(main)
def main(argv=()):  # Part 4's; with --help or -h, only the settings: nothing runs
    if {'-h', '--help'} & set(argv):
        return print(help_text())
    return part4_main(argv)

# --- setup, checked: a failed check changes no setting and no model ---------
part4_setup = setup

@all_or_nothing()
def setup(argv):  # Part 4's, then the checks that need its text, its model or its file
    run = part4_setup(argv)
    path, model_file, saving = run['input_path'], run['model_file'], run['save']
    if run['adam'].get('input_crc', run['input_crc']) != run['input_crc']:
        fail(f'{path!r} is not the text that {model_file!r} was trained on: give its --input_file')
    if int8 and saving in ('', run['resumed']):  # no training state
        fail(f'--int8 saves the model in 8 bits, with no training state: give --save=FILE'
             f'{f", another file than {model_file!r}" * bool(run["resumed"])}')
    try:  # before training: a save that would fail, or destroy a file, fails
        if os.path.exists(saving):
            with open(saving, 'rb') as f:  # a folder: IsADirectoryError
                if f.read(11) != b'{"config": ':  # what save_model() writes first
                    fail(f'--save={saving} is a file but not a model; use a new name')
        if saving:
            tempfile.TemporaryFile(dir=os.path.dirname(saving) or '.').close()  # writable?
    except OSError as e:
        fail(f'cannot save the model to {saving!r}: {e.strerror}')
    if path and not run['train_docs']:  # a text was read
        kind = 'paragraphs (between empty lines)' if paragraphs else 'non-empty lines'
        fail(f'input file {path!r} needs 2 different {kind}: to train on, to hold out')
    check_known(prompt, '--prompt')
    check_known(run['given'].get('explain', ''), '--explain')
    check_known(''.join(run['train_docs'] + run['val_docs']), 'the input file')
    return run

def check_known(text, what):  # the model has a token for each character of text
    unknown = ''.join(sorted(set(text) - set(chars)))
    if unknown:
        fail(f'the model does not know these characters of {what}: {unknown[:20]!r}; it knows '
             f'only {"".join(c for c in chars if len(c) == 1)[:60]!r}, those it was made with')

# --- model files, read as untrusted input: each field checked before it is used
part4_read_model = read_model

def numbers(x, shape, what):  # x, checked: nested lists of finite floats of this shape
    if shape and (type(x) is not list or len(x) != shape[0]):
        fail(f'{what} is not {shape[0]} rows or numbers long')
    if not shape and (type(x) is not float or not math.isfinite(x)):
        fail(f'{what} holds something other than finite decimal numbers')
    return [numbers(y, shape[1:], what) for y in x] if shape else x

def read_model(path, resuming):  # Part 4's, each field checked; -> the model, as floats
    bad = f'model file {path!r} is not a microgpt model (use a file made by --save):'
    try:  # not JSON, not an object, nested too deep
        blob = dict(part4_read_model(path, resuming))
    except (ValueError, TypeError, RecursionError, MemoryError) as e:
        fail(f'{bad} {type(e).__name__} {str(e)[:60]}')
    config, vocab, pairs = blob.get('config'), blob.get('chars'), blob.get('merges', [])
    training = blob.get('training') if resuming else {}
    if type(training) is not dict:
        fail(f'{path!r} holds no training state (8-bit or older): --load starts anew from it')
    run = training.get('settings') if resuming else {}
    if type(run) is dict:  # saved before --paragraphs: a document per line
        run.setdefault('paragraphs', False)
    if type(config) is not dict or type(run) is not dict or set(config) != set(SHAPE) or (
            resuming and set(run) != set(RUN)):
        fail(f'{bad} its config needs {SHAPE}; its training settings, {RUN}')
    single = type(vocab) is list and all(type(c) is str and len(c) == 1 for c in vocab)
    earlier = single and type(pairs) is list and all(type(p) is list and len(p) == 2 and all(
        type(t) is int and 0 <= t < len(vocab) + k for t in p) for k, p in enumerate(pairs))
    if not earlier or len(set(vocab)) < len(vocab) or len(set(map(tuple, pairs))) < len(pairs):
        fail(f'{bad} its chars: distinct characters; merges: distinct pairs of earlier token ids')
    if type(blob.get('steps', 0)) is not int or blob.get('steps', 0) < 0:
        fail(f'{bad} its steps must be a whole number, 0 or more')

    config = {**config, **run, 'bpe_merges': len(pairs)}
    check_settings({**settings(), **config}, f'with the model in {path!r}: ')
    for name, value in config.items():  # before the text is read
        if flags.get(name, value) != value:
            fail(f'--{name}={flags[name]} contradicts {path!r}, with {name}={value}')
    globals().update(config)  # for shapes(); undone if a check fails: all_or_nothing()
    use_vocab(vocab)
    use_merges(pairs)
    weights = blob.get('state_dict')
    if type(weights) is not dict or len(weights) < n_layer or set(weights) != set(shapes()):
        fail(f'{bad} not the matrices of its config')  # counted first: n_layer may be huge
    if resuming:  # its step, its text, Adam's state, the random state
        kinds = [type(training.get(k)) for k in ('step', 'input_crc', 'input_file')]
        step = training.get('step')
        if kinds != [int, int, str] or not 0 <= step <= min(num_steps, blob.get('steps', step)):
            fail(f'{bad} it needs a step from 0 to num_steps={num_steps}, input_crc, input_file')
        n_params = sum(rows * cols for rows, cols in shapes().values())
        m, v = (numbers(training.get(k), (n_params,), f"{bad} Adam's {k}") for k in 'mv')
        if min(v) < 0:
            fail(f"{bad} Adam's v cannot be negative")
        last = training.get('losses', [])  # older files have none: the mean starts anew
        numbers(last, (min(len(last), 100) if type(last) is list else 0,), f'{bad} its losses')
        try:  # Python's random module checks the state it saved
            state = training.get('random_state')
            random.Random().setstate((state[0], tuple(state[1]), state[2]))
        except (TypeError, ValueError, IndexError, KeyError, OverflowError):
            fail(f"{bad} its random_state is not one that Python's random module saved")
    try:  # 8-bit rows are [scale, text]; a scale that is not a float could repeat a text
        if blob.get('int8') and not all(type(r[0]) is float for w in weights.values() for r in w):
            raise TypeError
        weights = {k: dequantize(w) for k, w in weights.items()} if blob.get('int8') else weights
    except (TypeError, ValueError, IndexError, KeyError):
        fail(f'{bad} its 8-bit rows need a scale and base64 text each')
    weights = {k: numbers(weights[k], size, f'{bad} {k}') for k, size in shapes().items()}
    if not all(map(math.isfinite, gpt(BOS, 0, *empty_cache(), weights))):
        fail(f'{bad} its weights make nan or inf logits')
    return dict(blob, merges=pairs, int8=False, state_dict=weights)  # floats

# --- notebooks: a later cell may change a setting; the model must still fit it
part1_use_weights = use_weights

def use_weights(weights=None):  # Part 1's, and the shape that the model was made with
    global model_shape
    part1_use_weights(weights)
    model_shape = {name: globals()[name] for name in (*SHAPE, 'vocab_size')}

def fits_model(f, kind=None, what=''):  # f, after checks: the model fits
    @functools.wraps(f)  # the settings, and reads f's text or list of texts (kind)
    def checked(*args, **kwargs):
        if 'state_dict' not in globals():
            fail('there is no model yet: run main(), or use_vocab() then use_weights()')
        check_settings(settings())
        if not all(math.isfinite(p.data) for p in params):  # a run diverged
            fail('the model holds nan or inf weights: train again with a lower learning_rate')
        for name, value in model_shape.items():
            if globals()[name] != value:
                fail(f'the model was made with {name}={value}, not {globals()[name]}: set '
                     f'{name} = {value}, or run main() to train a new one')
        check_known(prompt, 'the prompt')
        given = (*args, *kwargs.values(), None)[0]  # docs, or text
        texts = [given] if kind is str else given if kind else []
        if kind and not (type(given) is kind and texts and set(map(type, texts)) <= {str}):
            fail(f'{what} must be {WORDS[kind]}, not {given!r:.40}')
        check_known(''.join(texts), what)
        return f(*args, **kwargs)
    return checked

sample = fits_model(sample)
evaluate = fits_model(evaluate, list, 'the documents to evaluate')
explain = fits_model(explain, str, 'the text to explain')
show_embeddings = fits_model(show_embeddings)

# --- the command line: where an error becomes a message and an exit code ---
def command_line(argv):
    main_thread = threading.current_thread() is threading.main_thread()  # only it takes signals
    host = signal.signal(signal.SIGTERM, signal.default_int_handler) if main_thread else None
    if hasattr(sys.stdout, 'reconfigure'):  # IDLE, IPython: other streams
        sys.stdout.reconfigure(errors='replace')  # what it cannot show: '?'
    try:  # SIGTERM cleans up as Ctrl-C does
        try:
            main(argv)
        except KeyboardInterrupt:
            fail('interrupted', 130)
        except MemoryError:
            fail('out of memory: the model or the data is too big for this machine', 1)
    except MicrogptError as e:
        print(f'microgpt: {e}', file=sys.stderr)
        sys.exit(e.code)
    except BrokenPipeError:  # piped into `head`: stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    finally:
        if host is not None:  # IDLE, %run and runpy get theirs back
            signal.signal(signal.SIGTERM, host)

if __name__ == '__main__':
    if '__file__' in globals():  # python, IDLE's Run Module, %run, runpy
        command_line(sys.argv[1:])
    else:  # pasted into a notebook cell, where sys.argv is the kernel's
        main()
