"""microgpt: a GPT in plain Python. Part 1 is the GPT; Part 2 makes it fast; Part 3 runs it."""
import contextlib, gc, json, math, multiprocessing, os, random, signal, sys, time
from operator import mul

# ==================================== Part 1: the GPT =============================================

# --- settings: the reference run ------------------------------------------------------------------
n_layer = 1               # transformer blocks
n_embd = 16               # width of the vector that represents each token
n_head = 4                # attention heads; each one looks at n_embd // n_head of those numbers
block_size = 16           # context length: the most positions the model sees at once
num_steps = 1000          # training steps: Adam updates
batch_size = 1            # documents per step; their mean loss makes one update
learning_rate = 0.01      # Adam's step size at step 0; it decays linearly to 0 at the last step
beta1 = 0.85              # Adam: how slowly the running mean of the gradient forgets
beta2 = 0.99              # Adam: how slowly the running mean of the squared gradient forgets
eps = 1e-8                # Adam: keeps the step finite when the gradient is ~0
init_std = 0.08           # standard deviation of the random initial weights
temperature = 0.5         # sampling: below 1 picks likely characters more often, above 1 less
prompt = ''               # every sample starts with this text and continues it
seed = 42                 # one seed for the shuffle, the initial weights and the samples

# --- dataset: one document per non-empty line, shuffled, with a held-out part never trained on ----
def split_docs(text):
    docs = [line.strip() for line in text.splitlines() if line.strip()]
    random.shuffle(docs)
    n_val = max(1, min(len(docs) // 10, 5000))  # ~10% held out, to measure an honest loss
    return docs[n_val:], docs[:n_val]            # train_docs, val_docs

# --- tokenizer: one token per character, plus BOS, which both starts and ends every document ------
# chars (in id order), stoi (char -> id), BOS = len(chars), vocab_size: set by Part 3's use_model()
def encode(doc):
    return [BOS] + [stoi[c] for c in doc] + [BOS]

def decode(ids):
    return ''.join(chars[i] for i in ids if i != BOS)

# --- autograd: numbers that remember how they were made, and the chain rule run backwards ---------
tape = []  # each Value made from others, in order: after its children (no search: 26% faster)

class Value:
    """One number in the graph: its data, d(loss)/d(data), and its local gradient to each child."""
    __slots__ = ('data', 'grad', '_children', '_local_grads')  # no per-object dict: faster
    def __init__(self, data, children=(), local_grads=()):
        self.data, self.grad = data, 0.0
        self._children, self._local_grads = children, local_grads  # and d(self)/d(each child)
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
        """The chain rule: each node passes local_grad * its grad on to each child. Read from its
        newest end, the tape reaches each node after all that use it: when its grad is whole."""
        self.grad = 1.0
        for v in reversed(tape):
            for child, local_grad in zip(v._children, v._local_grads):
                child.grad += local_grad * v.grad
        tape.clear()  # the graph is used up; the next forward pass records a new one

def exp(x): return x.exp() if isinstance(x, Value) else math.exp(x)
def log(x): return x.log() if isinstance(x, Value) else math.log(x)
def relu(x): return x.relu() if isinstance(x, Value) else max(0.0, x)
def data(x): return x.data if isinstance(x, Value) else x  # these work on floats too, unrecorded

# --- model: a GPT-2-like transformer that reads one token at a time ------------------------------
def shapes():  # every weight matrix by its GPT-2 name: (rows, columns)
    n, v = n_embd, vocab_size
    sizes = {'wte': (v, n), 'wpe': (block_size, n), 'lm_head': (v, n)}
    for i in range(n_layer):
        sizes.update({f'layer{i}.attn_w{c}': (n, n) for c in 'qkvo'})
        sizes.update({f'layer{i}.mlp_fc1': (4 * n, n), f'layer{i}.mlp_fc2': (n, 4 * n)})
    return sizes

def init_model():  # -> state_dict: each matrix as rows of random Values
    return {name: [[Value(random.gauss(0, init_std)) for _ in range(cols)] for _ in range(rows)]
            for name, (rows, cols) in shapes().items()}

def dot(a, b):  # sum of a_i * b_i
    if fused and isinstance(a[0], Value):  # Part 2
        return fused_dot(a, b)
    return sum(map(mul, a, b))

def linear(x, w):  # (nout, nin) @ (nin,) -> (nout,): one dot product per row of w, no bias
    if fused and isinstance(x[0], Value):  # Part 2
        return fused_linear(x, w)
    return [dot(w_row, x) for w_row in w]

def softmax(logits):  # -> probabilities that sum to 1
    if fused and isinstance(logits[0], Value):  # Part 2
        return fused_softmax(logits)
    top = max(data(l) for l in logits)  # subtracting the max changes nothing but keeps exp() finite
    exps = [exp(l - top) for l in logits]
    inv_total = sum(exps) ** -1
    return [e * inv_total for e in exps]

def rmsnorm(x):  # rescale x to a mean square of 1
    scale = (dot(x, x) / len(x) + 1e-5) ** -0.5
    return [xi * scale for xi in x]

def gpt(token_id, pos_id, keys, values, sd=None):
    """The logits (vocab_size,) for the token after this one. keys and values hold, per layer, the
    vectors of the positions read so far; this call adds its own, so attention only looks back."""
    sd = sd or state_dict
    head_dim = n_embd // n_head
    x = rmsnorm([t + p for t, p in zip(sd['wte'][token_id], sd['wpe'][pos_id])])  # (n_embd,)
    for li in range(n_layer):
        # 1) attention: each head averages the values so far, weighted by how well their key fits q
        x_residual = x
        x = rmsnorm(x)
        q = linear(x, sd[f'layer{li}.attn_wq'])  # (n_embd,) what this position looks for
        k = linear(x, sd[f'layer{li}.attn_wk'])  # (n_embd,) what it offers to be found by
        v = linear(x, sd[f'layer{li}.attn_wv'])  # (n_embd,) what it passes on when found
        keys[li].append(k)
        values[li].append(v)
        x_attn = []
        for h in range(n_head):
            hs = h * head_dim  # this head's slice of each vector: hs .. hs + head_dim
            q_h = q[hs:hs + head_dim]
            k_h = [k_t[hs:hs + head_dim] for k_t in keys[li]]  # (T, head_dim), T positions so far
            v_h = [v_t[hs:hs + head_dim] for v_t in values[li]]
            attn_logits = [dot(q_h, k_t) * head_dim ** -0.5 for k_t in k_h]  # (T,)
            attn_weights = softmax(attn_logits)  # (T,)
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

# --- loss: how surprised the model is by each real next token (cross-entropy) ---------------------
def cross_entropy(logits, target):  # -log softmax(logits)[target], without ever taking log(0)
    if fused and isinstance(logits[0], Value):  # Part 2
        return fused_cross_entropy(logits, target)
    top = max(data(l) for l in logits)
    return log(sum(exp(l - top) for l in logits)) + top - logits[target]

def doc_losses(tokens, sd=None):  # the loss at each position t: predict token t+1 from tokens 0..t
    keys, values = [[] for _ in range(n_layer)], [[] for _ in range(n_layer)]
    n = min(block_size, len(tokens) - 1)  # evaluation scores a long document's first block_size
    return [cross_entropy(gpt(tokens[t], t, keys, values, sd), tokens[t + 1]) for t in range(n)]

def window(tokens):  # a document longer than the context: block_size + 1 tokens from a random start
    start = random.randrange(len(tokens) - block_size) if len(tokens) > block_size + 1 else 0
    return tokens[start:start + block_size + 1]

# --- optimizer: Adam, with bias correction --------------------------------------------------------
def adam_step(step, m, v, lr):  # m, v: running means of each gradient and of its square
    c1, c2 = 1 - beta1 ** (step + 1), 1 - beta2 ** (step + 1)  # m, v start at 0: undo that bias
    for i, p in enumerate(params):
        m[i] = beta1 * m[i] + (1 - beta1) * p.grad
        v[i] = beta2 * v[i] + (1 - beta2) * p.grad * p.grad
        p.data -= lr * (m[i] / c1) / (math.sqrt(v[i] / c2) + eps)
        p.grad = 0.0

# --- training: batches of documents, one Adam update each ----------------------------------------
def batch_loss(batch):  # the mean loss of some documents (token lists); backward() fills p.grad
    doc_means = [sum(losses) / len(losses) for losses in map(doc_losses, batch)]  # over positions
    loss = sum(doc_means) / len(doc_means)
    loss.backward()
    return loss.data

def train(train_docs):  # yields (step, loss) after each update, for Part 3 to show or to stop
    m, v = [0.0] * len(params), [0.0] * len(params)
    for step in range(num_steps):
        docs = [train_docs[(step * batch_size + j) % len(train_docs)] for j in range(batch_size)]
        batch = [window(encode(doc)) for doc in docs]
        loss = parallel_batch_loss(batch) if pool else batch_loss(batch)  # Part 2: workers
        adam_step(step, m, v, learning_rate * (1 - step / num_steps))  # decays linearly to 0
        yield step, loss

# --- evaluation: the mean loss per predicted token on documents never trained on ------------------
def evaluate(docs):
    if no_grad:  # Part 2
        return evaluate_floats(docs)
    losses = []
    for doc in docs:
        losses += [loss.data for loss in doc_losses(encode(doc))]
        tape.clear()  # no backward() here: drop the graph
    return math.fsum(losses) / len(losses)  # fsum: the exact sum, in any order

# --- sampling: feed the model its own choices, one character at a time ----------------------------
def sample():
    sd = float_weights() if no_grad else state_dict  # Part 2
    keys, values = [[] for _ in range(n_layer)], [[] for _ in range(n_layer)]
    tokens = [BOS] + [stoi[c] for c in prompt]
    for pos in range(block_size):
        logits = gpt(tokens[pos], pos, keys, values, sd)
        if pos + 1 < len(tokens):
            continue  # still reading the prompt
        top = max(map(data, logits))
        probs = softmax([(l - top) / temperature for l in logits])  # sharper below 1, flatter above
        token = random.choices(range(vocab_size), weights=list(map(data, probs)))[0]
        if token == BOS:
            break  # the model says the document ends here
        tokens.append(token)
    return decode(tokens)

# ============================ Part 2: everything else is just efficiency ==========================
# Each item computes exactly what Part 1 does, only faster; --name=False turns it off.
fused = True              # fused graph nodes: a step makes ~2,900 of them instead of ~55,000
no_grad = True            # evaluate and sample on plain floats, with no graph
prefix_cache = True       # evaluation reuses the work of a shared prefix
pause_gc = True           # the garbage collector rests in training: our graph has no cycles to free
workers = os.cpu_count() or 1  # processes that share each batch (at most batch_size are used)
pool = []                 # (pipe, process) of each other worker, while a run with workers trains

# --- fused nodes (~ tensor kernels): one node for a whole dot product, softmax output or loss ---
def fused_dot(a, b):
    ad, bd = [ai.data for ai in a], [bi.data for bi in b]
    return Value(sum(map(mul, ad, bd)), a + b, bd + ad)  # d/da_i = b_i, d/db_i = a_i
def fused_linear(x, w):
    xd = [xi.data for xi in x]  # read x's data once, for every row
    rows = [[wi.data for wi in w_row] for w_row in w]
    return [Value(sum(map(mul, wd, xd)), w_row + x, xd + wd) for w_row, wd in zip(w, rows)]
def fused_softmax(logits):  # output i is one node: d p_i / d logit_j = p_i * (1[i = j] - p_j)
    probs = softmax([l.data for l in logits])
    return [Value(p, logits, [p * ((i == j) - q) for j, q in enumerate(probs)])
            for i, p in enumerate(probs)]
def fused_cross_entropy(logits, target):  # one node: d loss / d logit_j = p_j - 1[j = target]
    floats = [l.data for l in logits]
    grads = [p - (j == target) for j, p in enumerate(softmax(floats))]
    return Value(cross_entropy(floats, target), logits, grads)

# --- inference: plain floats (~ torch.no_grad), and prefix caching (~ inference servers) ----------
def float_weights():  # no_grad: evaluation and sampling on plain floats build no graph
    return {name: [[p.data for p in row] for row in mat] for name, mat in state_dict.items()}
def evaluate_floats(docs):  # prefix_cache: sorted, a document often starts as the one before
    sd, fed, losses, started = float_weights(), [], [], time.time()
    keys, values, logits = [[] for _ in range(n_layer)], [[] for _ in range(n_layer)], []
    for done, doc in enumerate(sorted(docs) if prefix_cache else docs):
        tokens = encode(doc)[:block_size + 1]  # the first block_size predictions, as doc_losses()
        shared = len(os.path.commonprefix([tokens[:-1], fed])) if prefix_cache else 0  # any lists
        for cache in keys + values + [logits]:  # keep what the shared start computed
            del cache[shared:]
        logits += [gpt(tokens[t], t, keys, values, sd) for t in range(shared, len(tokens) - 1)]
        losses += [cross_entropy(logits[t], tokens[t + 1]) for t in range(len(tokens) - 1)]
        fed = tokens[:-1]
        if sys.stdout.isatty() and time.time() - started > 1:  # progress, once it takes a second
            print(f'evaluating {done + 1} / {len(docs)} docs', end='\r', flush=True)
    return math.fsum(losses) / len(losses)

# --- data parallelism (~ multi-GPU training): worker processes share each batch -----------------
def share_grads(weights, batch):  # a share's summed loss, then the gradient its backward() left
    for p, w in zip(params, weights):
        p.data, p.grad = w, 0.0
    return batch_loss(batch) * len(batch), [p.grad * len(batch) for p in params]
def serve(pipe):  # in a worker: shares of batches in, their gradients out, until it is killed
    while True:
        pipe.send(share_grads(*pipe.recv()))
def parallel_batch_loss(batch):  # this process and each worker take a share; plain floats travel
    n, weights = len(pool) + 1, [p.data for p in params]
    batch = sorted(batch, key=len)  # then dealt out in turn: shares of about the same work
    for i, (pipe, _) in enumerate(pool):
        pipe.send((weights, batch[i + 1::n]))
    results = [share_grads(weights, batch[::n])] + [pipe.recv() for pipe, _ in pool]
    for p, grad in zip(params, map(sum, zip(*[grads for _, grads in results]))):
        p.grad = grad / len(batch)
    return sum(loss for loss, _ in results) / len(batch)

# ==================================== Part 3: running it ==========================================

# --- settings from the command line: --name=value, each one checked -------------------------------
input_file = 'input.txt'  # the training text: one document per line
eval_docs = 5000          # held-out docs to score after training (and as many train docs); 0: none
num_samples = 20          # how many samples to print at the end
save = ''                 # after training, write the model to this JSON file
load = ''                 # start from a model saved with --save instead of from random weights
SETTINGS = {k: v for k, v in globals().items() if k[0] != '_' and isinstance(v, (int, float, str))}
SETTINGS['explain'] = ''  # --explain=TEXT: an x-ray of the model reading TEXT, by explain() below
SHAPE = ('n_layer', 'n_embd', 'n_head', 'block_size')  # the settings that a saved model fixes

def need(ok, message, code=2):  # errors are for people: one line, what is wrong and what to do
    if not ok:
        print(f'microgpt: {message}', file=sys.stderr)
        raise SystemExit(code)
def configure(argv):  # defaults, then the --name=value overrides; returns {name: value} of those
    given = {}
    for arg in argv:
        name, _, text = arg[2:].partition('=')
        need(arg.startswith('--') and name in SETTINGS,
             f"unknown setting {arg!r}; the settings are --{', --'.join(SETTINGS)}")
        kind = type(SETTINGS[name])
        need(kind is not bool or text.lower() in ('true', 'false'), f'--{name} takes True or False')
        try:
            given[name] = text.lower() == 'true' if kind is bool else kind(text)
        except ValueError:
            need(False, f'--{name} takes {"a whole number" if kind is int else "a number"}: {text}')
    globals().update({k: v for k, v in dict(SETTINGS, **given).items() if k != 'explain'})
    check_settings()
    return given
def check_settings(where=''):  # stops at the first impossible setting
    need(min(n_layer, n_embd, n_head, block_size) >= 1, f'{where}the sizes must be at least 1')
    need(n_embd % n_head == 0, f'{where}n_embd={n_embd} must be a multiple of n_head={n_head}')
    need(len(prompt) < block_size, f'{where}--prompt must be shorter than block_size={block_size}')
    need(min(batch_size, workers) >= 1, 'batch_size and workers must be at least 1')
    need(min(num_steps, num_samples, eval_docs, seed) >= 0,
         'num_steps, num_samples, eval_docs and seed cannot be negative')
    need(all(0 < x < math.inf for x in (learning_rate, eps, temperature)),
         'learning_rate, eps and temperature must be finite and > 0')
    need(0 <= init_std < math.inf and 0 <= beta1 < 1 and 0 <= beta2 < 1,
         'init_std must be finite and >= 0, beta1 and beta2 at least 0 and below 1')

# --- files: the training text, and the model as JSON, which is checked as untrusted input --------
def read_text(path, limit=2**28):  # the text of a UTF-8 file of at most 256 MB
    try:
        with open(path, 'rb') as f:
            raw = f.read(limit + 1)
        need(len(raw) <= limit, f'input file {path!r} is over {limit >> 20} MB; use a part of it')
        return raw.decode('utf-8-sig')  # -sig: drop a byte-order mark
    except (OSError, UnicodeDecodeError) as e:  # missing, a folder, unreadable, or not UTF-8 text
        need(False, f'cannot read input file {path!r} ({e}); pass a UTF-8 text file')
def use_model(vocab, weights=None):  # the tables and weights that Part 1 reads: new, or these
    global chars, stoi, BOS, vocab_size, state_dict, params
    chars = list(vocab)  # any Unicode characters: é, ß, emoji, CJK
    stoi = {c: i for i, c in enumerate(chars)}
    BOS, vocab_size = len(chars), len(chars) + 1  # BOS is the last id
    state_dict = init_model() if weights is None else {
        name: [[Value(x) for x in row] for row in mat] for name, mat in weights.items()}
    params = [p for mat in state_dict.values() for row in mat for p in row]
def save_model(path, dry_run=False):  # a dry run, before training, checks that the path will do
    taken = os.path.isdir(path) or os.path.isfile(path) and os.path.samefile(path, input_file)
    need(not taken, f'--save={path} is a folder or the input file; save the model as another file')
    tmp = f'{path}.tmp{os.getpid()}'  # written beside the target, then renamed: never half a file
    try:
        with open(tmp, 'w', encoding='utf-8') as f:
            json.dump({} if dry_run else {'config': {k: globals()[k] for k in SHAPE},
                                          'chars': chars, 'state_dict': float_weights()}, f)
            f.flush()
            os.fsync(f.fileno())
        if not dry_run:
            os.replace(tmp, path)
    except OSError as e:
        need(False, f'cannot save the model to {path!r}: {e.strerror}', 2 if dry_run else 1)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
def load_model(path, given):  # all of the file is checked before anything is built from it
    bad = f'model file {path!r} is not a microgpt model (use a file made by --save):'
    try:
        with open(path, 'rb') as f:
            blob = json.loads(f.read())
    except (OSError, ValueError, RecursionError, MemoryError) as e:  # unreadable, not JSON, deep
        need(False, f'{bad} {getattr(e, "strerror", None) or type(e).__name__}')
    need(type(blob) is dict, f'{bad} it needs the keys config, chars and state_dict')
    config, vocab, weights = (blob.get(k) for k in ('config', 'chars', 'state_dict'))
    need(type(config) is dict and set(config) == set(SHAPE) and all(
        type(config[k]) is int for k in SHAPE), f'{bad} its config needs whole numbers {SHAPE}')
    need(type(vocab) is list and all(type(c) is str and len(c) == 1 for c in vocab) and
         len(set(vocab)) == len(vocab), f'{bad} its chars must be distinct single characters')
    for k in set(SHAPE) & set(given):
        need(given[k] == config[k], f'--{k}={given[k]} contradicts {path!r}, with {k}={config[k]}')
    globals().update(config, vocab_size=len(vocab) + 1)
    check_settings(f'with the model in {path!r}: ')
    need(type(weights) is dict and len(weights) == 3 + 6 * n_layer, f'{bad} not all the matrices')
    for name, (rows, cols) in shapes().items():  # as many as the file holds: bounded by its size
        mat = weights.get(name)
        need(type(mat) is list and len(mat) == rows and all(type(row) is list and len(row) == cols
                                                            for row in mat), f'{bad} {name} shape')
        need(all(type(x) is float and math.isfinite(x) for row in mat for x in row),
             f'{bad} {name} holds something other than finite decimal numbers')
    use_model(vocab, weights)
    probe = gpt(BOS, 0, [[] for _ in range(n_layer)], [[] for _ in range(n_layer)], float_weights())
    need(all(map(math.isfinite, probe)), f'{bad} its weights make nan or inf logits')

# --- training: Part 1's train(), shown as it goes; Ctrl-C or SIGTERM stops it between steps ------
def chart(values, width=40):  # a series as one line of bars: ▁ its lowest value, █ its highest
    n = min(width, len(values))
    picks = [values[i * len(values) // n] for i in range(n)]
    lo, hi = min(picks), max(picks)
    return ''.join('▁▂▃▄▅▆▇█'[int(7 * (x - lo) / (hi - lo or 1))] for x in picks)
def run_training(train_docs):
    stop, start, tty, losses, means = [], time.time(), sys.stdout.isatty(), [], []
    with contextlib.ExitStack() as undo:  # all that is set up here is put back, however it ends
        for s, why in ((signal.SIGINT, 'Ctrl-C'), (signal.SIGTERM, 'SIGTERM')):
            undo.callback(signal.signal, s, signal.signal(s, lambda *_, why=why: stop.append(why)))
        if pause_gc and gc.isenabled():  # Part 2
            gc.disable()
            undo.callback(gc.enable)
        if min(workers, batch_size) > 1 and 'fork' not in multiprocessing.get_all_start_methods():
            print('training in one process: this platform cannot fork worker processes')
        elif min(workers, batch_size) > 1:  # Part 2: each worker starts as a copy of this process
            fork = multiprocessing.get_context('fork')
            undo.callback(pool.clear)
            for _ in range(min(workers, batch_size) - 1):
                ours, theirs = multiprocessing.Pipe()
                pool.append((ours, fork.Process(target=serve, args=(theirs,), daemon=True)))
                pool[-1][1].start()
                undo.callback(pool[-1][1].join)
                undo.callback(pool[-1][1].kill)
        for step, loss in train(train_docs):
            need(math.isfinite(loss), f'loss nan/inf at step {step + 1}: lower --learning_rate', 1)
            losses.append(loss)
            means.append(sum(losses[-100:]) / len(losses[-100:]))  # of the last 100 steps
            ms = (time.time() - start) * 1000 / (step + 1)
            if tty or (step + 1) % max(1, num_steps // 10) == 0 or stop:
                print(f'step {step + 1:5d} / {num_steps} | loss {loss:.4f} | mean {means[-1]:.4f} '
                      f'| {ms:.1f} ms/step | eta {ms * (num_steps - step - 1) / 1000:.0f}s ',
                      end='\r' if tty and step + 1 < num_steps and not stop else '\n', flush=True)
            if stop:
                print(f'stopped by {stop[0]} at step {step + 1}')
                break
    if len(means) > 1:
        print(f'loss, mean of the last 100 steps: {means[0]:.2f} {chart(means)} {means[-1]:.2f}')

# --- run: explain() shows the model reading one text; main() runs everything, in order ------------
def explain(text):  # per position: guesses, the real next character's loss, each head's attention
    need(not set(text) - set(chars), f'--explain: the model knows only {"".join(chars)[:60]!r}')
    sd, tokens, rows, plain_softmax = float_weights(), encode(text)[:block_size + 1], [], softmax
    keys, values, shown = [[] for _ in range(n_layer)], [[] for _ in range(n_layer)], chars + ['.']
    print(f'explain {text!r} (BOS is shown as .)\npos read next  p(next)   loss | top 5 guesses')
    for t in range(len(tokens) - 1):
        heads = []  # inside gpt(), each softmax() is one head's attention, layer by layer
        globals()['softmax'] = lambda logits: heads.append(plain_softmax(logits)) or heads[-1]
        logits = gpt(tokens[t], t, keys, values, sd)
        globals()['softmax'] = plain_softmax
        probs, loss = softmax(logits), cross_entropy(logits, tokens[t + 1])
        rows.append({'probs': probs, 'loss': loss, 'attention': heads})
        top = sorted(range(vocab_size), key=lambda i: -probs[i])[:5]
        bars = ' '.join(f'{shown[i]} {probs[i]:4.0%} {"█" * round(5 * probs[i]):5}' for i in top)
        print(f'{t:3d}   {shown[tokens[t]]}    {shown[tokens[t + 1]]}  {probs[tokens[t + 1]]:7.4f} '
              f'{loss:6.3f} | {bars}\n{"reads":>21}', *(shown[i] for i in tokens[:t + 1]))
        for h, weights in enumerate(heads):
            shades = ' '.join(' ░▒▓█'[round(4 * w)] for w in weights)
            print(f'{f"layer {h // n_head} head {h % n_head}":>21} {shades}')
    print(f'mean loss {sum(r["loss"] for r in rows) / len(rows):.4f} over {len(rows)} predictions')
    return rows

def main(argv):  # everything, in order
    given = configure(argv)
    random.seed(seed)
    train_docs, val_docs = split_docs(read_text(input_file))
    need(train_docs, f'input file {input_file!r} needs 2 non-empty lines: to train on, to hold out')
    if save:
        save_model(save, dry_run=True)  # a wrong --save fails now, not after training
    if load:
        load_model(load, given)
    else:
        use_model(sorted(set(''.join(train_docs + val_docs))))
    unknown = ''.join(sorted(set(prompt + ''.join(train_docs + val_docs)) - set(chars)))
    need(not unknown, f'the model does not know these characters of --prompt or the input file: '
         f'{unknown[:20]!r}; it knows {"".join(chars)[:60]!r}')
    print(f'{len(train_docs)} train docs, {len(val_docs)} held out | vocab {vocab_size} | '
          f'{len(params)} params | fused={fused}')
    too_long = sum(len(doc) >= block_size for doc in train_docs)
    if too_long:
        print(f'{too_long} train docs are longer than the context: training reads a window of each')
    run_training(train_docs)
    if save:
        save_model(save)
        print(f'saved the model to {save}')
    n = min(eval_docs, len(val_docs))
    if n:
        print(f'val loss {evaluate(val_docs[:n]):.4f} | train loss {evaluate(train_docs[:n]):.4f}')
    random.seed(seed)  # so the samples depend only on the weights and the seed
    samples = [sample() for _ in range(num_samples)]
    for i, text in enumerate(samples):
        print(f'sample {i + 1:2d}: {text}')
    copies = sum(map(set(train_docs).__contains__, samples))  # samples equal to a training doc
    if samples:
        print(f'{num_samples - copies} of {num_samples} samples are new, {copies} copy a train doc')
    if given.get('explain'):
        explain(given['explain'])

if __name__ == '__main__':  # in a notebook cell too, where sys.argv is the kernel's: no __file__
    try:
        if '__file__' in globals():  # a script: SIGTERM stops it as Ctrl-C does, cleaning up first
            signal.signal(signal.SIGTERM, signal.default_int_handler)
            sys.stdout.reconfigure(errors='replace')  # what the console cannot show becomes '?'
        main(sys.argv[1:] if '__file__' in globals() else [])
    except KeyboardInterrupt:
        need(False, 'interrupted', 130)
    except BrokenPipeError:  # piped into `head`: stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    except MemoryError:
        need(False, 'out of memory: the model or the data is too big for this machine', 1)
    except ValueError:  # random.choices() met probabilities that are nan or inf
        need(False, 'the model computes nan or inf: its weights are broken; train it again', 1)
