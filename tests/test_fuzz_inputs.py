"""Fuzz suite for bad input files, per entry point (train_sft, train_dpo, mine, verifier, sample, evaluate).

Black-box: every script runs as its command line would (runpy as __main__ with sys.argv; one real subprocess
per script as a check that this is the same), and a bad file must give a non-zero exit with
`error: FILE:LINE: ...` (FILE alone for whole-file problems), no traceback, and no file written.
Property-based (Hypothesis) where the input space is large: arbitrary bytes into common.read_jsonl, arbitrary
JSON values into every field the trainers and mine.py read. Plus kill -9 at a random point and --resume for
SFT and DPO: the final weights equal an uninterrupted run's exactly."""
import json
import math
import os
import random
import runpy
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from safetensors.torch import load_file

import mine
import train_dpo
import train_sft
from common import DataError, read_jsonl, write_jsonl
from conftest import REPO
from test_dpo import make_pairs
from test_mine import scored_records

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONHASHSEED": "0"}
FUZZ = settings(max_examples=150, deadline=None, derandomize=True,  # derandomized: CI runs the same cases every time
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


pytestmark = pytest.mark.usefixtures("one_thread")  # conftest: tiny shapes, one intra-op thread


# ----------------------------------------------------------------------------- entry points and their inputs

def _problems(splits, n=4):
    return [{k: r[k] for k in ("id", "question", "solution", "answer")} for r in read_jsonl(splits["test"])[:n]]


class Entry:
    """One script: how to build a valid input in a folder, its argv, and which fields a mutation may hit."""
    def __init__(self, script, records, argv, required, text, number=None, number_bad=()):
        self.script, self.records, self.argv = script, records, argv
        self.required, self.text, self.number, self.number_bad = required, text, number, number_bad


def entries(splits, model_dir):
    m = str(model_dir)
    tiny_run = ["--threads", "1", "--device", "cpu"]
    return {
        "train_sft": Entry("train_sft.py", lambda d: read_jsonl(splits["train"])[:8],
                           lambda inp, out: ["--model", m, "--data", inp, "--val-data", "", "--out-dir", out,
                                             "--batch-size", "4", "--micro-batch-size", "4", "--max-steps", "1",
                                             "--threads", "1"],
                           required="solution", text="question"),
        "train_dpo": Entry("train_dpo.py", lambda d: read_jsonl(make_pairs(d / "valid.jsonl", splits, model_dir)),
                           lambda inp, out: ["--pairs", inp, "--model", m, "--out-dir", out, "--batch-size", "4",
                                             "--micro-batch-size", "4", "--max-steps", "1", "--threads", "1"],
                           required="rejected", text="chosen", number="weight",
                           number_bad=(float("nan"), float("inf"), -1.0, 1e39, True, "1.0", [1.0])),
        "mine": Entry("mine.py", lambda d: scored_records(), lambda inp, out: [inp, "-o", out],
                      required="profile", text="completion", number="sample_idx", number_bad=(True, 1.5, "0", None)),
        "verifier": Entry("verifier.py", lambda d: [{k: v for k, v in r.items() if k != "profile"} for r in scored_records()],
                          lambda inp, out: [inp, "-o", out], required="completion", text="completion",
                          number="answer", number_bad=(True, [194], {"a": 1})),
        "sample": Entry("sample.py", lambda d: _problems(splits),
                        lambda inp, out: ["--model", m, "--data", inp, "-o", out, "--k", "1", "--max-new-tokens", "4",
                                          *tiny_run],
                        required="answer", text="question", number="answer", number_bad=(True, [1], {"a": 1})),
        "evaluate": Entry("evaluate.py", lambda d: _problems(splits),
                          lambda inp, out: ["--models", m, "--data", inp, "--out-dir", out, "--max-new-tokens", "4",
                                            *tiny_run],
                          required="answer", text="question", number="answer", number_bad=(True, [1], {"a": 1})),
    }


def run_cli(script, argv):
    """Run `python script argv` in this process (as __main__: its own error handling included).
    Returns (exit code, message): a SystemExit's text, or '' for rc 0. Any other exception escapes: a traceback."""
    old = sys.argv
    sys.argv = [script, *argv]
    try:
        runpy.run_path(str(REPO / script), run_name="__main__")
        return 0, ""
    except SystemExit as e:
        if e.code is None or e.code == 0:
            return 0, ""
        return (e.code if isinstance(e.code, int) else 1), str(e.code)
    finally:
        sys.argv = old


def files_under(d):
    return sorted(str(p.relative_to(d)) for p in Path(d).rglob("*"))


def write_lines(path, lines):
    Path(path).write_bytes(b"".join(x + b"\n" for x in lines))


def mutate(case, recs, e):
    """Bad variants of a valid record list -> (lines as bytes, the 1-based line the error must name or None)."""
    lines = [json.dumps({k: v for k, v in r.items() if not k.startswith("_")}).encode() for r in recs]
    r = json.loads(lines[1])
    if case == "not_utf8":
        lines[1] = lines[1].replace(b'": "', b'": "\xff\xfe', 1)
    elif case == "latin1":
        lines[1] = json.dumps(dict(r, **{e.text: "caf\u00e9 x"}), ensure_ascii=False).encode("latin-1")
    elif case == "invalid_json":
        lines[1] = lines[1][:-3]
    elif case == "not_object":
        lines[1] = b"[1, 2, 3]"
    elif case == "missing":
        del r[e.required]
        lines[1] = json.dumps(r).encode()
    elif case == "null":
        lines[1] = json.dumps(dict(r, **{e.required: None})).encode()
    elif case == "text_is_number":
        lines[1] = json.dumps(dict(r, **{e.text: 12345})).encode()
    elif case == "text_is_object":
        lines[1] = json.dumps(dict(r, **{e.text: {"nested": [1, {"x": None}]}})).encode()
    elif case == "deep_nesting":
        lines[1] = b'{"a": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    elif case == "lone_surrogate":
        lines[1] = json.dumps(dict(r, **{e.text: "ok \udc80 bad"})).encode()  # ensure_ascii: written as \udc80
    elif case.startswith("number_"):
        v = e.number_bad[int(case.split("_")[1])]
        lines[1] = json.dumps(dict(r, **{e.number: v})).encode()
    elif case == "empty":
        return [b""], None
    return lines, 2


CASES = ["not_utf8", "latin1", "invalid_json", "not_object", "missing", "null", "text_is_number", "text_is_object",
         "deep_nesting", "lone_surrogate", "empty", "directory"]
NUMBER_CASES = {"train_dpo": 7, "mine": 4, "verifier": 3, "sample": 3, "evaluate": 3}


def all_cases():
    for name in ("train_sft", "train_dpo", "mine", "verifier", "sample", "evaluate"):
        for c in CASES + [f"number_{i}" for i in range(NUMBER_CASES.get(name, 0))]:
            yield pytest.param(name, c, id=f"{name}-{c}")


@pytest.fixture(scope="module")
def eps(toy_splits, tiny_model_dir):
    return entries(toy_splits, tiny_model_dir)


@pytest.mark.parametrize("name,case", list(all_cases()))
def test_bad_file_is_refused_cleanly(tmp_path, eps, name, case):
    e = eps[name]
    d = tmp_path / "work"
    d.mkdir()
    inp = d / "input.jsonl"
    if case == "directory":
        inp.mkdir()
        line = None
    else:
        lines, line = mutate(case, e.records(tmp_path), e)
        write_lines(inp, lines)
    before = files_under(tmp_path)
    rc, msg = run_cli(e.script, e.argv(str(inp), str(d / "out" / "result")))
    assert rc != 0, f"{name} accepted a bad file ({case})"
    assert msg.startswith("error: "), msg
    where = f"{inp}:{line}:" if line else str(inp)
    assert where in msg, f"expected {where!r} in {msg!r}"
    assert files_under(tmp_path) == before  # nothing written: no output, no cache, no temporary


def test_real_command_line(tmp_path, eps):
    """The same as above through a real `python X.py` process per entry point: exit code, stderr, nothing written.
    The six processes run side by side: each is mostly the import of torch, and they share nothing."""
    procs = {}
    for name, e in eps.items():
        d = tmp_path / name
        d.mkdir()
        lines, _ = mutate("not_utf8", e.records(d), e)
        write_lines(d / "input.jsonl", lines)
        procs[name] = (d, files_under(d), subprocess.Popen(
            [sys.executable, e.script, *e.argv(str(d / "input.jsonl"), str(d / "out" / "result"))], cwd=REPO, env=ENV,
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True))
    for name, (d, before, p) in procs.items():
        err = p.communicate(timeout=300)[1]
        assert p.returncode != 0 and "Traceback" not in err, f"{name}: {err[-2000:]}"
        assert f"error: {d / 'input.jsonl'}:2: " in err, f"{name}: {err[-2000:]}"
        assert files_under(d) == before, name


@pytest.mark.parametrize("name", ["train_sft", "train_dpo", "mine"])
def test_output_directories_are_created(tmp_path, eps, name):
    e = eps[name]
    inp = tmp_path / "input.jsonl"
    write_jsonl(inp, e.records(tmp_path))
    if name == "train_dpo":
        shutil.copy(tmp_path / "valid.jsonl.meta.json", str(inp) + ".meta.json")
    out = tmp_path / "a" / "b" / "c" / "result"
    rc, msg = run_cli(e.script, e.argv(str(inp), str(out)))
    assert rc == 0, msg
    assert out.exists() and not [p for p in files_under(tmp_path) if p.endswith(".tmp")]


# ----------------------------------------------------------------------------- property-based

JSON_ODD = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-10**30, max_value=10**30)
    | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=12)
    | st.sampled_from(["", " ", "\udc80", "NaN", "1e999", "The answer is: 5"]),
    lambda kids: st.lists(kids, max_size=3) | st.dictionaries(st.text(max_size=5), kids, max_size=3),
    max_leaves=6)


def assert_clean_error(err, path):
    assert isinstance(err, DataError) and str(err).startswith(f"{path}:"), repr(err)


@FUZZ
@given(data=st.lists(st.binary(max_size=60) | st.sampled_from([b'{"a": 1}', b"{}", b'{"a": NaN}', b"\xef\xbb\xbf{}"]),
                     max_size=6))
def test_read_jsonl_any_bytes(data):
    """Any bytes: a list of dicts (strings UTF-8 can encode) or DataError('FILE:...'), nothing else."""
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "x.jsonl"
        p.write_bytes(b"\n".join(data))
        try:
            recs = read_jsonl(p, required=("a",), types={"a": int})
        except DataError as err:
            assert_clean_error(err, p)
            return
        for r in recs:
            assert isinstance(r, dict) and type(r["a"]) is int
            json.dumps(r, ensure_ascii=False).encode("utf-8")  # writable back out


@FUZZ
@given(field=st.sampled_from(["prompt", "chosen", "rejected", "weight", "rejected_upto"]), value=JSON_ODD,
       line=st.integers(0, 3))
def test_load_pairs_any_field_value(toy_splits, tiny_model_dir, toy_tok, field, value, line):
    """One field of one pair set to an arbitrary JSON value: pairs fit to train on, or DataError('FILE:LINE:')."""
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "pairs.jsonl"
        recs = read_jsonl(make_pairs(p, toy_splits, tiny_model_dir, weights=[0.5, 1.0, 2.0, 1.5]))
        recs[line][field] = value
        Path(p).write_text("".join(json.dumps({k: v for k, v in r.items() if k != "_line"}) + "\n" for r in recs))
        try:
            pairs = train_dpo.load_pairs(p, toy_tok, 512)
        except DataError as err:
            assert_clean_error(err, p)
            return
        for q in pairs:
            assert math.isfinite(q["w"]) and 0 <= q["w"] <= train_dpo.MAX_WEIGHT
            assert torch.isfinite(torch.tensor([q["w"]], dtype=torch.float32)).all()
            assert q["c"] != q["r"]


@FUZZ
@given(field=st.sampled_from(["correct", "wrongness", "absurdity", "numeric_distance", "pred", "arithmetic",
                              "details", "n_wrong_equations", "first_wrong_step", "wrong_equations"]),
       value=JSON_ODD, which=st.integers(0, 19))
def test_mine_any_profile_value(field, value, which):
    """One profile entry of one scored sample set to an arbitrary JSON value: mine.py writes pairs with finite
    weights averaging 1, or stops with `error: FILE:LINE:` and writes nothing."""
    recs = scored_records()
    p = recs[which]["profile"]
    if field in ("n_wrong_equations", "first_wrong_step", "wrong_equations"):
        p["details"] = dict(p["details"], **{field: value})
    else:
        p[field] = value
    with tempfile.TemporaryDirectory() as d:
        src, out = Path(d) / "scored.jsonl", Path(d) / "pairs.jsonl"
        Path(src).write_text("".join(json.dumps(r) + "\n" for r in recs))
        try:
            mine.main([str(src), "-o", str(out)])
        except SystemExit as err:
            msg = str(err.code)
            assert msg.startswith(f"error: {src}:") or "no pairs mined" in msg, msg
            assert not out.exists()
            return
        ws = [r["weight"] for r in read_jsonl(out)]
        assert all(math.isfinite(w) and w > 0 for w in ws) and abs(sum(ws) / len(ws) - 1) < 1e-4


@FUZZ
@given(field=st.sampled_from(["question", "solution"]), value=JSON_ODD, line=st.integers(0, 3))
def test_sft_examples_any_field_value(toy_splits, toy_tok, field, value, line):
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "train.jsonl"
        recs = read_jsonl(toy_splits["train"])[:4]
        recs[line][field] = value
        p.write_text("".join(json.dumps({k: v for k, v in r.items() if k != "_line"}) + "\n" for r in recs))
        try:
            seqs = train_sft.load_examples(p, toy_tok, 512)
        except DataError as err:
            assert_clean_error(err, p)
            return
        assert len(seqs) >= 1 and all(len(ids) == len(lab) for ids, lab in seqs)


# ----------------------------------------------------------------------------- kill -9, then --resume

def _kill_and_resume(argv_for, out_full, out_killed, script, entry_main, min_step, seed):
    """Uninterrupted run vs a run killed (SIGKILL) at a random moment after `min_step` checkpoints, resumed.
    The uninterrupted run saves only at its end (saving changes no state); the killed one saves every step, so the
    kill can land inside a checkpoint swap, and has max-steps - min_step steps (>= 20 saves) left to be killed in."""
    entry_main(argv_for(out_full) + ["--save-every", "-1"])
    p = subprocess.Popen([sys.executable, script, *argv_for(out_killed)], cwd=REPO, env=ENV,
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    meta, t_end = Path(out_killed) / "hardneg_meta.json", time.time() + 240
    while time.time() < t_end and p.poll() is None:
        try:
            if json.loads(meta.read_text())["step"] >= min_step:
                break
        except (OSError, ValueError, KeyError):
            pass
        time.sleep(0.005)
    time.sleep(random.Random(seed).uniform(0, 0.05))  # anywhere in a step, including inside a checkpoint swap
    p.send_signal(signal.SIGKILL)
    p.wait()
    assert p.returncode == -signal.SIGKILL, f"the run ended before the kill: {p.stderr.read()[-2000:]}"
    entry_main(argv_for(out_killed) + ["--resume"])
    a, b = load_file(f"{out_full}/model.safetensors"), load_file(f"{out_killed}/model.safetensors")
    assert max((a[k] - b[k]).abs().max().item() for k in a) == 0.0


@pytest.mark.slow
def test_sft_kill_9_and_resume_is_exact(tmp_path, toy_splits, tiny_model_dir):
    def argv(out):
        return ["--model", str(tiny_model_dir), "--data", str(toy_splits["train"]), "--val-data", "", "--out-dir", str(out),
                "--batch-size", "4", "--micro-batch-size", "2", "--max-steps", "24", "--save-every", "1",
                "--warmup", "2", "--lr", "1e-3", "--threads", "1", "--log-every", "100"]
    _kill_and_resume(argv, tmp_path / "full", tmp_path / "killed", "train_sft.py", train_sft.main, 3, seed=1)


@pytest.mark.slow
def test_dpo_kill_9_and_resume_is_exact(tmp_path, toy_splits, tiny_model_dir):
    pairs = make_pairs(tmp_path / "pairs.jsonl", toy_splits, tiny_model_dir)

    def argv(out):
        return ["--pairs", str(pairs), "--out-dir", str(out), "--batch-size", "4", "--micro-batch-size", "2",
                "--max-steps", "24", "--save-every", "1", "--lr", "1e-3", "--warmup", "2", "--threads", "1",
                "--log-every", "100"]
    _kill_and_resume(argv, tmp_path / "full", tmp_path / "killed", "train_dpo.py", train_dpo.main, 3, seed=2)
