"""What the attention scale `head_dim ** -0.5` does at initialisation, measured (issue 28).

    python tests/attention_scale.py [NAMES]     # NAMES: how many names of input.txt (20)

For n_embd 16 and 256 (n_head 4: head_dim 4 and 64), the default init (std 0.08 * sqrt(16 /
n_embd)) and the first NAMES names of input.txt read by microgpt's own gpt(): the spread (std)
of the entries of q and k, the spread of the attention logits, and how peaked the attention
weights are (the mean largest weight, and the mean entropy as a share of a uniform one's, log T),
over every head at every position that reads 2 or more, with the scale and without it. With one
layer the logits do not depend on the scale, so both rows come from the same forward pass: the
logits without the scale are those with it times sqrt(head_dim). Seeded: the same figures on any
machine. Standard library only.
"""
import math, os, statistics, sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
import microgpt as m  # noqa: E402


def measure(n_embd, names):
    """-> {what: figure} of the attention at initialisation, at this width."""
    m.reset_settings()
    m.n_embd = n_embd
    m.random.seed(m.seed)
    m.use_vocab(sorted(set(''.join(names))))
    m.use_weights()
    head_dim = n_embd // m.n_head
    sd = m.float_weights()
    logits, qk, real_softmax, real_linear = [], [], m.softmax, m.linear

    def softmax(x):  # in gpt(), softmax() of floats is attention's: record its logits
        logits.append(list(x))
        return real_softmax(x)

    def linear(x, w):  # q and k: the first two of each position's projections
        out = real_linear(x, w)
        if w is sd['layer0.attn_wq'] or w is sd['layer0.attn_wk']:
            qk.extend(out)
        return out
    m.softmax, m.linear = softmax, linear
    try:
        for name in names:
            keys, values = m.empty_cache()
            for pos, token in enumerate(m.encode(name)[:m.block_size]):
                m.gpt(token, pos, keys, values, sd)
    finally:
        m.softmax, m.linear = real_softmax, real_linear
    rows = {}
    for scaled in (True, False):
        z = [row if scaled else [x * head_dim ** 0.5 for x in row] for row in logits]
        z = [row for row in z if len(row) > 1]  # one position read: its weight is 1 either way
        weights = [real_softmax(row) for row in z]
        rows[scaled] = {
            'logit std': statistics.pstdev([x for row in z for x in row]),
            'max weight': statistics.fmean(max(w) for w in weights),
            'uniform max': statistics.fmean(1 / len(w) for w in weights),
            'entropy share': statistics.fmean(
                -sum(p * math.log(p) for p in w if p > 0) / math.log(len(w)) for w in weights)}
    return statistics.pstdev(qk), head_dim, rows


def main(argv):
    n = int(argv[0]) if argv else 20
    with open(os.path.join(ROOT, 'input.txt'), encoding='utf-8') as f:
        names = f.read().split()[:n]
    print(f'attention at initialisation: microgpt defaults, the first {n} names of input.txt, '
          f'every head at every position reading 2 or more')
    print('| n_embd | head_dim | q, k entries: std | scale | logits: std | mean max weight '
          '(uniform) | entropy / log T |')
    print('|---|---|---|---|---|---|---|')
    for n_embd in (16, 256):
        qk_std, head_dim, rows = measure(n_embd, names)
        for scaled, r in rows.items():
            scale = '1/sqrt(head_dim)' if scaled else 'none'
            peak = f'{r["max weight"]:.3f} ({r["uniform max"]:.3f})'
            print(f'| {n_embd} | {head_dim} | {qk_std:.3f} | {scale} | {r["logit std"]:.3f} '
                  f'| {peak} | {r["entropy share"]:.4f} |')


if __name__ == '__main__':
    main(sys.argv[1:])
