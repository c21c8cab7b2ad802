"""microgpt: train a tiny GPT on a text file and sample from it, in plain Python with no dependencies.

Part 1 is the whole GPT, as plainly as it can be written. Part 2 makes it fast without changing what
it computes. Part 3 runs it: settings from the command line, files, errors, progress, save and load.
`python microgpt.py` runs it all; `--name=value` changes any setting."""
import gc, json, math, os, random, signal, sys, time
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
num_samples = 20          # how many samples to print at the end
prompt = ''               # every sample starts with this text and continues it
seed = 42                 # one seed for the shuffle, the initial weights and the samples
input_file = 'input.txt'  # the training text: one document per line
eval_docs = 5000          # held-out docs to score after training (and as many training docs); 0 skips
# the switches of Part 2: each one changes only the speed
fused = True              # fused graph nodes and float loops, as tensor kernels do
no_grad = True            # evaluate and sample on plain floats, with no graph
prefix_cache = True       # evaluation reuses the work of a shared prefix, as inference servers do
pause_gc = True           # Python's cyclic garbage collector rests during training
workers = os.cpu_count() or 1  # processes that share a batch's gradient, as GPUs do (<= batch_size)

# --- dataset: one document per non-empty line, shuffled, with a held-out part never trained on ----
def split_docs(text):
    docs = [line.strip() for line in text.splitlines() if line.strip()]
    random.shuffle(docs)
    n_val = max(1, min(len(docs) // 10, 5000))  # ~10% held out, to measure an honest loss
    return docs[n_val:], docs[:n_val]            # train_docs, val_docs

# --- tokenizer: one token per character, plus BOS, which both starts and ends every document ------
# chars: the vocabulary in token-id order, stoi: each character's id, BOS = len(chars),
# vocab_size = len(chars) + 1. Part 3's use_vocab() sets them from the data or a saved model.
def encode(doc):
    return [BOS] + [stoi[c] for c in doc] + [BOS]

def decode(ids):
    return ''.join(chars[i] for i in ids if i != BOS)

# --- autograd: numbers that remember how they were made, and the chain rule run backwards ---------
tape = []  # every Value computed from others, in the order made: always after its children

class Value:
    """One number in the graph: its data, d(loss)/d(data), and its local gradient to each child."""
    __slots__ = ('data', 'grad', '_children', '_local_grads')  # no per-object dict: faster
    def __init__(self, data, children=(), local_grads=()):
        self.data = data
        self.grad = 0.0
        self._children = children        # the Values this one was computed from
        self._local_grads = local_grads  # d(self)/d(child), child by child
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
        """The chain rule: each node passes local_grad * its own grad on to each child, so gradients
        multiply along a path and add up over paths. A node may pass its grad on only when it is
        complete, after every node that uses it: the tape read from the newest end gives that order,
        as each node was made after its children. (A depth-first search from the loss finds such an
        order too, but costs a second walk over every edge: 30% more time per step here.)"""
        self.grad = 1.0
        for v in reversed(tape):
            for child, local_grad in zip(v._children, v._local_grads):
                child.grad += local_grad * v.grad
        tape.clear()  # the graph is used up; the next forward pass records a new one

# The same few operations on a Value (which records them) or on a plain float (which does not)
def exp(x): return x.exp() if isinstance(x, Value) else math.exp(x)
def log(x): return x.log() if isinstance(x, Value) else math.log(x)
def relu(x): return x.relu() if isinstance(x, Value) else max(0.0, x)
def data(x): return x.data if isinstance(x, Value) else x

# --- model: a GPT-2-like transformer that reads one token at a time ------------------------------
def init_model():  # -> state_dict: every weight matrix by its GPT-2 name, as rows of Values
    def matrix(nout, nin):
        return [[Value(random.gauss(0, init_std)) for _ in range(nin)] for _ in range(nout)]
    sd = {'wte': matrix(vocab_size, n_embd), 'wpe': matrix(block_size, n_embd)}
    sd['lm_head'] = matrix(vocab_size, n_embd)
    for i in range(n_layer):
        for name in ('attn_wq', 'attn_wk', 'attn_wv', 'attn_wo'):
            sd[f'layer{i}.{name}'] = matrix(n_embd, n_embd)
        sd[f'layer{i}.mlp_fc1'] = matrix(4 * n_embd, n_embd)
        sd[f'layer{i}.mlp_fc2'] = matrix(n_embd, 4 * n_embd)
    return sd

def dot(a, b):  # sum of a_i * b_i
    if fused:  # Part 2
        return fused_dot(a, b)
    return sum(ai * bi for ai, bi in zip(a, b))

def linear(x, w):  # (nout, nin) @ (nin,) -> (nout,): one dot product per row of w, no bias
    if fused:  # Part 2
        return fused_linear(x, w)
    return [dot(w_row, x) for w_row in w]

def softmax(logits):  # -> probabilities that sum to 1
    if fused:  # Part 2
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
    vectors of the positions read so far; this call appends its own, so attention can only look back."""
    sd = sd or state_dict
    head_dim = n_embd // n_head
    x = [t + p for t, p in zip(sd['wte'][token_id], sd['wpe'][pos_id])]  # (n_embd,)
    x = rmsnorm(x)
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
def cross_entropy(logits, target):
    """-log softmax(logits)[target], as log-sum-exp minus the target's logit: never log(0)."""
    if fused:  # Part 2
        return fused_cross_entropy(logits, target)
    top = max(data(l) for l in logits)
    return log(sum(exp(l - top) for l in logits)) + top - logits[target]

def doc_losses(tokens, sd=None):  # the loss at each position t: predict token t+1 from tokens 0..t
    keys, values = [[] for _ in range(n_layer)], [[] for _ in range(n_layer)]
    n = min(block_size, len(tokens) - 1)  # evaluation scores a long document's first block_size
    return [cross_entropy(gpt(tokens[t], t, keys, values, sd), tokens[t + 1]) for t in range(n)]

def window(tokens):  # a document longer than the context: block_size + 1 tokens from a random start
    if len(tokens) <= block_size + 1:
        return tokens
    start = random.randrange(len(tokens) - block_size)
    return tokens[start:start + block_size + 1]

# --- optimizer: Adam, with bias correction --------------------------------------------------------
def adam_step(step, m, v, lr):
    """Move each parameter against running means of its gradient (m) and squared gradient (v). Both
    start at 0, so early on they are too small: dividing by 1 - beta**t undoes that bias."""
    c1 = 1 - beta1 ** (step + 1)
    c2 = 1 - beta2 ** (step + 1)
    for i, p in enumerate(params):
        m[i] = beta1 * m[i] + (1 - beta1) * p.grad
        v[i] = beta2 * v[i] + (1 - beta2) * p.grad * p.grad
        p.data -= lr * (m[i] / c1) / (math.sqrt(v[i] / c2) + eps)
        p.grad = 0.0

# --- training: batches of documents, one Adam update each ----------------------------------------
def batch_loss(batch):  # the mean loss of some documents (token lists); backward() fills p.grad
    if pool:  # Part 2
        return parallel_batch_loss(batch)
    doc_means = []
    for tokens in batch:
        losses = doc_losses(tokens)
        doc_means.append(sum(losses) / len(losses))  # the mean over the document's positions
    loss = sum(doc_means) / len(doc_means)
    loss.backward()
    return loss.data

def train(train_docs):  # yields (step, loss) after each update, for Part 3 to show or to stop
    m, v = [0.0] * len(params), [0.0] * len(params)
    for step in range(num_steps):
        first = step * batch_size
        docs = [train_docs[(first + j) % len(train_docs)] for j in range(batch_size)]
        loss = batch_loss([window(encode(doc)) for doc in docs])
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
    return sum(losses) / len(losses)

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
    tape.clear()  # drop the graph, if the weights were Values
    return decode(tokens)

# ============================ Part 2: everything else is just efficiency ==========================
# Each item computes exactly what Part 1 does, faster; its switch in the settings turns it off.

# --- fused nodes (~ tensor kernels): one node for a whole dot product, softmax output or loss ------
# A step makes ~2,900 nodes instead of ~53,000. On floats (no graph) the same loops run at C speed.
def fused_dot(a, b):
    if not isinstance(a[0], Value):
        return sum(map(mul, a, b))
    ad, bd = [ai.data for ai in a], [bi.data for bi in b]
    return Value(sum(map(mul, ad, bd)), a + b, bd + ad)  # d/da_i = b_i, d/db_i = a_i

def fused_linear(x, w):
    if not isinstance(x[0], Value):
        return [sum(map(mul, w_row, x)) for w_row in w]
    xd = [xi.data for xi in x]  # read x's data once, for every row
    rows = [[wi.data for wi in w_row] for w_row in w]
    return [Value(sum(map(mul, wd, xd)), w_row + x, xd + wd) for w_row, wd in zip(w, rows)]

def fused_softmax(logits):  # output i is one node: d p_i / d logit_j = p_i * (1[i = j] - p_j)
    if not isinstance(logits[0], Value):
        top = max(logits)
        exps = [math.exp(l - top) for l in logits]
        inv_total = sum(exps) ** -1
        return [e * inv_total for e in exps]
    probs = fused_softmax([l.data for l in logits])
    return [Value(p, logits, [p * ((i == j) - q) for j, q in enumerate(probs)])
            for i, p in enumerate(probs)]

def fused_cross_entropy(logits, target):  # one node: d loss / d logit_j = p_j - 1[j = target]
    if not isinstance(logits[0], Value):
        top = max(logits)
        return math.log(sum([math.exp(l - top) for l in logits])) + top - logits[target]
    floats = [l.data for l in logits]
    grads = [p - (j == target) for j, p in enumerate(fused_softmax(floats))]
    return Value(fused_cross_entropy(floats, target), logits, grads)

# --- no_grad (~ torch.no_grad): evaluation and sampling on plain floats, so no graph is built -----
def float_weights():
    return {name: [[p.data for p in row] for row in mat] for name, mat in state_dict.items()}

# --- prefix caching (~ inference servers): documents that start alike share that start's work -----
def evaluate_floats(docs):
    """In sorted order a document shares its first tokens with the one before: their keys, values
    and logits are the same, so they are kept. Losses are summed in the documents' own order."""
    sd = float_weights()
    order = sorted(range(len(docs)), key=docs.__getitem__) if prefix_cache else range(len(docs))
    per_doc, fed = [None] * len(docs), []
    keys, values, logits = [[] for _ in range(n_layer)], [[] for _ in range(n_layer)], []
    for done, i in enumerate(order):
        tokens = encode(docs[i])
        n = min(block_size, len(tokens) - 1)
        shared = 0
        while prefix_cache and shared < min(n, len(fed)) and tokens[shared] == fed[shared]:
            shared += 1
        for cache in keys + values + [logits]:
            del cache[shared:]
        logits += [gpt(tokens[t], t, keys, values, sd) for t in range(shared, n)]
        per_doc[i] = [cross_entropy(logits[t], tokens[t + 1]) for t in range(n)]
        fed = tokens[:n]
        show_progress(f'evaluating {done + 1} / {len(docs)} docs', done + 1 == len(docs))
    losses = [loss for doc in per_doc for loss in doc]
    return sum(losses) / len(losses)

# --- a resting garbage collector (~ memory management) --------------------------------------------
# The graph has no reference cycles, so the collector never frees any of it, but it scans it again
# and again as it grows (20% of a step). It rests while training, and is restored after.

# --- data parallelism (~ multi-GPU training): worker processes share each batch ----------------
pool = None  # the worker processes, started by Part 3 for a run with workers > 1

def share_grads(weights, batch):  # in a worker: the gradient of its share, for the current weights
    for p, w in zip(params, weights):
        p.data = w
    total = 0.0
    for tokens in batch:
        losses = doc_losses(tokens)
        loss = sum(losses) / len(losses)
        loss.backward()
        total += loss.data
    grads = [p.grad for p in params]
    for p in params:
        p.grad = 0.0
    return total, grads

def parallel_batch_loss(batch):
    """Each process computes the summed gradient of its share of the batch; here they are averaged.
    Weights and gradients travel as plain lists of floats. This process takes the first share."""
    weights = [p.data for p in params]
    n = min(workers, len(batch))
    shares = [batch[i::n] for i in range(n)]
    jobs = [pool.apply_async(share_grads, (weights, share)) for share in shares[1:]]
    results = [share_grads(weights, shares[0])] + [job.get() for job in jobs]
    for p, *grads in zip(params, *[grads for _, grads in results]):
        p.grad = sum(grads) / len(batch)
    return sum(total for total, _ in results) / len(batch)

# ==================================== Part 3: running it ==========================================

# --- settings from the command line: --name=value, each checked -----------------------------------
SETTINGS = {k: v for k, v in globals().items() if type(v) in (bool, int, float, str) and k[0] != '_'}
SETTINGS.update(save='', load='', explain='')  # write the model, read a model, explain a text
SHAPE = ('n_layer', 'n_embd', 'n_head', 'block_size')  # the settings that a saved model fixes

def die(message, code=2):  # errors are for people: one line that says what is wrong and what to do
    print(f'microgpt: {message}', file=sys.stderr)
    raise SystemExit(code)

def configure(argv):
    """Reset every setting to its default, apply the --name=value overrides and check them all.
    Returns {name: value} of the ones given; --explain stays there, as explain() is a function."""
    given = {}
    for arg in argv:
        name, _, text = arg[2:].partition('=')
        if not arg.startswith('--') or name not in SETTINGS:
            die(f"unknown setting {arg!r}; the settings are --{', --'.join(SETTINGS)}")
        kind = type(SETTINGS[name])
        if kind is bool and text.lower() not in ('true', 'false'):
            die(f'--{name} takes True or False, not {text!r}')
        try:
            given[name] = text.lower() == 'true' if kind is bool else kind(text)
        except ValueError:
            die(f'--{name} takes {"a whole number" if kind is int else "a number"}, not {text!r}')
    globals().update({k: v for k, v in dict(SETTINGS, **given).items() if k != 'explain'})
    problem = check_settings()
    if problem:
        die(problem)
    return given

def check_settings():  # the first impossible setting, or None
    rules = [
        (min(n_layer, n_embd, n_head, block_size) >= 1,
         'n_layer, n_embd, n_head and block_size must be at least 1'),
        (n_embd % n_head == 0, f'n_embd={n_embd} must be a multiple of n_head={n_head}'),
        (min(num_steps, num_samples, eval_docs, seed) >= 0,
         'num_steps, num_samples, eval_docs and seed cannot be negative'),
        (min(batch_size, workers) >= 1, 'batch_size and workers must be at least 1'),
        (0 < learning_rate < math.inf and 0 < eps < math.inf and 0 <= beta1 < 1 and 0 <= beta2 < 1,
         'learning_rate and eps must be positive numbers, beta1 and beta2 at least 0 and below 1'),
        (0 <= init_std < math.inf and 0 < temperature < math.inf,
         'init_std must be >= 0 and temperature > 0, both finite'),
        (len(prompt) < block_size, f'--prompt must be shorter than block_size={block_size} characters')]
    return next((message for ok, message in rules if not ok), None)

# --- files: the training text, and the model's vocabulary and weights -----------------------------
def read_text(path, limit=256 * 2**20):  # a UTF-8 text of at most `limit` bytes
    try:
        with open(path, 'rb') as f:
            raw = f.read(limit + 1)
        if len(raw) > limit:
            die(f'input file {path!r} is over {limit >> 20} MB; train on a smaller part of it')
        return raw.decode('utf-8-sig')  # -sig: drop a byte-order mark
    except FileNotFoundError:
        die(f'input file {path!r} not found; pass --input_file=PATH, one document per line')
    except UnicodeDecodeError as e:
        die(f'input file {path!r} is not UTF-8 text (bad byte at offset {e.start}); save it as UTF-8')
    except OSError as e:
        die(f'cannot read input file {path!r}: {e.strerror}')
    except MemoryError:
        die(f'input file {path!r} does not fit in memory; train on a smaller part of it')

def use_vocab(vocab):  # the tokenizer's tables, for Part 1's encode() and decode()
    global chars, stoi, BOS, vocab_size
    chars = list(vocab)  # any Unicode characters: é, ß, emoji, CJK
    stoi = {c: i for i, c in enumerate(chars)}
    BOS, vocab_size = len(chars), len(chars) + 1  # BOS is the last id

def use_model(sd):  # the weights that Part 1's gpt() reads and Adam trains
    global state_dict, params
    state_dict = sd
    params = [p for mat in state_dict.values() for row in mat for p in row]

def check_save_path():  # before training, so that no run is wasted
    folder = os.path.dirname(save) or '.'
    if not os.path.isdir(folder):
        die(f'--save={save}: that folder does not exist')
    if os.path.isdir(save):
        die(f'--save={save} is a folder; give a file name, such as --save={save}/model.json')
    if os.path.exists(save) and os.path.samefile(save, input_file):
        die(f'--save={save} would overwrite the input file; save the model under another name')
    try:
        open(f'{save}.tmp{os.getpid()}', 'w').close()  # can we write there at all?
        os.remove(f'{save}.tmp{os.getpid()}')
    except OSError as e:
        die(f'--save={save}: cannot write in {folder!r} ({e.strerror}); choose another folder')

def save_model(path):
    blob = json.dumps({'config': {k: globals()[k] for k in SHAPE}, 'chars': chars,
                       'state_dict': float_weights()})
    tmp = f'{path}.tmp{os.getpid()}'  # write beside the target, then rename: never a half file
    try:
        with open(tmp, 'w', encoding='utf-8') as f:
            f.write(blob)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as e:
        die(f'cannot save the model to {path!r}: {e.strerror}', 1)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)

def load_model(path, given):
    """A model file is untrusted input: every part of it is checked before anything is built, and
    what is built is no bigger than what the file holds."""
    def bad(why):
        die(f'model file {path!r} is not a microgpt model ({why}); pass a file written by --save')
    try:
        with open(path, 'rb') as f:
            blob = json.loads(f.read())
    except FileNotFoundError:
        die(f'model file {path!r} not found; make one with --save={path}')
    except OSError as e:
        die(f'cannot read model file {path!r}: {e.strerror}')
    except (ValueError, RecursionError, MemoryError) as e:  # not JSON, not UTF-8, nested too deep
        bad(f'not JSON: {type(e).__name__}')
    if type(blob) is not dict or set(blob) != {'config', 'chars', 'state_dict'}:
        bad('it needs the keys config, chars and state_dict')
    config, vocab, sd = blob['config'], blob['chars'], blob['state_dict']
    if type(config) is not dict or set(config) != set(SHAPE):
        bad(f'its config needs exactly {", ".join(SHAPE)}')
    if any(type(config[k]) is not int or config[k] < 1 for k in SHAPE):
        bad('its config holds whole numbers of at least 1')
    if config['n_embd'] % config['n_head']:
        bad('its n_embd is not a multiple of its n_head')
    if type(vocab) is not list or any(type(c) is not str or len(c) != 1 for c in vocab):
        bad('its chars must be a list of single characters')
    if len(set(vocab)) != len(vocab):
        bad('its chars repeat a character')
    n, v, layers = config['n_embd'], len(vocab) + 1, config['n_layer']
    if type(sd) is not dict or len(sd) != 3 + 6 * layers:  # checked first: n_layer may be huge
        bad('its state_dict has the wrong number of matrices')
    shapes = {'wte': (v, n), 'wpe': (config['block_size'], n), 'lm_head': (v, n)}
    for i in range(layers):
        shapes.update({f'layer{i}.attn_w{c}': (n, n) for c in 'qkvo'})
        shapes.update({f'layer{i}.mlp_fc1': (4 * n, n), f'layer{i}.mlp_fc2': (n, 4 * n)})
    for name, (rows, cols) in shapes.items():
        mat = sd.get(name)
        if type(mat) is not list or len(mat) != rows:
            bad(f'{name} is missing or does not have {rows} rows')
        if any(type(row) is not list or len(row) != cols for row in mat):
            bad(f'a row of {name} does not have {cols} numbers')
        if not all(type(x) is float and math.isfinite(x) for row in mat for x in row):
            bad(f'{name} holds something other than finite decimal numbers')
    for k in SHAPE:
        if k in given and given[k] != config[k]:
            die(f'--{k}={given[k]} contradicts {path!r}, which has {k}={config[k]}; leave out --{k}')
    globals().update(config)
    if len(prompt) >= block_size:
        die(f'--prompt must be shorter than the loaded block_size={block_size} characters')
    use_vocab(vocab)
    use_model({name: [[Value(x) for x in row] for row in mat] for name, mat in sd.items()})

# --- progress: one line updated in place in a terminal; every tenth of the run when piped ---------
progress_clock = {'start': 0.0, 'shown': 0.0}

def show_progress(text, last=False):  # in a terminal only, once the work has taken a second
    now = time.time()
    if sys.stdout.isatty() and now - progress_clock['start'] > 1 and (
            last or now - progress_clock['shown'] > 0.1):
        print(f'\r{text} ', end='\n' if last else '', flush=True)
        progress_clock['shown'] = now

def chart(values, width=40):  # a one-line picture of a series: ▁ is its lowest value, █ its highest
    picks = [values[i * len(values) // width] for i in range(min(width, len(values)))]
    lo, hi = min(picks), max(picks)
    return ''.join('▁▂▃▄▅▆▇█'[int(7 * (x - lo) / (hi - lo or 1))] for x in picks)

# --- training: Part 1's train(), shown as it goes; Ctrl-C or SIGTERM stops it between two steps ----
def run_training(train_docs):
    stop = []
    handlers = {s: signal.signal(s, lambda signum, frame: stop.append(signum))
                for s in (signal.SIGINT, signal.SIGTERM)}
    collector_was_on = gc.isenabled()
    if pause_gc:  # Part 2
        gc.disable()
    start, tty, losses, means = time.time(), sys.stdout.isatty(), [], []
    try:
        start_workers()
        for step, loss in train(train_docs):
            if not math.isfinite(loss):
                die(f'the loss became nan or inf at step {step + 1}; '
                    f'try a lower --learning_rate (now {learning_rate})', 1)
            losses.append(loss)
            means.append(sum(losses[-100:]) / len(losses[-100:]))  # the last 100 steps' mean
            ms = (time.time() - start) * 1000 / (step + 1)
            if tty or (step + 1) % max(1, num_steps // 10) == 0:
                eta = ms * (num_steps - step - 1) / 1000
                print(f'step {step + 1:5d} / {num_steps} | loss {loss:.4f} | mean {means[-1]:.4f} | '
                      f'{ms:.1f} ms/step | eta {eta:.0f}s ', end='\r' if tty else '\n', flush=True)
            if stop:
                print(f'\nstopped by {signal.Signals(stop[0]).name} at step {step + 1}')
                break
    except ArithmeticError:  # an overflow: the numbers blew up
        die(f'the numbers overflowed in training; try a lower --learning_rate (now {learning_rate})', 1)
    finally:
        stop_workers()
        for s, handler in handlers.items():
            signal.signal(s, handler)
        if collector_was_on:
            gc.enable()
    if tty and losses and not stop:
        print()
    if len(means) > 1:
        print(f'loss, mean of the last 100 steps: {means[0]:.2f} {chart(means)} {means[-1]:.2f}')

def start_workers():  # Part 2's data parallelism: the pool lives for one training run
    global pool
    import multiprocessing
    method = multiprocessing.get_start_method()
    if min(workers, batch_size) < 2 or num_steps == 0:
        return
    if method != 'fork' and '__file__' not in globals():
        print(f'one process: workers need a file to start from with the {method!r} method')
        return
    config = {k: globals()[k] for k in SETTINGS if k != 'explain'}
    pool = multiprocessing.Pool(min(workers, batch_size) - 1, init_worker, (config, chars, state_dict))

def init_worker(config, vocab, sd):  # in a new worker process: the same settings and model
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the main process's to handle
    globals().update(config)
    use_vocab(vocab)
    use_model(sd)

def stop_workers():
    global pool
    if pool:
        pool.terminate()
        pool.join()
    pool = None

# --- explain: an x-ray of the model reading one text ---------------------------------------------
def explain(text):
    """For each position: the character read, the model's top 5 guesses for the next one, the
    probability and loss of the real next one, and each head's attention over the positions read
    so far, as shades under their characters (█ = all of it). Returns the numbers it prints."""
    unknown = sorted(set(text) - set(chars))
    if unknown:
        die(f'--explain has characters the model does not know: {"".join(unknown)[:20]!r}')
    sd, tokens, rows, plain_softmax = float_weights(), encode(text)[:block_size + 1], [], softmax
    keys, values = [[] for _ in range(n_layer)], [[] for _ in range(n_layer)]
    show = lambda i: '.' if i == BOS else chars[i]
    print(f'explain {text!r} (BOS is shown as .)\npos read next  p(next)   loss | top 5 guesses')
    for t in range(len(tokens) - 1):
        heads = []  # inside gpt(), each softmax() is one head's attention weights, layer by layer
        globals()['softmax'] = lambda logits: heads.append(plain_softmax(logits)) or heads[-1]
        try:
            logits = gpt(tokens[t], t, keys, values, sd)
        finally:
            globals()['softmax'] = plain_softmax
        probs = fused_softmax(logits)
        top = sorted(range(vocab_size), key=lambda i: -probs[i])[:5]
        loss = -math.log(probs[tokens[t + 1]])
        rows.append({'probs': probs, 'loss': loss, 'attention': heads})
        guesses = '  '.join(f'{show(i)} {probs[i]:4.0%} {"█" * round(probs[i] * 6):6}' for i in top)
        print(f'{t:3d}   {show(tokens[t])}    {show(tokens[t + 1])}  {probs[tokens[t + 1]]:7.4f} '
              f'{loss:6.3f} | {guesses}')
        print(f'{"":14}reads  ' + ' '.join(show(i) for i in tokens[:t + 1]))
        for h, weights in enumerate(heads):
            cells = ' '.join(' ░▒▓█'[round(4 * w)] for w in weights)
            print(f'{"":14}{f"L{h // n_head} H{h % n_head}":7}{cells}')
    print(f'mean loss {sum(r["loss"] for r in rows) / len(rows):.4f} over {len(rows)} predictions')
    return rows

# --- run: everything, in order --------------------------------------------------------------------
def main(argv):
    given = configure(argv)
    if hasattr(sys.stdout, 'reconfigure'):  # a console that cannot show a character shows '?'
        sys.stdout.reconfigure(errors='replace')
    random.seed(seed)
    train_docs, val_docs = split_docs(read_text(input_file))
    if not train_docs:
        die(f'input file {input_file!r} needs at least 2 non-empty lines: one to train on, one held out')
    if save:
        check_save_path()
    if load:
        load_model(load, given)
    else:
        use_vocab(sorted(set(''.join(train_docs + val_docs))))
        use_model(init_model())
    for what, text in (('--prompt', prompt), (f'input file {input_file!r}', ''.join(train_docs + val_docs))):
        unknown = ''.join(sorted(set(text) - set(chars)))
        if unknown:
            die(f'{what} has characters the model does not know: {unknown[:20]!r}; '
                f'it knows {"".join(chars)[:80]!r}')
    print(f'{len(train_docs)} train docs, {len(val_docs)} held out | vocab {vocab_size} | '
          f'{len(params)} params | fused={fused}')
    long_docs = sum(len(doc) >= block_size for doc in train_docs)
    if long_docs:
        print(f'{long_docs} train docs are longer than the context (block_size={block_size}): '
              f'each step trains on a window of one at a random start')
    run_training(train_docs)
    if save:
        save_model(save)
        print(f'saved the model to {save}')
    n = min(eval_docs, len(val_docs))
    if n:
        progress_clock['start'] = time.time()
        val, train_loss = evaluate(val_docs[:n]), evaluate(train_docs[:n])
        print(f'val loss {val:.4f} | train loss {train_loss:.4f}')
    random.seed(seed)  # so the samples depend only on the weights and the seed
    samples = [sample() for _ in range(num_samples)]
    for i, s in enumerate(samples):
        print(f'sample {i + 1:2d}: {s}')
    if samples:
        copies = sum(s in set(train_docs) for s in samples)
        print(f'{len(samples) - copies} of {len(samples)} samples are new, {copies} copy a training doc')
    if given.get('explain'):
        explain(given['explain'])

if __name__ == '__main__':  # true in a notebook cell too; there sys.argv is the kernel's, no __file__
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # like Ctrl-C: clean up, then stop
    try:
        main(sys.argv[1:] if '__file__' in globals() else [])
    except KeyboardInterrupt:
        die('interrupted', 130)
    except BrokenPipeError:  # piped into `head`: stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    except MemoryError:
        die('out of memory: the model is too big for this machine; make it smaller', 1)
