"""A conversation in miniature (issue 29): a chat model is the same next-token model, trained on
documents shaped like conversations. Each document here is one user turn and one reply, and the
reply is right only if the model reads the turn: it must repeat the user's name.

    python tests/chat.py data      # remake tests/data/chat.txt from input.txt
    python tests/chat.py run       # train from scratch (3.3 CPU minutes here), answer 500 turns
    python tests/chat.py quick     # the same, small (300 steps, 200 turns), to try the script

A document is "i'm anna>hi anna": the user turn, '>', the reply. One document per distinct name of
input.txt, so microgpt's split by checksum (split_docs) puts each name on one side only; a held-out
name that occurs anywhere in a training document ("ann" in "i'm anna>hi anna") is dropped from the
file, so no held-out name was ever trained on. Names of at most MAX_NAME letters: every document
then fits in BLOCK_SIZE with its closing BOS.

`run` trains with microgpt's main() in this process, then gives the model each held-out user turn
("i'm anna>") as the prompt and samples at TEMPERATURE; an answer is exactly right if the whole
sampled document equals the held-out one (the reply and its end). Baselines on the same turns,
neither of which can read the turn: the same model at step 0, and a character bigram counted on
the training documents. Then "can it learn from an example in its prompt?": a prompt that shows
a new reply first. Last, the saved model asked by `python microgpt.py --prompt=...` with a name
that input.txt does not have (DEMO). Seeded: the figures are the same on any machine with the same
microgpt.py; the CPU and wall times are printed with the load average. Standard library only.
Figures and method: tests/README.md, "A conversation in miniature".
"""
import contextlib, io, os, random, subprocess, sys, tempfile, time, zlib

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NAMES = os.path.join(ROOT, 'input.txt')
CHAT = os.path.join(ROOT, 'tests', 'data', 'chat.txt')
sys.path.insert(0, ROOT)
import microgpt as m  # noqa: E402

MAX_NAME = 7      # letters: "i'm " + 7 + ">hi " + 7 is 22 characters, 23 predictions
BLOCK_SIZE = 40   # the context: every document, and room for an example before it
TEMPERATURE = 0.1  # sampling the answers: nearly always the likeliest character
DEMO = 'zaphod'  # a name that input.txt does not have, for the command line
MODEL = ['--n_layer=2', '--n_head=1']  # trained from scratch: two layers, one head of 16
SETTINGS = {'run': (3500, 500), 'quick': (300, 200)}  # (training steps, held-out turns answered)


def turn(name):  # the user's turn, as a prompt: the model writes the reply after '>'
    return f"i'm {name}>"


def document(name):
    return f'{turn(name)}hi {name}'


def name_of(doc):  # "i'm anna>hi anna" -> 'anna'
    return doc[len("i'm "):doc.index('>')]


def chat_docs(names):
    """-> the documents, sorted: one per distinct name of at most MAX_NAME letters; held-out
    ones (by microgpt's split) whose name occurs in a training document are dropped."""
    docs = sorted({document(n) for n in names if 0 < len(n) <= MAX_NAME})
    train_docs, val_docs = m.split_docs('\n'.join(docs))
    seen = '\n'.join(train_docs)
    dropped = {doc for doc in val_docs if name_of(doc) in seen}
    return [doc for doc in docs if doc not in dropped]


def chat_text(names_text):
    return '\n'.join(chat_docs(names_text.split())) + '\n'


def data():
    """Writes tests/data/chat.txt from input.txt, or says it is already so."""
    text = chat_text(m.read_text(NAMES))
    print(f'chat.txt: {text.count(chr(10))} documents, CRC-32 {zlib.crc32(text.encode()):08x}')
    if os.path.exists(CHAT) and m.read_text(CHAT) == text:
        return print(f'  identical to {CHAT}: nothing to do')
    with open(CHAT, 'w', encoding='utf-8', newline='\n') as f:
        f.write(text)
    print(f'  wrote {CHAT}')


# --- scoring: the share of held-out turns answered exactly right ---------------
def score(docs, answer):
    """answer(prompt) -> the whole document it makes. -> (how many are exactly the held-out
    document, the answers)."""
    answers = [answer(doc[:doc.index('>') + 1]) for doc in docs]
    return sum(a == doc for a, doc in zip(answers, docs)), answers


def model_answer(prompt):  # microgpt's sample(), from the prompt, at TEMPERATURE
    m.prompt, m.temperature = prompt, TEMPERATURE
    return m.sample()


def bigram(train_docs):
    """-> answer(prompt): a character bigram counted on train_docs (add-one), sampled at
    TEMPERATURE from where the prompt ends; it sees only the prompt's last character."""
    ids = {c: i for i, c in enumerate(sorted(set(''.join(train_docs))) + ['\n'])}
    counts = [[1] * len(ids) for _ in ids]  # '\n' is BOS: it starts and ends each document
    for doc in train_docs:
        for a, b in zip('\n' + doc, doc + '\n'):
            counts[ids[a]][ids[b]] += 1
    chars = list(ids)

    def answer(prompt):
        text = prompt
        while len(text) < BLOCK_SIZE - 1:
            weights = [c ** (1 / TEMPERATURE) for c in counts[ids[text[-1]]]]
            c = random.choices(chars, weights=weights)[0]
            if c == '\n':
                break
            text += c
        return text
    return answer


def quiet_main(*argv):  # microgpt's main(), from the default settings; its output only counted
    m.reset_settings()
    with contextlib.redirect_stdout(io.StringIO()) as out:
        m.main(list(argv))
    return out.getvalue()


def shown(label, right, answers, docs, n=3):  # -> the lines that report a score
    lines = [f'{label}: {right} of {len(docs)} exactly right ({100 * right / len(docs):.1f}%)']
    for doc, a in list(zip(docs, answers))[:n]:
        lines.append(f'    {a!r:26} {"right" if a == doc else "wrong"}')
    return '\n'.join(lines)


def baselines(train_docs, turns, flags):
    """-> what two models that cannot read the turn answer: the model at step 0 (flags, not
    trained) and a character bigram."""
    quiet_main(*flags, '--num_steps=0', '--eval_docs=0', '--num_samples=0')
    random.seed(m.seed)
    step0 = shown('the model at step 0', *score(turns, model_answer), turns)
    random.seed(m.seed)
    return step0 + '\n' + shown('a character bigram', *score(turns, bigram(train_docs)), turns)


def held_out_turns(n):  # -> the training documents and n held-out ones, spread over all
    random.seed(m.seed)
    train_docs, val_docs = m.split_docs(m.read_text(CHAT))
    return train_docs, m.spread(val_docs, n)


def with_example(turns, greeting):
    """Prompts that show an example reply first: "i'm eve>yo eve i'm anna>" (each turn's name
    after the next turn's, when both fit the context). -> [(prompt, the reply that follows the
    example, the trained reply)]."""
    out = []
    for doc, other in zip(turns, turns[1:] + turns[:1]):
        a, b = name_of(other), name_of(doc)
        prompt = f'{turn(a)}{greeting} {a} {turn(b)}'
        if len(prompt) + len(greeting) + 1 + len(b) < BLOCK_SIZE:  # and the closing BOS
            out.append((prompt, f'{prompt}{greeting} {b}', f'{prompt}hi {b}'))
    return out


def in_context(turns):
    """Can it learn from an example in its prompt? A new reply ('yo') shown first, then a
    held-out turn; as a control, the trained reply ('hi') shown first."""
    for greeting in ('yo', 'hi'):
        tests = with_example(turns, greeting)
        random.seed(m.seed)
        answers = [model_answer(prompt) for prompt, _, _ in tests]
        follow = sum(a == want for a, (_, want, _) in zip(answers, tests))
        trained = sum(a == hi for a, (_, _, hi) in zip(answers, tests))
        print(f'an example reply {greeting!r} first: {follow} of {len(tests)} answer as the '
              f'example does, {trained} with the trained reply')
        for a in answers[:2]:
            print(f'    {a!r}')


def run(setting):
    steps, n_turns = SETTINGS[setting]
    flags = [f'--input_file={CHAT}', f'--block_size={BLOCK_SIZE}', *MODEL]
    train_docs, turns = held_out_turns(n_turns)
    print(f'{len(train_docs)} training documents; {len(turns)} held-out turns answered at '
          f'temperature {TEMPERATURE}', flush=True)
    print(baselines(train_docs, turns, flags), flush=True)

    flags.append(f'--num_steps={steps}')
    print(f'$ python microgpt.py {" ".join(flags)}'.replace(ROOT + os.sep, ''), flush=True)
    with tempfile.TemporaryDirectory() as d:
        cpu, wall = time.process_time(), time.perf_counter()
        out = quiet_main(*flags, '--eval_interval=0', '--num_samples=0', f'--save={d}/chat.json')
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        for line in out.splitlines():
            if line.startswith(('compute:', 'val loss')):
                print(f'    {line}')
        print(f'training: {cpu:.1f} s CPU, {wall:.1f} s wall, load average '
              f'{" ".join(f"{x:.2f}" for x in os.getloadavg())}', flush=True)
        random.seed(m.seed)
        print(shown('the trained model', *score(turns, model_answer), turns, n=6))
        in_context(turns)
        ask = ['--input_file=tests/data/chat.txt', '--load=chat.json', '--num_steps=0',
               '--eval_docs=0', f'--temperature={TEMPERATURE}', '--num_samples=3']
        print(f'$ python microgpt.py {" ".join(ask)} --prompt="{turn(DEMO)}"  (chat.json: this '
              f'model, saved)')
        ask[1] = f'--load={d}/chat.json'
        out = subprocess.run([sys.executable, 'microgpt.py', *ask, f'--prompt={turn(DEMO)}'],
                             cwd=ROOT, capture_output=True, text=True, check=True).stdout
        print('\n'.join(f'    {line}' for line in out.splitlines() if line.startswith('sample')))


def main(argv):
    if argv == ['data']:
        return data()
    if len(argv) != 1 or argv[0] not in SETTINGS:
        sys.exit(__doc__)
    run(argv[0])


if __name__ == '__main__':
    main(sys.argv[1:])
