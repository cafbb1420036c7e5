"""diagnose.py on a tiny random Qwen2: the first-divergence token and its greedy check against a direct argmax,
log-probs against a direct full-logits computation (rejected_upto respected), and the issue's required test:
a short DPO run raises held-out pair accuracy (implicit reward) on pairs of the same kind it never trained on."""
import json

import pytest
import torch

import diagnose
import train_dpo
from common import format_prompt, format_response, load_model, write_json, write_jsonl
from conftest import toy_prepare

torch.set_num_threads(1)


def direct_logps(model, tok, prompt, response, upto=None):
    """Sum of log p(token) over response tokens (+ EOS unless upto) from the full logits, token by token."""
    p = tok(prompt, add_special_tokens=False)["input_ids"]
    enc = tok(response, add_special_tokens=False, return_offsets_mapping=True)
    r, offs = enc["input_ids"], enc["offset_mapping"]
    keep = [upto is None or s < upto for s, _ in offs] + [upto is None]
    ids = p + r + [tok.eos_token_id]
    with torch.no_grad():
        lp = torch.log_softmax(model(torch.tensor([ids])).logits[0].float(), -1)
    return sum(float(lp[len(p) + k - 1, t]) for k, (t, kp) in enumerate(zip(r + [tok.eos_token_id], keep)) if kp)


def test_divergence_pure():
    assert diagnose.divergence([1, 2, 3, 4], [1, 2, 5, 4], 1) == 2
    assert diagnose.divergence([1, 2, 3], [1, 2, 3], 1) is None
    assert diagnose.divergence([1, 2, 3, 9], [1, 2, 3], 1) == 3      # a prefix diverges where it ends
    assert diagnose.divergence([7, 2, 3], [8, 2, 3], 1) is None      # prompt positions are not looked at


def test_divergence_token_and_logps(tmp_path, tiny_model_dir, toy_tok):
    q = "Mia has 7 boxes. Each of the boxes holds 6 pens. She gives away 19 pens. How many pens does Mia have left?"
    good = "Mia has 7 * 6 = 42 pens.\nAfter giving away 19, Mia has 42 - 19 = 23 pens.\nThe answer is: 23"
    slip = "Mia has 7 * 6 = 45 pens.\nAfter giving away 19, Mia has 45 - 19 = 26 pens.\nThe answer is: 26"
    late = good.replace("= 23 pens.\nThe answer is: 23", "= 33 pens.\nThe answer is: 33")
    chosen, prompt = format_response(good), format_prompt(q)
    model, tok, _ = load_model(str(tiny_model_dir))
    model.eval()

    def argmax_after(text):  # the model's greedy next token after prompt + text, by a direct full forward
        ids = tok(prompt, add_special_tokens=False)["input_ids"] + tok(text, add_special_tokens=False)["input_ids"]
        with torch.no_grad():
            return tok.decode([int(model(torch.tensor([ids])).logits[0, -1].argmax())])

    cut = chosen.index("42") + 1                    # chosen and slip first differ at the 2 of 42
    top = argmax_after(chosen[:cut])
    assert top.isdigit() and top != "2", f"fixture assumption: the random model's argmax there is another digit ({top!r})"
    own = chosen[:cut] + top + chosen[cut + 1:]     # a rejected answer that slips exactly where the model would
    pairs = [{"id": "a", "prompt": prompt, "chosen": chosen, "rejected": format_response(slip)},
             {"id": "b", "prompt": prompt, "chosen": chosen, "rejected": format_response(late),
              "rejected_upto": format_response(late).index("33") + 2},
             {"id": "c", "prompt": prompt, "chosen": chosen, "rejected": chosen},
             {"id": "d", "prompt": prompt, "chosen": chosen, "rejected": own},
             {"id": "e", "prompt": prompt, "chosen": chosen, "rejected": chosen.replace("42 pens.", "42 cards.", 1)}]
    for p, w in zip(pairs, (1.0, 1.0, 1.0, 3.0, 1.0)):   # d, the model's own slip, weighs 3
        p["weight"] = w
    write_jsonl(tmp_path / "p.jsonl", pairs)
    out = tmp_path / "diag.json"
    diagnose.main(["--model", str(tiny_model_dir), "--pairs", str(tmp_path / "p.jsonl"), "--out", str(out),
                   "--threads", "1"])
    res = json.loads(out.read_text())
    rows = {r["id"]: r for r in res["rows"]}
    for pid, old, new in (("a", "2", "5"), ("b", "2", "3"), ("d", "2", top)):
        r, rej = rows[pid], next(p for p in pairs if p["id"] == pid)
        assert (r["chosen_token"], r["rejected_token"]) == (old, new)   # digits are single tokens in the toy tokenizer
        at = next(i for i, (x, y) in enumerate(zip(chosen, rej["rejected"])) if x != y)
        assert r["top_token"] == argmax_after(rej["rejected"][:at])
        assert r["rejected_is_top"] == (r["top_token"] == new)
        assert r["logp_c"] == pytest.approx(direct_logps(model, tok, prompt, chosen), abs=1e-3)
        assert r["logp_r"] == pytest.approx(direct_logps(model, tok, prompt, rej["rejected"], rej.get("rejected_upto")), abs=1e-3)
        assert r["margin"] == 0.0  # no --ref and no meta: the model is its own reference
    assert rows["d"]["rejected_is_top"] and not rows["a"]["rejected_is_top"]
    # (c) greedy digit at every digit of the chosen answer, against direct argmaxes
    at = [k for k, ch in enumerate(chosen) if ch.isdigit()]       # digits are single tokens
    want = [(int(chosen[k]), int(argmax_after(chosen[:k])) if argmax_after(chosen[:k]).isdigit() else None,
             chosen[:k].rstrip("0123456789").rstrip().endswith("=")) for k in at]
    assert [tuple(d) for d in rows["a"]["digits"]] == want
    F, T = False, True   # digits 7 6 42 19 42 19 23 23: result digits are those of "= 42" and "= 23"
    assert [d[2] for d in want] == [F, F, T, T, F, F, F, F, F, F, T, T, F, F]
    assert rows["b"]["logp_r"] > rows["a"]["logp_r"]  # b's rejected stops after "33": fewer tokens, fewer nats
    assert "rejected_is_top" not in rows["c"]           # identical texts never diverge
    s = res["summary"]
    assert rows["e"]["chosen_token"].strip()[0] == "p" and rows["e"]["rejected_token"].strip()[0] == "c"  # a word
    assert s["n"] == 5 and s["diverged"] == 0.8 and s["reward_acc"] == 0.5
    assert s["rejected_is_top"] == pytest.approx(sum(rows[k]["rejected_is_top"] for k in "abde") / 4)
    w = {"a": 1.0, "b": 1.0, "d": 3.0, "e": 1.0}   # the diverged pairs' weights
    assert s["rejected_is_top_weighted"] == pytest.approx(sum(w[k] * rows[k]["rejected_is_top"] for k in w) / 6)
    assert s["rejected_is_top_weighted"] > s["rejected_is_top"]   # the weight sits on d, the model's own choice
    assert s["diverge_at_digit"] == 0.75   # a, b, d first differ at a digit, e at a word (a noun)
    assert s["digit_positions"] == 5 * len(at) and s["result_digit_positions"] == 5 * 4
    assert s["digit_top_wrong"] == pytest.approx(sum(w[1] != w[0] for w in want) / len(want))


def test_bad_pairs_file_errors(tmp_path, tiny_model_dir):
    (tmp_path / "bad.jsonl").write_text('{"prompt": "Q", "chosen": " a"}\n')
    with pytest.raises(SystemExit, match="bad.jsonl:1: missing field 'rejected'"):
        diagnose.main(["--model", str(tiny_model_dir), "--pairs", str(tmp_path / "bad.jsonl"), "--out", str(tmp_path / "o.json")])
    assert not (tmp_path / "o.json").exists()


def format_slip_pairs(path, problems, model_dir):
    """Pairs of one error kind: the rejected solution drops the colon of the answer line (a format failure)."""
    recs = [{"id": r["id"], "problem_id": r["id"], "prompt": format_prompt(r["question"]),
             "chosen": format_response(r["solution"]), "weight": 1.0,
             "rejected": format_response(r["solution"].replace("The answer is: ", "The answer is "))} for r in problems]
    write_jsonl(path, recs)
    write_json(str(path) + ".meta.json", {"stage": "mine", "model": str(model_dir)})
    return path


def test_short_dpo_raises_heldout_pair_accuracy(tmp_path, tiny_model_dir):
    prep = toy_prepare()
    tr = prep.make_split(48, 11, "tr")
    ho = prep.make_split(24, 12, "ho", exclude={r["question"] for r in tr})   # held-out: other problems, same rule
    train = format_slip_pairs(tmp_path / "train.jsonl", tr, tiny_model_dir)
    held = format_slip_pairs(tmp_path / "held.jsonl", ho, tiny_model_dir)
    before = diagnose.main(["--model", str(tiny_model_dir), "--pairs", str(held), "--out", str(tmp_path / "before.json"),
                            "--threads", "1"])
    train_dpo.main(["--pairs", str(train), "--model", str(tiny_model_dir), "--out-dir", str(tmp_path / "dpo"),
                    "--batch-size", "8", "--micro-batch-size", "8", "--max-steps", "30", "--lr", "1e-3",
                    "--warmup", "2", "--save-every", "-1", "--threads", "1", "--log-every", "10"])
    after = diagnose.main(["--model", str(tmp_path / "dpo"), "--ref", str(tiny_model_dir), "--pairs", str(held),
                           "--out", str(tmp_path / "after.json"), "--threads", "1"])
    assert before["reward_acc"] == 0.5            # model = reference: every margin is exactly 0
    assert after["reward_acc"] > 0.9              # held-out problems, never trained on
    assert after["mean_margin"] > 0
    assert after["chosen_is_top"] > before["chosen_is_top"]   # the colon became the greedy choice at the slip
    both = diagnose.main(["--model", str(tiny_model_dir), str(tmp_path / "dpo"), "--ref", str(tiny_model_dir),
                          "--pairs", str(held), "--out", str(tmp_path / "b0.json"), str(tmp_path / "b1.json"),
                          "--threads", "1"])     # several models in one process: the same figures as one by one
    assert both == [before, after]
    assert json.loads((tmp_path / "b1.json").read_text())["rows"] == json.loads((tmp_path / "after.json").read_text())["rows"]
    with pytest.raises(SystemExit, match="one each"):
        diagnose.main(["--model", str(tiny_model_dir), str(tmp_path / "dpo"), "--pairs", str(held),
                       "--out", str(tmp_path / "x.json")])
    # several pair files in one process: one --out per (model, pairs), models outer; each file byte for byte what a
    # run on that pairs file alone writes
    alone = diagnose.main(["--model", str(tmp_path / "dpo"), "--ref", str(tiny_model_dir), "--pairs", str(train),
                           "--out", str(tmp_path / "train_alone.json"), "--threads", "1"])
    outs = [tmp_path / f"m{i}_{p}.json" for i in (0, 1) for p in ("held", "train")]
    many = diagnose.main(["--model", str(tiny_model_dir), str(tmp_path / "dpo"), "--ref", str(tiny_model_dir),
                          "--pairs", str(held), str(train), "--out", *map(str, outs), "--threads", "1"])
    assert many[0] == before and many[2:] == [after, alone]
    assert outs[2].read_bytes() == (tmp_path / "after.json").read_bytes()
    assert outs[3].read_bytes() == (tmp_path / "train_alone.json").read_bytes()
    assert json.loads(outs[3].read_text())["trained_on_pairs"] and not json.loads(outs[2].read_text())["trained_on_pairs"]
    with pytest.raises(SystemExit, match=r"2 --model\(s\) x 2 --pairs file\(s\); give one each \(4\)"):
        diagnose.main(["--model", str(tiny_model_dir), str(tmp_path / "dpo"), "--pairs", str(held), str(train),
                       "--out", *map(str, outs[:2])])
    diagnose.main(["--model", str(tmp_path / "dpo"), "--ref", str(tiny_model_dir), "--pairs", str(held), str(train),
                   "--threads", "1"])   # no --out: one default name per pairs file
    assert (tmp_path / "diag_dpo_held.json").read_bytes() == outs[2].read_bytes()
    assert (tmp_path / "diag_dpo_train.json").read_bytes() == outs[3].read_bytes()
