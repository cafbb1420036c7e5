"""
The torch-free half of the shared code: the prompt format and JSONL / JSON I/O with errors that name
file:line:field, and atomic writes. The CPU-only stages that import it directly (mine.py, data/*/prepare.py) start
without torch (about 1.4 CPU-seconds per process saved); common.py re-exports every public name here.
"""
import json
import os
import re
from pathlib import Path

# -----------------------------------------------------------------------------
# prompt format (MetaMathQA-like, kept short so the toy model wastes no tokens on it)

def format_prompt(question):
    return f"Question: {question.strip()}\nAnswer:"

def format_response(solution):
    # the response starts with a space so that prompt + response reads naturally;
    # EOS is appended as a token id by encode_pair, not as text
    return " " + solution.strip()

# -----------------------------------------------------------------------------
# JSONL I/O

class DataError(ValueError):
    """Bad input file: the message names file, line and field."""

_SURROGATE = re.compile(r"\\u[dD][89a-fA-F]")  # a JSON escape of a UTF-16 surrogate half

def _unencodable(v):
    """The first string inside v that UTF-8 cannot encode (a lone surrogate such as "\\udc80"), else None."""
    if isinstance(v, str):
        try:
            v.encode("utf-8")
        except UnicodeEncodeError:
            return v
        return None
    items = v.values() if isinstance(v, dict) else v if isinstance(v, list) else ()
    return next((x for x in map(_unencodable, items) if x is not None), None)

def _type_name(t):
    return t.__name__ if isinstance(t, type) else "/".join(x.__name__ for x in t)

def read_jsonl(path, required=(), types=None):
    """Read a JSONL file into a list of dicts. Every record must be a JSON object holding
    the `required` fields (non-null); `types` maps field -> type or tuple of types (a JSON
    true/false is not accepted as an int/float: bool is a subclass of int in Python only).
    Raises DataError('file:line: ...') on the first bad line: bytes that are not UTF-8,
    invalid JSON, nesting too deep, a string UTF-8 cannot hold (lone surrogate), a missing
    field or a wrong type."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: file not found")
    if not path.is_file():
        raise DataError(f"{path}: not a regular file")
    types = types or {}
    out = []
    with open(path, "rb") as f:  # bytes: a bad byte is reported with its line, not as a decode traceback
        for lineno, raw in enumerate(f, 1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                raise DataError(f"{path}:{lineno}: not valid UTF-8 (byte 0x{raw[e.start]:02x} at byte {e.start + 1} "
                                f"of the line)") from None
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as e:
                raise DataError(f"{path}:{lineno}: invalid JSON ({e.msg} at column {e.colno})") from None
            except RecursionError:
                raise DataError(f"{path}:{lineno}: invalid JSON (nested too deeply)") from None
            if not isinstance(rec, dict):
                raise DataError(f"{path}:{lineno}: expected a JSON object, got {type(rec).__name__}")
            if _SURROGATE.search(line) and _unencodable(rec) is not None:  # only then is the walk needed
                raise DataError(f"{path}:{lineno}: a string holds a lone UTF-16 surrogate (\\udXXX), "
                                f"which UTF-8 cannot encode")
            for k in required:
                if rec.get(k) is None:
                    raise DataError(f"{path}:{lineno}: missing field '{k}'")
            for k, t in types.items():
                v = rec.get(k)
                if v is None:
                    continue
                ts = t if isinstance(t, tuple) else (t,)
                if not isinstance(v, ts) or (isinstance(v, bool) and bool not in ts):
                    raise DataError(f"{path}:{lineno}: field '{k}' must be {_type_name(t)}, got {type(v).__name__}")
            rec["_line"] = lineno  # kept for later error messages; stripped on write
            out.append(rec)
    return out

def read_json(path):
    """One JSON document (a sidecar .meta.json): DataError('file: ...') instead of a traceback."""
    path = Path(path)
    try:
        return json.loads(path.read_bytes().decode("utf-8"))
    except UnicodeDecodeError as e:
        raise DataError(f"{path}: not valid UTF-8 (byte 0x{e.object[e.start]:02x} at offset {e.start})") from None
    except json.JSONDecodeError as e:
        raise DataError(f"{path}:{e.lineno}: invalid JSON ({e.msg} at column {e.colno})") from None
    except RecursionError:
        raise DataError(f"{path}: invalid JSON (nested too deeply)") from None
    except OSError as e:
        raise DataError(f"{path}: cannot read ({e.strerror})") from None

def _clean(rec):
    return {k: v for k, v in rec.items() if not k.startswith("_")}

def _atomic_write(path, write):
    """write(f) into a per-process temporary next to `path`, then rename it over `path`: a crash
    mid-write never leaves a half file behind, and a failed write leaves no temporary either."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")  # per-process: concurrent writers never share it
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            write(f)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)

def write_jsonl(path, records):
    """Write records atomically (see _atomic_write)."""
    _atomic_write(path, lambda f: f.writelines(json.dumps(_clean(r), ensure_ascii=False) + "\n" for r in records))

def write_json(path, obj):
    _atomic_write(path, lambda f: f.write(json.dumps(obj, indent=2, ensure_ascii=False) + "\n"))

def read_jsonl_tolerant(path):
    """For resumable appenders: read the complete lines of a JSONL file that may end in a
    partial line (a killed run). Returns (records, n_good_bytes) so the caller can
    truncate the torn tail before appending again."""
    path = Path(path)
    recs, good = [], 0
    if not path.exists():
        return recs, 0
    with open(path, "rb") as f:
        for line in f:
            if not line.endswith(b"\n"):
                break  # torn last line from a killed writer
            try:
                recs.append(json.loads(line))
            except (json.JSONDecodeError, UnicodeDecodeError, RecursionError):
                break  # not a line this process wrote: keep what precedes it
            good += len(line)
    return recs, good
