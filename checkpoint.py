"""
What goes into a checkpoint folder and back out: save_checkpoint (a Hugging Face directory + hardneg_meta.json,
swapped in atomically), recover_checkpoint, read_meta, and the training state for --resume
(train_state.safetensors: tensors as safetensors, the rest as JSON; nothing is ever unpickled;
load_train_state reads it, restore_train_state puts it back into the optimizer and torch's RNG).
Used by train_sft.py, train_dpo.py and diagnose.py; everything else shared lives in common.py.
"""
import json
import os
import shutil
from pathlib import Path

import torch

from common import DataError, print0, read_json, write_json

# -----------------------------------------------------------------------------
# the checkpoint folder: a Hugging Face directory + hardneg_meta.json (+ the train state)

def save_checkpoint(out_dir, model, tok, meta, train_state=None):
    """Save a Hugging Face directory (config.json + model.safetensors + tokenizer files) plus
    hardneg_meta.json and, for --resume, train_state.safetensors (save_train_state: no pickle).
    The directory is built next to the target and swapped in with renames, so a crash never
    leaves a half-written checkpoint."""
    out_dir = Path(out_dir)
    tmp, old = out_dir.with_name(out_dir.name + ".tmp"), out_dir.with_name(out_dir.name + ".old")
    shutil.rmtree(tmp, ignore_errors=True)
    raw = model.module if hasattr(model, "module") else model      # never save the DDP wrapper's keys
    raw = getattr(raw, "_orig_mod", raw)                             # nor torch.compile's _orig_mod. keys
    from transformers.utils import logging as hf_logging
    hf_logging.disable_progress_bar()  # one bar per save clutters the training log
    raw.save_pretrained(tmp, safe_serialization=True)
    tok.save_pretrained(tmp)
    write_json(tmp / "hardneg_meta.json", meta)
    if train_state is not None:
        save_train_state(tmp / TRAIN_STATE, train_state)
    shutil.rmtree(old, ignore_errors=True)
    if out_dir.exists():
        os.replace(out_dir, old)
    os.replace(tmp, out_dir)
    shutil.rmtree(old, ignore_errors=True)

def recover_checkpoint(out_dir):
    """If a crash hit between the two renames of save_checkpoint, put the old one back."""
    out_dir = Path(out_dir)
    old = out_dir.with_name(out_dir.name + ".old")
    if not out_dir.exists() and old.exists():
        os.replace(old, out_dir)

def read_meta(path):
    p = Path(path) / "hardneg_meta.json"
    return read_json(p) if p.exists() else {}

# -----------------------------------------------------------------------------
# training state for --resume: safetensors + JSON, never pickle. A checkpoint folder is a file a
# user may receive, and unpickling one runs whatever code it names (torch.load's weights_only
# unpickler narrows that but has had bypasses), so nothing here is ever unpickled.

TRAIN_STATE = "train_state.safetensors"
_TAGS = ("__tensor__", "__tuple__", "__items__")


def _to_plain(obj, tensors):
    """Nested dict/list/tuple/scalars/tensors -> JSON-able values; each tensor goes to `tensors`
    (name -> tensor) and is referenced as {"__tensor__": name}. Tuples and dicts with non-str keys
    (the optimizer's {param index: state}) are tagged so they come back exactly as they were."""
    if isinstance(obj, torch.Tensor):
        name = f"t{len(tensors)}"
        tensors[name] = obj.detach().cpu().contiguous()
        return {"__tensor__": name}
    if isinstance(obj, dict):
        if all(isinstance(k, str) for k in obj) and not any(k in _TAGS for k in obj):
            return {k: _to_plain(v, tensors) for k, v in obj.items()}
        return {"__items__": [[_to_plain(k, tensors), _to_plain(v, tensors)] for k, v in obj.items()]}
    if isinstance(obj, (list, tuple)):
        items = [_to_plain(v, tensors) for v in obj]
        return {"__tuple__": items} if isinstance(obj, tuple) else items
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    raise TypeError(f"train state: cannot store a {type(obj).__name__}")


def _from_plain(obj, tensors):
    """Inverse of _to_plain. KeyError / TypeError / ValueError on a malformed document."""
    if isinstance(obj, list):
        return [_from_plain(v, tensors) for v in obj]
    if isinstance(obj, dict):
        if len(obj) == 1 and next(iter(obj)) in _TAGS:
            tag, v = next(iter(obj.items()))
            if tag == "__tensor__":
                return tensors[v]
            if tag == "__tuple__":
                return tuple(_from_plain(x, tensors) for x in v)
            return {_from_plain(k, tensors): _from_plain(x, tensors) for k, x in v}
        return {k: _from_plain(v, tensors) for k, v in obj.items()}
    return obj


def save_train_state(path, state):
    """state (optimizer state_dict, step, history, RNG state, ...) -> one safetensors file: the tensors
    as tensors, the rest as JSON in its metadata. Bit-exact round trip (floats via repr)."""
    from safetensors.torch import save_file
    tensors = {}
    doc = json.dumps(_to_plain(state, tensors))
    save_file(tensors, str(path), metadata={"hardneg_train_state": doc})


def load_train_state(out_dir):
    """The train state of a checkpoint dir, for --resume (call recover_checkpoint first). Reads only
    safetensors + JSON; a pickle (the old train_state.pt, or anything crafted) is refused, not opened.
    Raises DataError naming the file on anything it cannot use."""
    from safetensors import safe_open
    path = Path(out_dir) / TRAIN_STATE
    if not path.exists():
        old = Path(out_dir) / "train_state.pt"
        if old.exists():
            raise DataError(f"{old}: a pickle file (the old train-state format); it is not loaded, because "
                            f"unpickling a file can run code. --resume needs {TRAIN_STATE}: restart the run without --resume")
        raise DataError(f"--resume: no {path}")
    try:
        with safe_open(str(path), "pt") as f:
            doc = (f.metadata() or {}).get("hardneg_train_state")
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except Exception as e:  # a pickle, a torn or a crafted file: safetensors parses, it never executes
        raise DataError(f"{path}: not a readable safetensors file ({str(e)[:200]})") from None
    try:
        state = _from_plain(json.loads(doc), tensors)
        ok = (isinstance(state, dict) and isinstance(state.get("optimizer"), dict) and isinstance(state.get("history"), list)
              and type(state.get("step")) is int and state["step"] >= 0 and isinstance(state.get("rng"), torch.Tensor)
              and state["rng"].dtype == torch.uint8)
    except (TypeError, ValueError, KeyError, AttributeError, RecursionError) as e:
        raise DataError(f"{path}: malformed train state ({type(e).__name__}: {str(e)[:200]})") from None
    if not ok:
        raise DataError(f"{path}: malformed train state (needs optimizer, step, history, rng)")
    return state


def restore_train_state(state, opt, out_dir):
    """Put a loaded train state back: the optimizer's state and torch's RNG. Returns (step, history) to continue
    from. A state that does not fit this model/optimizer is a DataError naming the file, not a traceback."""
    try:
        opt.load_state_dict(state["optimizer"])
        torch.set_rng_state(state["rng"])
    except (ValueError, KeyError, TypeError, RuntimeError) as e:
        raise DataError(f"{out_dir}/{TRAIN_STATE}: does not fit this model and optimizer ({str(e)[:200]})") from None
    print0(f"resumed from {out_dir} at step {state['step']}")
    return state["step"], state["history"]
