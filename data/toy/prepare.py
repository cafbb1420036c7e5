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
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from common import write_jsonl, format_prompt, format_response  # noqa: E402

parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
parser.add_argument("--out-dir", default=str(Path(__file__).resolve().parent), help="where the JSONL files go")
parser.add_argument("--n-train", type=int, default=30000, help="training problems")
parser.add_argument("--n-val", type=int, default=500, help="validation problems (for choices: never tune on test)")
parser.add_argument("--n-test", type=int, default=500, help="test problems")
parser.add_argument("--seed", type=int, default=1337, help="generator seed (splits use seed, seed+1, seed+2)")
parser.add_argument("--tokenizer", action="store_true", help="(re)train the tokenizer into <out-dir>/tokenizer (the committed one is data/toy/tokenizer)")
parser.add_argument("--vocab-size", type=int, default=512, help="BPE vocabulary size of the toy tokenizer")

NAMES = ["Mia", "Tom", "Ava", "Leo", "Zoe", "Sam", "Ivy", "Ben", "Eli", "Amy", "Max", "Lily", "Noah", "Emma", "Omar", "Rosa"]
PRON = {n: ("She" if n in {"Mia", "Ava", "Zoe", "Ivy", "Amy", "Lily", "Emma", "Rosa"} else "He") for n in NAMES}
ITEMS = ["apples", "pens", "cards", "stickers", "books", "marbles", "coins", "shells", "stamps", "cookies"]
CONTAINERS = ["boxes", "bags", "jars", "packs", "crates", "baskets"]


def gen_problem(rng):
    """One problem as (question, solution, answer). Numbers: a times-table product a * b
    (a, b in [2, 9]), then one or two add/subtract steps with numbers up to 39,
    where carries and borrows make the model slip."""
    n, item, cont = rng.choice(NAMES), rng.choice(ITEMS), rng.choice(CONTAINERS)
    p = PRON[n]
    a, b = rng.randint(2, 9), rng.randint(2, 9)
    ab = a * b
    kind = rng.randrange(4)
    if kind == 0:  # multiply, subtract
        c = rng.randint(2, min(39, ab - 1))
        r = ab - c
        q = (f"{n} has {a} {cont}. Each of the {cont} holds {b} {item}. {p} gives away {c} {item}. "
             f"How many {item} does {n} have left?")
        s = f"{n} has {a} * {b} = {ab} {item}.\nAfter giving away {c}, {n} has {ab} - {c} = {r} {item}."
    elif kind == 1:  # multiply, add
        c = rng.randint(2, 39)
        r = ab + c
        q = f"{n} buys {a} {cont} of {item} with {b} {item} in each. Then {n} finds {c} more {item}. How many {item} does {n} have now?"
        s = f"{n} buys {a} * {b} = {ab} {item}.\nAfter finding {c} more, {n} has {ab} + {c} = {r} {item}."
    elif kind == 2:  # multiply, add, subtract
        c, d = rng.randint(2, 39), rng.randint(2, 39)
        t = ab + c
        d = min(d, t - 1)
        r = t - d
        q = (f"{n} packs {a} {cont} with {b} {item} each and has {c} loose {item}. "
             f"{p} sells {d} {item}. How many {item} are left?")
        s = (f"{n} packs {a} * {b} = {ab} {item}.\nWith the loose ones there are {ab} + {c} = {t} {item}.\n"
             f"After selling {d}, there are {t} - {d} = {r} {item} left.")
    else:  # two products, add
        c, d = rng.randint(2, 9), rng.randint(2, 9)
        cd = c * d
        r = ab + cd
        q = (f"{n} has {a} {cont} of {b} {item} and {c} {cont} of {d} {item}. "
             f"How many {item} does {n} have in total?")
        s = (f"The first {cont} hold {a} * {b} = {ab} {item}.\nThe other {cont} hold {c} * {d} = {cd} {item}.\n"
             f"In total {n} has {ab} + {cd} = {r} {item}.")
    return q, s + f"\nThe answer is: {r}", str(r)


def make_split(n, seed, prefix, exclude=frozenset()):
    rng = random.Random(seed)  # an integer seed: reproducible across processes (never hash(str))
    out, seen = [], set(exclude)
    while len(out) < n:
        q, s, a = gen_problem(rng)
        if q in seen:  # keep test/val questions out of train
            continue
        seen.add(q)
        out.append({"id": f"{prefix}-{len(out):06d}", "question": q, "solution": s, "answer": a})
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
    train = make_split(args.n_train, args.seed, "toy-train", exclude={r["question"] for r in test + val})
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
