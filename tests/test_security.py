"""No code runs from a file a user may receive. The resume state of a checkpoint and the DPO reference
cache are safetensors (+ JSON), never pickle: a crafted pickle placed where the trainers look is refused
with an error naming it, and its payload (writing a marker file) never runs."""
import json
import os
import pickle
import shutil

import pytest
import torch

import train_dpo
import train_sft
from checkpoint import TRAIN_STATE, load_train_state, restore_train_state, save_train_state
from common import DataError
from test_dpo import make_pairs


class Payload:
    """Unpickling this calls open(marker, 'w'): proof of code execution if the marker appears."""
    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def plant_pickle(path, marker):
    with open(path, "wb") as f:
        pickle.dump({"optimizer": Payload(marker), "step": 1}, f)
    # the payload is real: plain pickle does run it (then the marker is removed again)
    with open(path, "rb") as f:
        pickle.load(f)
    assert marker.exists()
    marker.unlink()


def sft_args(tiny_model_dir, data, out):
    return ["--model", str(tiny_model_dir), "--data", str(data), "--val-data", "", "--out-dir", str(out),
            "--batch-size", "4", "--micro-batch-size", "4", "--max-steps", "2", "--warmup", "1", "--threads", "1"]


@pytest.mark.parametrize("name", ["train_state.pt", TRAIN_STATE])
def test_malicious_train_state_is_refused(tmp_path, tiny_model_dir, toy_splits, name):
    """A pickle as the old train_state.pt, or renamed to the new file name: --resume refuses, nothing runs."""
    ck, marker = tmp_path / "ck", tmp_path / "PWNED"
    shutil.copytree(tiny_model_dir, ck)  # a plausible checkpoint folder someone sent us
    plant_pickle(ck / name, marker)
    with pytest.raises(SystemExit) as e:
        train_sft.main(sft_args(tiny_model_dir, toy_splits["train"], ck) + ["--resume"])
    msg = str(e.value.code)
    assert msg.startswith("error: ") and str(ck / name) in msg, msg
    assert ("pickle" in msg) if name.endswith(".pt") else ("not a readable safetensors file" in msg)
    assert not marker.exists()
    with pytest.raises(DataError, match="train_state"):
        load_train_state(ck)
    assert not marker.exists()


def test_malicious_ref_cache_is_refused(tmp_path, toy_splits, tiny_model_dir):
    """The reference cache lives at a predictable path next to the pairs: a pickle planted there is refused."""
    pairs = make_pairs(tmp_path / "pairs.jsonl", toy_splits, tiny_model_dir)
    args = ["--pairs", str(pairs), "--batch-size", "4", "--micro-batch-size", "2", "--max-steps", "1", "--threads", "1"]
    train_dpo.main(args + ["--out-dir", str(tmp_path / "a")])  # writes the genuine cache
    (cache,) = tmp_path.glob("pairs.jsonl.ref.*.safetensors")
    marker = tmp_path / "PWNED"
    plant_pickle(cache, marker)
    with pytest.raises(SystemExit) as e:
        train_dpo.main(args + ["--out-dir", str(tmp_path / "b")])
    msg = str(e.value.code)
    assert msg.startswith("error: ") and str(cache) in msg and "delete it to recompute" in msg, msg
    assert not marker.exists() and not (tmp_path / "b").exists()


def test_tampered_ref_cache_is_refused(tmp_path, toy_splits, tiny_model_dir):
    """A well-formed safetensors cache with the wrong shape, NaN, or another run's key is refused too."""
    from safetensors.torch import save_file
    pairs = make_pairs(tmp_path / "pairs.jsonl", toy_splits, tiny_model_dir)
    args = ["--pairs", str(pairs), "--batch-size", "4", "--micro-batch-size", "2", "--max-steps", "1", "--threads", "1"]
    train_dpo.main(args + ["--out-dir", str(tmp_path / "a")])
    (cache,) = tmp_path.glob("pairs.jsonl.ref.*.safetensors")
    from safetensors import safe_open
    with safe_open(str(cache), "pt") as f:
        key, logps = f.metadata()["key"], f.get_tensor("logps")
    for bad, meta, why in [(logps[:3], key, "expected"), (logps.clone().fill_(float("nan")), key, "finite"),
                           (logps, json.dumps({"other": 1}), "made for other")]:
        save_file({"logps": bad.contiguous()}, str(cache), metadata={"key": meta})
        with pytest.raises(SystemExit, match=why):
            train_dpo.main(args + ["--out-dir", str(tmp_path / "b")])


def test_train_state_round_trip_is_exact(tmp_path):
    """Optimizer state (int keys, tuple betas, 0-d step tensors), history floats incl. NaN, RNG bytes: all exact."""
    model = torch.nn.Linear(4, 3)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, betas=(0.9, 0.95))
    model(torch.randn(5, 4)).sum().backward()
    opt.step()
    state = {"optimizer": opt.state_dict(), "step": 7, "history": [{"loss": 0.1 + 0.2, "gnorm": float("nan")}],
             "rng": torch.get_rng_state(), "pairs_sha": "abc", "odd": {"__tensor__": "not a tensor"}}
    save_train_state(tmp_path / TRAIN_STATE, state)
    back = load_train_state(tmp_path)
    assert back["step"] == 7 and back["pairs_sha"] == "abc" and back["odd"] == {"__tensor__": "not a tensor"}
    assert back["history"][0]["loss"] == 0.1 + 0.2 and back["history"][0]["gnorm"] != back["history"][0]["gnorm"]
    assert torch.equal(back["rng"], state["rng"])
    assert back["optimizer"]["param_groups"] == state["optimizer"]["param_groups"]  # betas come back a tuple
    for i, s in state["optimizer"]["state"].items():
        for k, v in s.items():
            assert torch.equal(back["optimizer"]["state"][i][k], v) and back["optimizer"]["state"][i][k].dtype == v.dtype
    opt2 = torch.optim.AdamW(torch.nn.Linear(4, 3).parameters(), lr=1e-3, betas=(0.9, 0.95))
    assert restore_train_state(back, opt2, tmp_path) == (7, back["history"])        # optimizer and RNG put back
    assert torch.equal(opt2.state_dict()["state"][0]["exp_avg"], state["optimizer"]["state"][0]["exp_avg"])
    other = torch.optim.AdamW(torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.Linear(3, 2)).parameters())
    with pytest.raises(DataError, match="does not fit this model and optimizer"):  # another model's state
        restore_train_state(back, other, tmp_path)


def test_malformed_train_state_document(tmp_path):
    from safetensors.torch import save_file
    for doc, why in [("{not json", "malformed"), (json.dumps({"step": 1}), "needs optimizer"),
                     (json.dumps({"optimizer": {}, "step": 1, "history": [], "rng": {"__tensor__": "t9"}}), "KeyError")]:
        save_file({"t0": torch.zeros(1)}, str(tmp_path / TRAIN_STATE), metadata={"hardneg_train_state": doc})
        with pytest.raises(DataError, match=why):
            load_train_state(tmp_path)


def test_no_torch_load_in_the_project():
    """Every torch.load would be a pickle reader: the project has none (tests included)."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    hits = []
    for d, _, files in os.walk(root):
        if ".git" in d:
            continue
        for f in files:
            if f.endswith(".py") and f != "test_security.py":
                text = open(os.path.join(d, f), encoding="utf-8").read()
                if "torch.load(" in text or "pickle.load" in text:
                    hits.append(os.path.join(d, f))
    assert hits == []
