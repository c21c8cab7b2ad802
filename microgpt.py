"""microgpt: train a tiny GPT on a text file and sample from it, in plain Python with no dependencies.
Read it top to bottom; `python microgpt.py` runs it all, and `--name=value` changes any setting below."""
import json, math, os, random, sys, time
from operator import mul

# --- config: the reference run; every name here can be overridden as --name=value -------------
n_layer = 1               # transformer blocks
n_embd = 16               # width of the vector that represents each token
n_head = 4                # attention heads; each one looks at n_embd // n_head of those numbers
block_size = 16           # context length: a document is cut to this many predictions
num_steps = 1000          # training steps, one document per step
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
save = ''                 # after training, write the model to this JSON file
load = ''                 # start from a model saved with --save instead of from random weights
eval_docs = 5000          # held-out docs to score after training (and as many training docs); 0 skips
fused = True              # fused n-ary graph nodes (fast); False builds the model from binary ops only
SETTINGS = {k: v for k, v in globals().items() if not k.startswith('_') and type(v) in (bool, int, float, str)}
SHAPE = ('n_layer', 'n_embd', 'n_head', 'block_size')  # the settings that a saved model fixes

def die(message, code=2):  # errors are for people: one line that says what is wrong and what to do
    print(f'microgpt: {message}', file=sys.stderr); raise SystemExit(code)

def configure(argv):  # reset every setting to its default, apply --name=value overrides; return the names given
    globals().update(SETTINGS)
    for arg in argv:
        name, _, text = arg[2:].partition('=')
        if not arg.startswith('--') or name not in SETTINGS:
            die(f"unknown setting {arg!r}; the settings are --{', --'.join(SETTINGS)}")
        kind = type(SETTINGS[name])
        try: globals()[name] = {'true': True, 'false': False}[text.lower()] if kind is bool else kind(text)
        except (KeyError, ValueError):
            die(f'--{name} takes {({bool: "True or False", int: "a whole number"}).get(kind, "a number")}, not {text!r}')
    if check_settings(): die(check_settings())
    return {arg[2:].partition('=')[0] for arg in argv}

def check_settings():  # the first impossible setting, or None
    rules = [(min(n_layer, n_embd, n_head, block_size) >= 1, 'n_layer, n_embd, n_head and block_size must be at least 1'),
             (n_embd % max(n_head, 1) == 0, f'n_embd={n_embd} must be a multiple of n_head={n_head}'),
             (min(num_steps, num_samples, eval_docs) >= 0, 'num_steps, num_samples and eval_docs cannot be negative'),
             (0 < learning_rate < math.inf and 0 < eps < math.inf and 0 <= beta1 < 1 and 0 <= beta2 < 1,
              'learning_rate and eps must be positive numbers, beta1 and beta2 at least 0 and below 1'),
             (0 <= init_std < math.inf and 0 < temperature < math.inf, 'init_std must be >= 0 and temperature > 0'),
             (len(prompt) < block_size, f'--prompt must be shorter than block_size={block_size} characters'),
             (not save or os.path.isdir(os.path.dirname(save) or '.'), f'--save={save}: that folder does not exist')]
    return next((message for ok, message in rules if not ok), None)

# --- dataset: one document per non-empty line, shuffled, with a held-out part never trained on --
def read_docs(path):
    try:
        with open(path, 'rb') as f: text = f.read().decode('utf-8-sig')  # -sig: drop a byte-order mark
    except FileNotFoundError: die(f'input file {path!r} not found; pass --input_file=PATH, one document per line')
    except UnicodeDecodeError as e: die(f'input file {path!r} is not UTF-8 text (bad byte at offset {e.start}); save it as UTF-8')
    except OSError as e: die(f'cannot read input file {path!r}: {e.strerror}')
    docs = [line.strip() for line in text.splitlines() if line.strip()]
    if len(docs) < 2: die(f'input file {path!r} needs at least 2 non-empty lines: one to train on, one held out')
    random.shuffle(docs)
    n_val = max(1, min(len(docs) // 10, 5000))  # ~10% held out, to measure an honest loss
    return docs[n_val:], docs[:n_val]            # train_docs, val_docs

# --- tokenizer: one token per character, plus BOS, which both starts and ends every document ----
def use_vocab(vocab):
    global chars, stoi, BOS, vocab_size
    chars = list(vocab)                       # any Unicode characters: é, ß, emoji, CJK
    stoi = {c: i for i, c in enumerate(chars)}
    BOS, vocab_size = len(chars), len(chars) + 1  # BOS is the last id

def encode(doc): return [BOS] + [stoi[c] for c in doc] + [BOS]
def decode(ids): return ''.join(chars[i] for i in ids if i != BOS)

# --- autograd: scalars that remember how they were made, and the chain rule run backwards ------
class Value:
    """One number in the graph: data, d(loss)/d(data), and the local gradient to each child."""
    __slots__ = ('data', 'grad', '_children', '_local_grads')  # no per-object dict: less memory, faster
    def __init__(self, data, children=(), local_grads=()):
        self.data, self.grad = data, 0.0
        self._children, self._local_grads = children, local_grads  # d(self)/d(child), child by child
    def __add__(self, other):
        other = other if isinstance(other, Value) else Value(other)
        return Value(self.data + other.data, (self, other), (1.0, 1.0))
    def __mul__(self, other):
        other = other if isinstance(other, Value) else Value(other)
        return Value(self.data * other.data, (self, other), (other.data, self.data))
    def __pow__(self, k): return Value(self.data ** k, (self,), (k * self.data ** (k - 1),))  # k: a number
    def log(self): return Value(math.log(self.data), (self,), (1 / self.data,))
    def exp(self): e = math.exp(self.data); return Value(e, (self,), (e,))
    def relu(self): return Value(max(0.0, self.data), (self,), (float(self.data > 0),))
    def __neg__(self): return self * -1
    def __radd__(self, other): return self + other
    def __sub__(self, other): return self + (-other)
    def __rsub__(self, other): return other + (-self)
    def __rmul__(self, other): return self * other
    def __truediv__(self, other): return self * other ** -1
    def __rtruediv__(self, other): return other * self ** -1

    def backward(self):
        """Chain rule: each node adds local_grad * its grad to each child (products along a path, sums over
        paths), in reverse topological order, found depth-first with a stack (not recursion: any depth)."""
        topo, visited, stack = [], {self}, [(self, iter(self._children))]
        while stack:
            v, children = stack[-1]
            for c in children:  # go down to the first child not yet visited; leaves need no visit
                if c._children and c not in visited:
                    visited.add(c); stack.append((c, iter(c._children))); break
            else:               # all of v's children are placed: v goes after them
                stack.pop(); topo.append(v)
        self.grad = 1.0
        for v in reversed(topo):
            g = v.grad
            for child, local_grad in zip(v._children, v._local_grads):
                child.grad += local_grad * g

# Fused n-ary nodes: one node for a whole sum, dot product, softmax output or loss, with one local gradient
# per child. This trades some clarity for speed: a step makes ~2,900 nodes instead of ~53,000 with one per * and +.
# fused=False builds the same things from the binary ops above; plain floats build no graph at all.
def vsum(xs):
    if not isinstance(xs[0], Value): return sum(xs)
    if not fused: return sum(xs[1:], xs[0])
    return Value(sum(x.data for x in xs), tuple(xs), (1.0,) * len(xs))  # d sum / d x_i = 1

def dot(ws, xs, xd=None):  # xd: the data of xs, if the caller has it already
    if not isinstance(ws[0], Value): return sum(map(mul, ws, xs))
    if not fused: return sum(map(mul, ws[1:], xs[1:]), ws[0] * xs[0])
    wd, xd = [w.data for w in ws], xd or [x.data for x in xs]
    return Value(sum(map(mul, wd, xd)), ws + xs, xd + wd)  # d/dw_i = x_i, d/dx_i = w_i

def exp(x): return x.exp() if isinstance(x, Value) else math.exp(x)
def log(x): return x.log() if isinstance(x, Value) else math.log(x)
def relu(x): return x.relu() if isinstance(x, Value) else max(0.0, x)
def data(x): return x.data if isinstance(x, Value) else x

# --- model: a GPT-2-like transformer, one token at a time, with a cache of keys and values ------
def init_model():
    global state_dict, params
    matrix = lambda nout, nin: [[Value(random.gauss(0, init_std)) for _ in range(nin)] for _ in range(nout)]
    state_dict = {'wte': matrix(vocab_size, n_embd), 'wpe': matrix(block_size, n_embd), 'lm_head': matrix(vocab_size, n_embd)}
    for i in range(n_layer):
        state_dict.update({f'layer{i}.attn_w{c}': matrix(n_embd, n_embd) for c in 'qkvo'})
        state_dict.update({f'layer{i}.mlp_fc1': matrix(4 * n_embd, n_embd), f'layer{i}.mlp_fc2': matrix(n_embd, 4 * n_embd)})
    params = [p for mat in state_dict.values() for row in mat for p in row]  # 4,192 at the defaults

def float_weights(): return {k: [[p.data for p in row] for row in mat] for k, mat in state_dict.items()}  # no graph

def linear(x, w):  # (nout, nin) @ (nin,) -> (nout,), no bias
    xd = [xi.data for xi in x] if isinstance(x[0], Value) else None  # read x's data once, for all rows
    return [dot(row, x, xd) for row in w]

def softmax(logits):
    if fused and isinstance(logits[0], Value):  # output i is one node: d p_i/d logit_j = p_i (1[i=j] - p_j)
        probs = softmax([l.data for l in logits])
        return [Value(p, logits, [p * ((i == j) - q) for j, q in enumerate(probs)]) for i, p in enumerate(probs)]
    m = max(map(data, logits))  # subtracting the max changes nothing but keeps exp() from overflowing
    exps = [exp(l - m) for l in logits]
    inv = vsum(exps) ** -1
    return [e * inv for e in exps]

def rmsnorm(x):
    scale = (dot(x, x) / len(x) + 1e-5) ** -0.5  # rescales x to a mean square of 1
    return [xi * scale for xi in x]

def gpt(token_id, pos_id, keys, values, sd=None):
    """Logits (vocab_size,) for the token after this one. keys/values hold, per layer, the vectors of
    the earlier positions; this call appends its own, so attention can only look back: causal."""
    sd, hs = sd or state_dict, n_embd // n_head  # hs: head size
    x = rmsnorm([t + p for t, p in zip(sd['wte'][token_id], sd['wpe'][pos_id])])  # (n_embd,)
    for li in range(n_layer):
        # attention: each head takes a weighted average of the values so far, weights softmax(q.k)
        xn = rmsnorm(x)
        q, k, v = (linear(xn, sd[f'layer{li}.attn_w{c}']) for c in 'qkv')
        keys[li].append(k); values[li].append(v)
        heads = []
        for h in range(0, n_embd, hs):
            weights = softmax([dot(q[h:h+hs], kt[h:h+hs]) * hs ** -0.5 for kt in keys[li]])  # (T,)
            heads += [dot(weights, [vt[j] for vt in values[li]]) for j in range(h, h + hs)]
        x = [a + b for a, b in zip(linear(heads, sd[f'layer{li}.attn_wo']), x)]  # residual
        # MLP: widen 4x, relu, project back, and add to the residual stream again
        hidden = [relu(u) for u in linear(rmsnorm(x), sd[f'layer{li}.mlp_fc1'])]
        x = [a + b for a, b in zip(linear(hidden, sd[f'layer{li}.mlp_fc2']), x)]
    return linear(x, sd['lm_head'])

# --- loss: how surprised the model is by each real next token (cross-entropy) ------------------
def cross_entropy(logits, target):
    """-log softmax(logits)[target], as log-sum-exp minus the target's logit: never log(0)."""
    if fused and isinstance(logits[0], Value):  # one node: d loss/d logit_j = p_j - 1[j = target]
        floats = [l.data for l in logits]
        return Value(cross_entropy(floats, target), logits, [p - (j == target) for j, p in enumerate(softmax(floats))])
    m = max(map(data, logits))
    return log(vsum([exp(l - m) for l in logits])) + m - logits[target]

def doc_losses(tokens, sd=None):  # the loss at each position t: predict token t+1 from tokens 0..t
    keys, values = [[] for _ in range(n_layer)], [[] for _ in range(n_layer)]
    n = min(block_size, len(tokens) - 1)  # a document longer than the context is cut
    return [cross_entropy(gpt(tokens[t], t, keys, values, sd), tokens[t + 1]) for t in range(n)]

# --- optimizer: Adam, with bias correction --------------------------------------------------------
def adam_step(step, m, v, lr):
    """Move each parameter against running means of its gradient (m) and squared gradient (v). Both
    start at 0, so early on they are too small: dividing by 1 - beta**t undoes that bias."""
    c1, c2 = 1 - beta1 ** (step + 1), 1 - beta2 ** (step + 1)
    for i, p in enumerate(params):
        m[i] = beta1 * m[i] + (1 - beta1) * p.grad
        v[i] = beta2 * v[i] + (1 - beta2) * p.grad * p.grad
        p.data -= lr * (m[i] / c1) / (math.sqrt(v[i] / c2) + eps)
        p.grad = 0.0

# --- training: one document per step; Ctrl-C stops early and goes on to evaluation ---------------
def train(train_docs):
    m, v, start, tty = [0.0] * len(params), [0.0] * len(params), time.time(), sys.stdout.isatty()
    for step in range(num_steps):
        try:
            losses = doc_losses(encode(train_docs[step % len(train_docs)]))
            loss = vsum(losses) * (1 / len(losses))  # the mean over the document's positions
            loss.backward()
            if not math.isfinite(loss.data): raise ArithmeticError
            adam_step(step, m, v, learning_rate * (1 - step / num_steps))  # decays linearly to 0
            ms = (time.time() - start) * 1000 / (step + 1)
            if tty or (step + 1) % max(1, num_steps // 10) == 0:  # in a terminal: one line, updated in place
                print(f'step {step + 1:5d} / {num_steps} | loss {loss.data:.4f} | {ms:.1f} ms/step | eta {ms * (num_steps - step - 1) / 1000:.0f}s ',
                      end='\r' if tty and step + 1 < num_steps else '\n', flush=True)
        except ArithmeticError:  # nan, inf or an overflow: the numbers blew up
            die(f'the loss became nan or inf at step {step + 1}; try a lower --learning_rate (now {learning_rate})', 1)
        except KeyboardInterrupt: print(f'\nstopped by Ctrl-C at step {step + 1}'); return

# --- evaluation: mean loss per token on documents, in plain floats (no graph, so it is fast) ----
def evaluate(docs, weights):
    losses = [loss for doc in docs for loss in doc_losses(encode(doc), weights)]
    return sum(losses) / len(losses)

# --- saving and loading: the shape settings, the vocabulary and every weight, as JSON ------------
def save_model(path):
    blob = json.dumps({'config': {k: globals()[k] for k in SHAPE}, 'chars': chars, 'state_dict': float_weights()})
    tmp = f'{path}.tmp{os.getpid()}'  # write beside the target, then rename: never a half-written file
    try:
        with open(tmp, 'w', encoding='utf-8') as f: f.write(blob); f.flush(); os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as e: die(f'cannot save the model to {path!r}: {e.strerror}', 1)
    finally:
        if os.path.exists(tmp): os.remove(tmp)

def load_model(path, given):
    try:
        with open(path, encoding='utf-8') as f: blob = json.load(f)
        config, vocab, weights = blob['config'], blob['chars'], blob['state_dict']
        if set(config) != set(SHAPE) or any(type(config[k]) is not int for k in SHAPE): raise ValueError('bad config')
        for k in SHAPE:
            if k in given and globals()[k] != config[k]:
                die(f'--{k}={globals()[k]} contradicts {path!r}, which has {k}={config[k]}; leave out --{k}')
        globals().update(config)
        if check_settings(): raise ValueError(check_settings())
        use_vocab(vocab); init_model()
        shapes = lambda sd: {k: [len(row) for row in mat] for k, mat in sd.items()}
        if shapes(weights) != shapes(state_dict): raise ValueError('its weights do not have the shapes its config says')
        for p, x in zip(params, [x for k in state_dict for row in weights[k] for x in row]): p.data = float(x)
    except FileNotFoundError: die(f'model file {path!r} not found; make one with --save={path}')
    except (AttributeError, KeyError, OSError, TypeError, ValueError) as e:  # ValueError includes bad JSON
        die(f'model file {path!r} is not a microgpt model ({type(e).__name__}: {e}); pass a file written by --save')

# --- sampling: feed the model its own choices, one character at a time -------------------------
def sample(weights):
    keys, values = [[] for _ in range(n_layer)], [[] for _ in range(n_layer)]
    tokens = [BOS] + [stoi[c] for c in prompt]
    for pos in range(block_size):
        logits = gpt(tokens[pos], pos, keys, values, weights)
        if pos + 1 < len(tokens): continue  # still reading the prompt
        probs = softmax([l / temperature for l in logits])
        token = random.choices(range(vocab_size), weights=probs)[0]
        if token == BOS: break              # the model says the document ends here
        tokens.append(token)
    return decode(tokens)

# --- run: everything above, in order ---------------------------------------------------------------
def main(argv):
    given = configure(argv)
    random.seed(seed)
    train_docs, val_docs = read_docs(input_file)
    if load: load_model(load, given)
    else: use_vocab(sorted(set(''.join(train_docs + val_docs)))); init_model()
    for what, text in (('--prompt', prompt), (f'input file {input_file!r}', ''.join(train_docs + val_docs))):
        unknown = ''.join(sorted(set(text) - set(chars)))
        if unknown: die(f'{what} has characters the model does not know: {unknown[:20]!r}; it knows {"".join(chars)[:80]!r}')
    print(f'{len(train_docs)} train docs, {len(val_docs)} held out | vocab {vocab_size} | {len(params)} params | fused={fused}')
    train(train_docs)
    if save: save_model(save); print(f'saved the model to {save}')
    weights, n = float_weights(), min(eval_docs, len(val_docs))
    if n: print(f'val loss {evaluate(val_docs[:n], weights):.4f} | train loss {evaluate(train_docs[:n], weights):.4f}')
    random.seed(seed)  # so the samples depend only on the weights and the seed
    for i in range(num_samples): print(f'sample {i + 1:2d}: {sample(weights)}')

if __name__ == '__main__':  # true in a notebook cell too; there sys.argv is the kernel's and __file__ is unset
    try: main(sys.argv[1:] if '__file__' in globals() else [])
    except KeyboardInterrupt: die('interrupted', 130)
    except BrokenPipeError: os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # piped into `head`: stop quietly
