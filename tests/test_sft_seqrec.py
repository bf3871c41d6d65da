"""``sft.seqrec_format=sequence``: one multi-turn row per window of a user's training items, checked against
LLaMA-Factory 0.9.5's own data pipeline (``get_dataset`` on the real tokenizer) and trainer:

(a) the loss labels cover exactly every assistant ID turn of a sequence row, and the tokens before each of them are
    exactly the evaluation / RL direct-mode query (chat template + generation prompt);
(b) no turn is dropped at the chosen cutoff (rows too long for it are cut by ``fit_to_cutoff``; unfitted rows do
    lose turns in LF, exactly as ``kept_turns`` predicts);
(c) the batches LF's trainer feeds the model follow the curriculum schedule of the emitted file.
Also: training sequences are exactly the split's training items (never a validation or test target).
"""

from __future__ import annotations

import json
import random
from collections import Counter
from pathlib import Path

import pytest

from gream_pipeline.data.split import leave_one_out, training_sequences
from gream_pipeline.eval.prompts import default_direct_prompt, direct_prompt_for, render
from gream_pipeline.prompts import (DIRECT_PROMPT_FNS, NEXT, SEQUENCE_SYSTEM, direct_messages, direct_prompt_fn,
                                    sequence_messages)
from gream_pipeline.rl.prompts_data import rl_prompts
from gream_pipeline.sft.curriculum import schedule
from gream_pipeline.sft.llamafactory_glue import (DATA_FILE, emit_dataset, fit_to_cutoff, kept_turns, lf_encode,
                                                  lf_template, llamafactory_args, load_tokenizer, to_sharegpt,
                                                  validate_args)
from gream_pipeline.sft.model_prep import prepare_model
from gream_pipeline.sft.tasks import (build_alignment, count_targets, example_text, reasoning_examples,
                                      seqrec_sequence_examples, sequence_windows, training_sequences_from_examples)

from tests.fixtures.lf_batches import BatchRecorder  # noqa: E402

MAX_HISTORY = 20
N_ITEMS = 60
INDEX = {str(i): [f"<a_{i % 5}>", f"<b_{i % 7}>", f"<c_{i % 11}>", f"<d_{i // 11}>"] for i in range(N_ITEMS)}
ID_TOKENS = sorted({t for v in INDEX.values() for t in v})
ITEMS = {str(i): {"title": f"Thing {i}", "description": f"About thing {i}" if i % 2 else ""} for i in range(8)}
TINY = {"hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
        "intermediate_size": 128, "vocab_size": 400, "max_position_embeddings": 1024}
PER_DEVICE, ACCUM, EPOCHS, GAMMA, SEED = 2, 2, 2, 1.5, 3
BATCH = PER_DEVICE * ACCUM
CUTOFF = 256  # below a full 21-item window with this tiny tokenizer: some rows must be cut to fit


def _id(item) -> str:
    return "".join(INDEX[str(item)])


def sequences(n_users=12, seed=0) -> dict[str, list[int]]:
    """Distinct items per user; user u0 has 47 items (45 training items: three windows), u1 only 3 (no target)."""
    rng = random.Random(seed)
    lengths = [47, 3] + [rng.randint(4, 24) for _ in range(n_users - 2)]
    return {f"u{k}": rng.sample(range(N_ITEMS), n) for k, n in enumerate(lengths)}


def test_training_sequences_are_the_split_training_items():
    seqs = sequences()
    split = leave_one_out(seqs, MAX_HISTORY)
    train = [e.to_dict() for e in split["train"]]
    got = training_sequences_from_examples(train)
    assert got == {u: s for u, s in training_sequences(seqs).items() if len(seqs[u]) > 3}
    held_out = {(e.user, e.target) for name in ("valid", "test") for e in split[name]}
    rows = seqrec_sequence_examples(got, INDEX, MAX_HISTORY)
    supervised = Counter()
    for row in rows:
        targets = [t["value"] for t in row["conversations"] if t["from"] == "gpt"]
        assert len(targets) <= MAX_HISTORY + 1
        supervised.update((row["user"], t) for t in targets)
    # every training item of every user exactly once, no validation/test target
    assert supervised == Counter((u, _id(i)) for u, s in got.items() for i in s)
    assert not {(u, _id(i)) for u, i in held_out} & set(supervised)
    with pytest.raises(ValueError, match="consecutive prefixes"):
        training_sequences_from_examples(train[:3] + train[5:])


def test_windows_are_cut_from_the_end():
    assert sequence_windows(range(45), 21) == [list(range(0, 3)), list(range(3, 24)), list(range(24, 45))]
    assert sequence_windows(range(5), 21) == [list(range(5))]
    assert sequence_windows([], 21) == []


def test_query_is_the_prefix_of_a_training_row():
    """The direct-mode query for h (eval default, RL records) = a sequence row's messages before the turn of the next
    item; the per_target query is the paper's system + Appendix C user turn."""
    window = [_id(i) for i in (3, 9, 27, 41)]
    row = sequence_messages(window)
    assert row[0] == {"role": "system", "content": SEQUENCE_SYSTEM}
    for k in range(len(window) + 1):
        assert direct_messages(window[:k]) == row[:1 + 2 * k] + [{"role": "user", "content": NEXT}]
    assert default_direct_prompt(window) == direct_messages(window, "sequence")
    assert direct_messages(window, max_history=2) == direct_messages(window[-2:])
    per_target = direct_messages(window, "per_target")
    assert [m["role"] for m in per_target] == ["system", "user"] and window[0] in per_target[1]["content"]
    assert direct_prompt_fn("per_target")(window) == per_target
    assert direct_prompt_for("per_target") == DIRECT_PROMPT_FNS["per_target"]
    (rec,) = rl_prompts([{"user": "u", "history": [3, 9, 27, 41], "target": 5}], INDEX)
    assert rec["prompt"] == direct_messages(window) and rec["ground_truth"] == _id(5)
    (rec,) = rl_prompts([{"user": "u", "history": [3, 9, 27, 41], "target": 5}], INDEX, seqrec_format="per_target")
    assert rec["prompt"] == per_target
    with pytest.raises(ValueError, match="seqrec_format"):
        direct_messages(window, "paper")


def test_build_alignment_formats():
    train = [e.to_dict() for e in leave_one_out(sequences(), MAX_HISTORY)["train"]]
    seq = build_alignment(train, ITEMS, [], INDEX, seed=0, max_history=MAX_HISTORY)
    per = build_alignment(train, ITEMS, [], INDEX, seed=0, seqrec_format="per_target", max_history=MAX_HISTORY)
    seq_rows = [e for e in seq if e["task"] == "seqrec"]
    per_rows = [e for e in per if e["task"] == "seqrec"]
    assert len(per_rows) == len(train)
    # one row per window; one target more per user than per_target (its first item, predicted from no history)
    users = training_sequences_from_examples(train)
    n_windows = sum(len(sequence_windows(s, MAX_HISTORY + 1)) for s in users.values())
    assert len(seq_rows) == n_windows == len(users) + 2  # u0's 45 training items: three windows
    assert sum(map(count_targets, seq_rows)) == len(train) + len(users)
    assert {e["task"] for e in seq} - {"seqrec"} == {"item2id", "id2title", "id2desc"}
    capped = build_alignment(train, ITEMS, [], INDEX, seed=0, max_seqrec=5)
    assert sum(e["task"] == "seqrec" for e in capped) == 5
    assert capped == build_alignment(train, ITEMS, [], INDEX, seed=0, max_seqrec=5)
    assert NEXT in example_text(seq_rows[0]) and SEQUENCE_SYSTEM in example_text(seq_rows[0])


def test_to_sharegpt_multi_turn_rows():
    row = {"system": "s", "task": "seqrec", "conversations": [{"from": "human", "value": "next"},
                                                              {"from": "gpt", "value": "<a_1>"}] * 3}
    assert to_sharegpt(row, "align")["conversations"] == row["conversations"]
    for bad in (row["conversations"][:-1], row["conversations"][1:], []):
        with pytest.raises(ValueError, match="alternating"):
            to_sharegpt({**row, "conversations": bad}, "align")
    with pytest.raises(ValueError, match="empty"):
        to_sharegpt({**row, "conversations": row["conversations"][:3] + [{"from": "gpt", "value": " "}]}, "align")


# ------------------------------------------------------------------------------- LLaMA-Factory's own pipeline
def lf_dataset(args: dict):
    """LF's tokenizer and the tokenized training dataset, built exactly as its ``run_sft`` does."""
    from llamafactory.data import get_dataset, get_template_and_fix_tokenizer
    from llamafactory.hparams import get_train_args
    from llamafactory.model import load_tokenizer as lf_load_tokenizer

    model_args, data_args, training_args, _, _ = get_train_args(dict(args))
    module = lf_load_tokenizer(model_args)
    template = get_template_and_fix_tokenizer(module["tokenizer"], data_args)
    dataset = get_dataset(template, model_args, data_args, training_args, stage="sft", **module)["train_dataset"]
    return module["tokenizer"], dataset


def label_spans(labels: list[int]) -> list[tuple[int, int]]:
    """[start, end) of each maximal run of supervised labels."""
    spans, start = [], None
    for i, lab in enumerate(labels + [-100]):
        if lab != -100 and start is None:
            start = i
        elif lab == -100 and start is not None:
            spans.append((start, i))
            start = None
    return spans


@pytest.fixture(scope="module")
def lf(tmp_path_factory):
    root = tmp_path_factory.mktemp("seqrec")
    train = [e.to_dict() for e in leave_one_out(sequences(), MAX_HISTORY)["train"]]
    align = build_alignment(train, ITEMS, [], INDEX, seed=0, max_history=MAX_HISTORY)
    records = [{"history": [1, 2, 3], "text": f"<think> Step 1 about {k}. </think> <answer>{_id(k)}</answer>"}
               for k in range(8)]
    reason = reasoning_examples(records, INDEX)
    model_dir = prepare_model("scratch", root / "model", ID_TOKENS, [example_text(e) for e in align + reason],
                              arch=TINY, seed=0)
    tok = load_tokenizer(model_dir, ID_TOKENS)
    summary = emit_dataset(root / "data", align, reason, BATCH, EPOCHS, GAMMA, SEED, length_grouped=True,
                           tokenizer=tok, cutoff_len=CUTOFF)
    args = llamafactory_args(model_dir, root / "data", root / "out", per_device_batch=PER_DEVICE, grad_accum=ACCUM,
                             lr=1e-3, cutoff_len=CUTOFF, gradient_checkpointing=False, seed=SEED)
    validate_args(args, batch_size=BATCH, require_files=True)
    lf_tok, dataset = lf_dataset(args)
    rows = [json.loads(line) for line in (root / "data" / DATA_FILE).read_text().splitlines()]
    return {"root": root, "train": train, "align": align, "summary": summary, "args": args, "tok": lf_tok,
            "dataset": dataset, "rows": rows, "model_dir": model_dir}


def test_labels_cover_every_assistant_turn_and_prompts_match_eval(lf):
    """(a) + (b): LF keeps every row, labels exactly each assistant turn (ID + <|im_end|>\\n), and the tokens before
    turn k are the eval/RL query for the row's first k items rendered by the chat template."""
    tok, dataset, rows = lf["tok"], lf["dataset"], lf["rows"]
    assert len(dataset) == len(rows) == lf["summary"]["num_rows"]
    report = lf["summary"]["cutoff"]["align"]
    assert report["rows_split"] > 0 and report["dropped_turns"] == 0  # the cutoff forced cuts; nothing lost
    n_seq = 0
    for row, ex in zip(rows, dataset):
        ids, labels = ex["input_ids"], ex["labels"]
        assert len(ids) <= CUTOFF
        spans = label_spans(labels)
        responses = [t["value"] for t in row["conversations"] if t["from"] == "gpt"]
        assert [tok.decode(ids[a:b]) for a, b in spans] == [r + "<|im_end|>" + "\n" for r in responses]
        assert all(labels[a:b] == ids[a:b] for a, b in spans)
        if row["task"] == "seqrec":
            n_seq += 1
            assert row["system"] == SEQUENCE_SYSTEM
            for k, (a, _) in enumerate(spans):
                assert ids[:a] == render(tok, default_direct_prompt(responses[:k]))
    assert n_seq > 0


def test_unfitted_rows_lose_turns_in_lf_as_predicted(lf, tmp_path):
    """Without fit_to_cutoff, LF silently drops the turns beyond the cutoff; ``kept_turns`` predicts how many."""
    tok = load_tokenizer(lf["model_dir"], ID_TOKENS)
    seq = [e for e in lf["align"] if e["task"] == "seqrec"]
    emit_dataset(tmp_path / "data", seq, [], BATCH, 1, GAMMA, SEED)
    args = {**lf["args"], "dataset_dir": str(tmp_path / "data"), "output_dir": str(tmp_path / "out")}
    lf_tok, dataset = lf_dataset(args)
    rows = [json.loads(line) for line in (tmp_path / "data" / DATA_FILE).read_text().splitlines()]
    template = lf_template(tok)
    lost = 0
    for row, ex in zip(rows, dataset):
        pairs = lf_encode(row, tok, template)
        predicted, spans = kept_turns(pairs, CUTOFF), label_spans(ex["labels"])
        responses = [t["value"] for t in row["conversations"] if t["from"] == "gpt"]
        # the first `predicted` turns are intact, in LF's own encoding; anything after them is cut or gone
        assert ex["input_ids"][:sum(len(a) + len(b) for a, b in pairs[:predicted])] == \
            [t for a, b in pairs[:predicted] for t in a + b]
        assert [lf_tok.decode(ex["input_ids"][a:b]) for a, b in spans[:predicted]] == \
            [r + "<|im_end|>\n" for r in responses[:predicted]]
        if predicted < len(pairs):
            assert len(ex["input_ids"]) == CUTOFF
            assert len(spans) < len(pairs) or lf_tok.decode(ex["input_ids"][spans[-1][0]:spans[-1][1]]) != \
                responses[-1] + "<|im_end|>\n"
        else:
            assert len(spans) == len(pairs)
        lost += len(pairs) - predicted
    assert lost > 0
    fitted, report = fit_to_cutoff([to_sharegpt(e, "align") for e in seq], tok, CUTOFF)
    assert report["dropped_turns"] == 0 and report["assistant_turns"] == sum(map(count_targets, seq))
    assert sum(map(count_targets, fitted)) == report["assistant_turns"]


def test_every_training_target_is_supervised_each_epoch(lf):
    """Each epoch's sequence rows (unique rows: the last batch is padded with repeats) label every training item
    of every user exactly once."""
    tok, steps = lf["tok"], json.loads(Path(lf["summary"]["schedule"]).read_text())["steps"]
    expected = Counter(_id(i) for s in training_sequences_from_examples(lf["train"]).values() for i in s)
    for epoch in range(1, EPOCHS + 1):
        seen, got = set(), Counter()
        for k, st in enumerate(steps):
            if st["epoch"] != epoch or st["kind"] != "align":
                continue
            for pos, idx in enumerate(st["examples"]):
                row, ex = lf["rows"][k * BATCH + pos], lf["dataset"][k * BATCH + pos]
                if row["task"] != "seqrec" or idx in seen:
                    continue
                seen.add(idx)
                got.update(tok.decode(ex["input_ids"][a:b - 2]) for a, b in label_spans(ex["labels"]))
        assert got == expected, epoch


def test_lf_trainer_batches_follow_the_curriculum(lf):
    """(c) LF's trainer (run_exp, sequential sampler) feeds step s exactly the rows [s·B, (s+1)·B) of the emitted
    file as LF encoded them, and those rows are of the kind the schedule gives step s."""
    from llamafactory.train.tuner import run_exp

    summary = lf["summary"]
    plan = [b for epoch in schedule(summary["n_align_batches"], summary["n_reason_batches"], EPOCHS, GAMMA, SEED)
            for b in epoch]
    steps = json.loads(Path(summary["schedule"]).read_text())["steps"]
    assert [(s["kind"], s["batch"]) for s in steps] == plan
    recorder = BatchRecorder()
    run_exp({**lf["args"], "output_dir": str(lf["root"] / "train_out"), "save_strategy": "no",
             "plot_loss": False}, callbacks=[recorder])
    seen = [(step, [(tuple(i), tuple(lab)) for i, lab in zip(rows, labels)]) for step, rows, labels in recorder.seen]
    by_step: dict[int, list[tuple]] = {}
    for step, batch in seen:
        by_step.setdefault(step, []).extend(batch)
    assert sorted(by_step) == list(range(1, len(plan) + 1))
    encoded = [(tuple(ex["input_ids"]), tuple(ex["labels"])) for ex in lf["dataset"]]
    for s, (kind, _) in enumerate(plan, start=1):
        block = slice((s - 1) * BATCH, s * BATCH)
        assert by_step[s] == encoded[block], s
        assert {row["kind"] for row in lf["rows"][block]} == {kind}, s


def test_continuation_rows_supervise_every_id_and_the_query_is_their_prefix(tmp_path):
    """``continuation``: one single-turn row per window whose response is the window's IDs back to back; LF labels
    the whole response, and the tokens of the query for the row's first k items (a continued assistant turn) are
    exactly the row's tokens before its (k+1)-th ID."""
    from gream_pipeline.prompts import CONTINUATION_SYSTEM, HISTORY, continuation_messages
    from gream_pipeline.semantic_ids import split_ids

    train = [e.to_dict() for e in leave_one_out(sequences(), MAX_HISTORY)["train"]]
    align = build_alignment(train, {}, [], INDEX, seed=0, seqrec_format="continuation", max_history=MAX_HISTORY)
    users = training_sequences_from_examples(train)
    assert len(align) == sum(len(sequence_windows(s, MAX_HISTORY + 1)) for s in users.values())
    assert sum(count_targets(e) for e in align) == sum(len(s) for s in users.values())  # every training item once
    assert all(e["system"] == CONTINUATION_SYSTEM and e["prompt"] == HISTORY for e in align)
    model_dir = prepare_model("scratch", tmp_path / "model", ID_TOKENS, [example_text(e) for e in align], arch=TINY,
                              seed=0)
    summary = emit_dataset(tmp_path / "data", align, [], BATCH, 1, GAMMA, SEED,
                           tokenizer=load_tokenizer(model_dir, ID_TOKENS), cutoff_len=CUTOFF)
    assert summary["n_align_targets"] == sum(count_targets(e) for e in align)
    args = llamafactory_args(model_dir, tmp_path / "data", tmp_path / "out", per_device_batch=PER_DEVICE,
                             grad_accum=ACCUM, lr=1e-3, cutoff_len=CUTOFF, gradient_checkpointing=False, seed=SEED)
    tok, dataset = lf_dataset(args)
    rows = [json.loads(line) for line in (tmp_path / "data" / DATA_FILE).read_text().splitlines()]
    for row, ex in zip(rows, dataset):
        ids, labels = ex["input_ids"], ex["labels"]
        ((a, b),) = label_spans(labels)
        response = row["conversations"][1]["value"]
        assert tok.decode(ids[a:b]) == response + "<|im_end|>\n"
        window = ["".join(t) for t in split_ids(response)]
        assert "".join(window) == response
        for k in range(len(window)):
            query = render(tok, direct_messages(window[:k], "continuation"))
            assert query == ids[:a + len(tok(''.join(window[:k]), add_special_tokens=False)["input_ids"])]
        assert continuation_messages(window)[-1]["content"] == response
