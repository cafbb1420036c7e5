"""
The problem files that sample.py and evaluate.py read (data/*/prepare.py's schema: question, answer, optional id and
solution), checked before anything is written: every error names FILE:LINE.

    problems = load_problems("data/toy/test.jsonl", limit=500)
    prompt_ids = encode_prompts(problems, tok, model.config.max_position_embeddings, max_new, sampler.max_token_bytes,
                                path)

Over-long prompts are refused, not truncated: a question cut from the left is another question, and the row would
decode past the model's positions (garbage, every row ending as "length"). The rule: a prompt may hold at most the
model's max_position_embeddings minus --max-new-tokens tokens.
"""
from pathlib import Path

from common import DataError, format_prompt, read_jsonl


def load_problems(path, limit=-1):
    """Problems JSONL -> records (first `limit` if >= 0) with problem_index = 0-based position, id (default
    '<file stem>-<i>') and answer as str. Raises DataError 'file:line: ...' on missing/mistyped fields, an empty
    question or a duplicate id."""
    recs = read_jsonl(path, required=("question", "answer"),
                      types={"question": str, "answer": (str, int, float), "id": (str, int), "solution": str})
    if not recs:
        raise DataError(f"{path}: no records")
    recs = recs[:limit] if limit >= 0 else recs
    seen = {}
    for i, r in enumerate(recs):
        if not r["question"].strip():
            raise DataError(f"{path}:{r['_line']}: field 'question' is empty")
        r["id"] = str(r.get("id", f"{Path(path).stem}-{i}"))
        if r["id"] in seen:
            raise DataError(f"{path}:{r['_line']}: duplicate id '{r['id']}' (first on line {seen[r['id']]})")
        seen[r["id"]] = r["_line"]
        r["answer"], r["problem_index"] = str(r["answer"]), i
    return recs


def encode_prompts(problems, tok, n_positions, max_new_tokens, max_token_bytes, path):
    """Token ids of format_prompt(question) for each problem (same order). The rule: a prompt may hold at most
    n_positions (the model's max_position_embeddings) minus max_new_tokens tokens; a longer one raises DataError
    'path:line: prompt of N tokens exceeds ...'. A prompt of more than limit x max_token_bytes characters is refused
    without tokenising it (no token spans more bytes, so it holds more tokens than the limit; tokenising 10 MB
    took 15-33 s here)."""
    limit = n_positions - max_new_tokens
    if limit < 1:
        raise DataError(f"--max-new-tokens {max_new_tokens} leaves no room for a prompt: the model has {n_positions} "
                        f"positions")
    why = (f"the {limit} tokens a prompt may hold (the model's {n_positions} positions minus --max-new-tokens "
           f"{max_new_tokens}); shorten the question or lower --max-new-tokens")
    out = []
    for p in problems:
        prompt = format_prompt(p["question"])
        if len(prompt) > limit * max_token_bytes:
            raise DataError(f"{path}:{p['_line']}: prompt of {len(prompt)} characters (over {limit} tokens) exceeds {why}")
        ids = tok(prompt, add_special_tokens=False)["input_ids"]
        if len(ids) > limit:
            raise DataError(f"{path}:{p['_line']}: prompt of {len(ids)} tokens exceeds {why}")
        out.append(ids)
    return out
