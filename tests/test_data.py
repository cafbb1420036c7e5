"""data/*/prepare.py: conversion to the project schema, errors naming file:line:field, and
(when ../shared/data is present) the real GSM8K/MATH files."""
import importlib.util
import json
import subprocess
import sys

import pytest

from conftest import REPO, SHARED
from common import DataError, read_jsonl


def load(name):
    spec = importlib.util.spec_from_file_location(f"prep_{name}", REPO / "data" / name / "prepare.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_gsm8k_convert():
    g = load("gsm8k")
    r = g.convert({"question": " Q? ", "answer": "She has 48/2 = <<48/2=24>>24 clips.\n#### 1,024"}, "f.jsonl", 3, "train")
    assert r == {"id": "gsm8k-train-000003", "question": "Q?", "answer": "1024",
                 "solution": "She has 48/2 = 24 clips.\nThe answer is: 1024"}
    assert "<<48/2=24>>" in g.convert({"question": "Q", "answer": "a <<48/2=24>>24\n#### 24"}, "f", 0, "t", keep_calc=True)["solution"]
    with pytest.raises(DataError, match=r"f.jsonl:7: field 'answer' has no '#### N'"):
        g.convert({"question": "Q", "answer": "no final line", "_line": 7}, "f.jsonl", 0, "train")


def test_gsm8k_cli_bad_file(tmp_path):
    (tmp_path / "train.jsonl").write_text('{"question": "q", "answer": "x\\n#### 1"}\n{"question": "q2"}\n')
    (tmp_path / "test.jsonl").write_text('{"question": "q", "answer": "x\\n#### 1"}\n')
    res = subprocess.run([sys.executable, "data/gsm8k/prepare.py", "--src-dir", str(tmp_path), "--out-dir", str(tmp_path / "o")],
                         cwd=REPO, capture_output=True, text=True)
    assert res.returncode != 0 and "train.jsonl:2: missing field 'answer'" in res.stderr
    assert not (tmp_path / "o" / "train.jsonl").exists()


def test_metamathqa_convert(tmp_path):
    m = load("metamathqa")
    src = tmp_path / "mm.json"
    src.write_text(json.dumps([{"query": "What is 2+3?", "response": "2 + 3 = 5.\nThe answer is: 5", "type": "GSM_AnsAug"}]))
    recs = m.load(src)
    assert m.convert(recs[0], 0, src)["answer"] == "5"
    src.write_text(json.dumps([{"query": "What?"}]))
    with pytest.raises(DataError, match="record 0: missing field 'response'"):
        m.load(src)


@pytest.mark.skipif(not (SHARED / "gsm8k").exists(), reason="../shared/data absent")
def test_real_gsm8k_and_math(tmp_path):
    for name in ["gsm8k", "math"]:
        res = subprocess.run([sys.executable, f"data/{name}/prepare.py", "--out-dir", str(tmp_path / name)],
                             cwd=REPO, capture_output=True, text=True, timeout=300)
        assert res.returncode == 0, res.stderr
    test = read_jsonl(tmp_path / "gsm8k" / "test.jsonl", required=("id", "question", "solution", "answer"))
    assert len(test) == 1319 and all(r["solution"].endswith("The answer is: " + r["answer"]) for r in test)
    m500 = read_jsonl(tmp_path / "math" / "math500.jsonl", required=("id", "question", "solution", "answer"))
    assert len(m500) == 500


def test_progress_to_a_file_writes_plain_lines(tmp_path):
    """run.sh tees each stage into a .log: with stderr a file, progress() prints whole lines (rounded figures,
    the postfix), never tqdm's \\r redraws."""
    code = ("from common import progress\n"
            "p = progress(total=6, desc='demo', interval=0)\n"
            "for i in range(6):\n"
            "    p.update(1)\n"
            "    p.set_postfix(loss=f'{1 / (i + 1):.4f}', refresh=False)\n"
            "p.close()\n"
            "q = progress(total=3, desc='quiet', disable=True)\n"
            "q.update(3)\n"
            "q.close()\n")
    log = tmp_path / "stage.log"
    with open(log, "wb") as f:
        subprocess.run([sys.executable, "-c", code], cwd=REPO, stdout=f, stderr=f, check=True)
    text = log.read_bytes().decode("utf-8")
    assert "\r" not in text
    lines = text.splitlines()
    assert len(lines) == 7, text                     # one per update (interval 0) + one at close; disabled: nothing
    assert lines[0].startswith("demo 1/6 (17%) | ") and lines[-1].startswith("demo 6/6 (100%) | ")
    assert lines[-1].endswith("| loss 0.1667")
