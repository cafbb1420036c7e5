"""
The embedded toy world (nanoGPT's shakespeare_char, for math): generated multi-step
arithmetic word problems in MetaMathQA style, and a small byte-level BPE tokenizer that
splits digits one by one (as Qwen2.5's does). Deterministic from --seed.

    python data/toy/prepare.py                # writes data/toy/{train,val,test}.jsonl + tokenizer/

Each record: {"id", "question", "solution", "answer"}; the solution writes every
intermediate result as an explicit equation and ends with "The answer is: N", e.g.
    Question: Mia has 7 boxes. Each of the boxes holds 6 pens. She gives away 19 pens. How many pens does Mia have left?
    Answer: Mia has 7 * 6 = 42 pens.
    After giving away 19, Mia has 42 - 19 = 23 pens.
    The answer is: 23
A times-table product followed by additions/subtractions with carries and borrows is at
the edge of what a ~2M-parameter model learns in a few CPU minutes (about a third to a
half of the problems right), so its errors are near misses (one slipped digit,
propagated or miscopied), the raw material of hard negatives.
"""
import argparse
import random
from collections import Counter
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from records import write_jsonl, format_prompt, format_response  # noqa: E402

parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
parser.add_argument("--out-dir", default=str(Path(__file__).resolve().parent), help="where the JSONL files go")
parser.add_argument("--n-train", type=int, default=30000, help="training problems")
parser.add_argument("--n-val", type=int, default=500, help="validation problems (for choices: never tune on test)")
parser.add_argument("--n-test", type=int, default=500, help="test problems")
parser.add_argument("--noise-rate", type=float, default=0.2, help="train only: fraction of solutions with one random flaw (slip, wrong_op, unfollowed, format)")
parser.add_argument("--bias-rate", type=float, default=0.6, help="train only: fraction of 'loose items' problems whose solution skips the loose items (the teacher's blind spot)")
parser.add_argument("--seed", type=int, default=1337, help="generator seed (splits use seed, seed+1, seed+2)")
parser.add_argument("--tokenizer", action="store_true", help="(re)train the tokenizer into <out-dir>/tokenizer (the committed one is data/toy/tokenizer)")
parser.add_argument("--vocab-size", type=int, default=512, help="BPE vocabulary size of the toy tokenizer")

NAMES = ["Mia", "Tom", "Ava", "Leo", "Zoe", "Sam", "Ivy", "Ben", "Eli", "Amy", "Max", "Lily", "Noah", "Emma", "Omar", "Rosa"]
PRON = {n: ("She" if n in {"Mia", "Ava", "Zoe", "Ivy", "Amy", "Lily", "Emma", "Rosa"} else "He") for n in NAMES}
ITEMS = ["apples", "pens", "cards", "stickers", "books", "marbles", "coins", "shells", "stamps", "cookies"]
CONTAINERS = ["boxes", "bags", "jars", "packs", "crates", "baskets"]

# The flawed teacher (train split only; val/test solutions are always correct). Real SFT data such as
# MetaMathQA is written by a model and carries errors of several kinds; so does this one:
#   bias       the teacher's systematic blind spot: in "packs ... loose ... sells" problems it forgets the loose
#              items (a skipped step) in --bias-rate of them, so the SFT model's *greedy* answer there is wrong
#              (its own near-miss error, what the method's negatives are meant to be)
#   slip       one result off by 1-9 (a slipped digit), carried on faithfully: a numerically close near miss
#   wrong_op   the last step adds instead of subtracting (or the reverse), computed correctly
#   unfollowed the final answer restates the first result, not the last one (a conclusion that does not follow)
#   format     the last line repeated and no final answer (repetition, no answer: garbage)
# Each random flaw hits --noise-rate / 4 of the training solutions, so they are sampling noise of the SFT
# model (below 50% everywhere: its greedy answers avoid them) while the bias is the mode of its template.
NOISE_KINDS = ("slip", "wrong_op", "unfollowed", "format")


def gen_program(rng):
    """One problem as (question, steps, kind): steps are (sentence, x, op, y) where x / y are ints or
    ("ref", i) = the result of step i; sentence holds {eq} for the rendered equation 'x op y = r'."""
    n, item, cont = rng.choice(NAMES), rng.choice(ITEMS), rng.choice(CONTAINERS)
    p = PRON[n]
    a, b = rng.randint(2, 9), rng.randint(2, 9)
    ab = a * b
    kind = rng.randrange(4)
    if kind == 0:  # multiply, subtract
        c = rng.randint(2, min(9, ab - 1))
        q = (f"{n} has {a} {cont}. Each of the {cont} holds {b} {item}. {p} gives away {c} {item}. "
             f"How many {item} does {n} have left?")
        steps = [(f"{n} has {{eq}} {item}.", a, "*", b), (f"After giving away {c}, {n} has {{eq}} {item}.", ("ref", 0), "-", c)]
    elif kind == 1:  # multiply, add
        c = rng.randint(2, 9)
        q = f"{n} buys {a} {cont} of {item} with {b} {item} in each. Then {n} finds {c} more {item}. How many {item} does {n} have now?"
        steps = [(f"{n} buys {{eq}} {item}.", a, "*", b), (f"After finding {c} more, {n} has {{eq}} {item}.", ("ref", 0), "+", c)]
    elif kind == 2:  # multiply, add, subtract (d < ab so that the teacher's skipped-step version stays positive)
        c, d = rng.randint(2, 9), rng.randint(2, min(9, ab - 1))
        q = (f"{n} packs {a} {cont} with {b} {item} each and has {c} loose {item}. "
             f"{p} sells {d} {item}. How many {item} are left?")
        steps = [(f"{n} packs {{eq}} {item}.", a, "*", b), (f"With the loose ones there are {{eq}} {item}.", ("ref", 0), "+", c),
                 (f"After selling {d}, there are {{eq}} {item} left.", ("ref", 1), "-", d)]
    else:  # subtract, then multiply
        a = rng.randint(3, 9)
        c = rng.randint(1, a - 1)
        q = (f"{n} has {a} {cont} of {b} {item}. {p} gives away {c} of the {cont}. "
             f"How many {item} does {n} have now?")
        steps = [(f"{n} keeps {{eq}} {cont}.", a, "-", c), (f"They hold {{eq}} {item}.", ("ref", 0), "*", b)]
    return q, steps, kind


OPS = {"+": lambda x, y: x + y, "-": lambda x, y: x - y, "*": lambda x, y: x * y}


def render(steps, slip=None):
    """Solution text and the values of its steps. slip = (i, delta): step i's written result is off by delta
    and later steps use the written (wrong) value, as a model that slipped would."""
    vals, lines = [], []
    for i, (sent, x, op, y) in enumerate(steps):
        x, y = (vals[v[1]] if isinstance(v, tuple) else v for v in (x, y))
        r = OPS[op](x, y) + (slip[1] if slip and slip[0] == i else 0)
        vals.append(r)
        lines.append(sent.format(eq=f"{x} {op} {y} = {r}"))
    return lines, vals


def gen_problem(rng, noise_rate=0.0, bias_rate=0.0):
    """(question, solution, answer, flaw): `answer` is always the true answer; with noise_rate/bias_rate > 0
    the solution may carry one flaw (see the comment above), named in `flaw` (None = a correct solution)."""
    q, steps, kind = gen_program(rng)
    clean = steps
    true = render(steps)[1][-1]
    flaw, slip = None, None
    if kind == 2 and rng.random() < bias_rate:
        flaw = "bias"
        steps = [steps[0], (steps[2][0], ("ref", 0), "-", steps[2][3])]  # forgets the loose items
    elif rng.random() < noise_rate:
        flaw = rng.choice(NOISE_KINDS)
    if flaw == "slip":
        i = rng.randrange(len(steps))
        slip = (i, rng.choice([-1, 1]) * rng.randint(1, 9))
    elif flaw == "wrong_op":
        sent, x, op, y = steps[-1]
        steps = steps[:-1] + [(sent, x, "+" if op == "-" else "-", y)]
    lines, vals = render(steps, slip)
    if slip and min(vals) < 0:  # a slip that makes a count negative: slip upwards instead (stays a near miss)
        slip = (slip[0], abs(slip[1]))
        lines, vals = render(steps, slip)
    if flaw == "wrong_op" and vals[-1] < 0:  # a negative count: the teacher would not write it; keep it correct
        flaw, (lines, vals) = None, render(clean)
    final = vals[-1]
    if flaw == "unfollowed":
        final = vals[0] if vals[0] != vals[-1] else vals[-1] + 10
    if flaw == "format":
        lines = lines + [lines[-1]] * 2
        sol = "\n".join(lines)
    else:
        sol = "\n".join(lines) + f"\nThe answer is: {final}"
    return q, sol, str(true), flaw


def make_split(n, seed, prefix, exclude=frozenset(), noise_rate=0.0, bias_rate=0.0):
    rng = random.Random(seed)  # an integer seed: reproducible across processes (never hash(str))
    out, seen = [], set(exclude)
    while len(out) < n:
        q, s, a, flaw = gen_problem(rng, noise_rate, bias_rate)
        if q in seen:  # keep test/val questions out of train
            continue
        seen.add(q)
        rec = {"id": f"{prefix}-{len(out):06d}", "question": q, "solution": s, "answer": a}
        if noise_rate or bias_rate:
            rec["flaw"] = flaw
        out.append(rec)
    return out


def train_tokenizer(texts, vocab_size, out):
    """Byte-level BPE (as Qwen2.5) trained on the toy corpus, with digits always split into
    single tokens so numbers are spelled digit by digit. Saved as a HF tokenizer directory."""
    from tokenizers import Tokenizer, Regex, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast
    tk = Tokenizer(models.BPE())
    tk.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(r"\d"), behavior="isolated"),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)])
    tk.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=["<|endoftext|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tk.train_from_iterator(texts, trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tk, eos_token="<|endoftext|>", pad_token="<|endoftext|>")
    fast.save_pretrained(out)
    return fast


if __name__ == "__main__":
    args = parser.parse_args()
    out = Path(args.out_dir)
    test = make_split(args.n_test, args.seed + 2, "toy-test")
    val = make_split(args.n_val, args.seed + 1, "toy-val", exclude={r["question"] for r in test})
    train = make_split(args.n_train, args.seed, "toy-train", exclude={r["question"] for r in test + val},
                       noise_rate=args.noise_rate, bias_rate=args.bias_rate)
    flaws = Counter(r.get("flaw") for r in train)
    print("train flaws: " + ", ".join(f"{k or 'none'} {v}" for k, v in sorted(flaws.items(), key=lambda kv: -kv[1])))
    for name, recs in [("train", train), ("val", val), ("test", test)]:
        write_jsonl(out / f"{name}.jsonl", recs)
        print(f"wrote {len(recs):6d} problems to {out / (name + '.jsonl')}")
    default_dir = out.resolve() == Path(__file__).resolve().parent
    if args.tokenizer or (default_dir and not (out / "tokenizer" / "tokenizer.json").exists()):
        # the tokenizer is trained on its own fixed-seed corpus, so it does not change with --n-train
        corpus = make_split(5000, 12345, "tok")
        texts = [format_prompt(r["question"]) + format_response(r["solution"]) for r in corpus]
        tok = train_tokenizer(texts, args.vocab_size, out / "tokenizer")
        print(f"tokenizer: {len(tok)} tokens -> {out / 'tokenizer'}")
