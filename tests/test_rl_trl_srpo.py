"""Single-machine SRPO on TRL (gream_pipeline.rl.trl_srpo) and RL prompt data (gream_pipeline.rl.prompts_data).

A tiny random Qwen3 (hidden 32, 2 layers) with a BPE tokenizer trained by ``tokenizers`` and 16 ID tokens
(4 levels × 4 codes, added as non-special tokens) is built once per module; every run is real TRL training on CPU.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest
import torch

from gream_pipeline.prompts import (
    DIRECT_SYSTEM,
    REASON_SYSTEM,
    continuation_direct_messages,
    direct_messages,
    history_question,
)
from gream_pipeline.rl.prompts_data import rl_prompts, verl_rows, write_verl_parquet
from gream_pipeline.rl.trl_srpo import (
    SRPOConfig,
    SRPOTrainer,
    continuation_mask,
    make_config,
    srpo_reward,
    token_levels,
    train_srpo,
)
from gream_pipeline.semantic_ids import first_id
from reward_fns.srpo import (
    grpo_advantages,
    grpo_advantages_batched,
    id_tokens,
    parse_answer,
    residual_reward,
    srpo_advantages,
    srpo_advantages_batched,
)
from tests.fixtures.configs import section, srpo_values

CHAT_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
ID_TOKENS = [f"<{lv}_{i}>" for lv in "abcd" for i in range(4)]
TARGET = "<a_1><b_2><c_3><d_0>"
G = 8
# Rewards of the scripted "mixed" group: two exact hits (1.0) and partial prefixes (ℓ/4)^0.5.
MIXED = [1.0, 0.5, 0.0, 0.5**0.5, 1.0, 0.0, 0.5, 0.75**0.5]


# ----------------------------------------------------------------------------------------------- fixtures


def _build_tiny(out: Path) -> Path:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast, Qwen3Config, Qwen3ForCausalLM

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=300, special_tokens=["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator([DIRECT_SYSTEM, REASON_SYSTEM, history_question([TARGET])], trainer=trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|endoftext|>")
    fast.add_special_tokens({"additional_special_tokens": ["<|im_start|>"]})
    fast.add_tokens(["<answer>", "</answer>"] + ID_TOKENS)  # non-special: survive skip_special_tokens=True
    fast.chat_template = CHAT_TEMPLATE
    cfg = Qwen3Config(vocab_size=len(fast), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                      num_key_value_heads=1, head_dim=16, intermediate_size=64, max_position_embeddings=1024,
                      tie_word_embeddings=True, eos_token_id=fast.eos_token_id, pad_token_id=fast.pad_token_id)
    torch.manual_seed(0)
    Qwen3ForCausalLM(cfg).save_pretrained(out)
    fast.save_pretrained(out)
    return out


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    """One torch thread: the model is tiny, so more threads only add OpenMP synchronisation."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    return _build_tiny(tmp_path_factory.mktemp("tiny_qwen3"))


def _only_id_tokens(model_dir: Path, tokens: list[str] = ID_TOKENS) -> dict:
    """generation_kwargs restricting sampling to ``tokens`` + EOS (the random model then emits parseable IDs)."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model_dir)
    allowed = set(tok.convert_tokens_to_ids(list(tokens))) | {tok.eos_token_id}
    return {"suppress_tokens": [i for i in range(len(tok)) if i not in allowed]}


def _records(users: list[str], target: str = TARGET) -> list[dict]:
    history = ["<a_0><b_1><c_2><d_3>", "<a_3><b_3><c_0><d_1>"]
    return [{"prompt": direct_messages(history), "ground_truth": target, "user": u} for u in users]


def scripted_reward(completions, user, **_):
    """Group "flat" → all 0.5 (zero variance, dropped); group "mixed" → :data:`MIXED` in rollout order."""
    seen: dict[str, int] = {}
    out = []
    for u in user:
        j = seen.get(u, 0)
        seen[u] = j + 1
        out.append(0.5 if u == "flat" else MIXED[j % G])
    return out


class CaptureTrainer(SRPOTrainer):
    """Records every batch that reaches the loss (after TRL's shuffle/split) and the loss value."""

    instances: ClassVar[list[CaptureTrainer]] = []

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.captured: list[tuple[dict, float]] = []
        CaptureTrainer.instances.append(self)

    def compute_loss(self, model, inputs, *args, **kwargs):
        loss = super().compute_loss(model, inputs, *args, **kwargs)
        snap = {k: (v.detach().clone() if torch.is_tensor(v) else v) for k, v in inputs.items()}
        self.captured.append((snap, float(loss.detach())))
        return loss


def _run(tiny: Path, out: Path, reward_funcs=None, **cfg) -> tuple[dict, CaptureTrainer]:
    base = {"num_generations": G, "per_device_train_batch_size": 2 * G, "max_completion_length": 4,
            "learning_rate": 1e-3, "max_steps": 1, "seed": 0}
    summary = train_srpo(tiny, _records(["flat", "mixed"]), out, srpo_values(**{**base, **cfg}),
                         reward_funcs=reward_funcs, trainer_cls=CaptureTrainer)
    return summary, CaptureTrainer.instances[-1]


def _log_rows(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]


# ----------------------------------------------------------------------------------------------- prompt data


def test_rl_prompts_direct_and_reason():
    index = {"0": ["<a_0>", "<b_1>"], "1": ["<a_1>", "<b_0>", "<c_2>"], "7": ["<a_3>", "<b_3>"]}
    examples = [{"user": 5, "history": [0, 1], "target": 7}]
    (rec,) = rl_prompts(examples, index, "direct")
    assert rec == {"prompt": direct_messages(["<a_0><b_1>", "<a_1><b_0><c_2>"]), "ground_truth": "<a_3><b_3>",
                   "user": "5"}
    (cont,) = rl_prompts(examples, index, "direct", "continuation")
    assert cont == {"prompt": continuation_direct_messages(["<a_0><b_1>", "<a_1><b_0><c_2>"]),
                    "ground_truth": "<a_3><b_3>", "user": "5", "continued": "<a_0><b_1><a_1><b_0><c_2>"}
    (rea,) = rl_prompts(examples, index, "reason")
    assert "continued" not in rea
    assert rea["prompt"][0] == {"role": "system", "content": REASON_SYSTEM}
    assert rea["prompt"][1] == {"role": "user", "content": history_question(["<a_0><b_1>", "<a_1><b_0><c_2>"])}
    with pytest.raises(KeyError):
        rl_prompts([{"user": "u", "history": [3], "target": 7}], index)
    with pytest.raises(ValueError):
        rl_prompts(examples, index, "beam")


def test_verl_parquet_read_by_verl_dataset(tiny, tmp_path):
    pytest.importorskip("verl")
    from omegaconf import OmegaConf
    from transformers import AutoTokenizer
    from verl.utils.dataset.rl_dataset import RLHFDataset

    from reward_fns.verl_plugin import compute_score

    index = {str(i): [f"<a_{i % 4}>", f"<b_{i // 4}>", "<c_0>", "<d_1>"] for i in range(8)}
    examples = [{"user": "u1", "history": [0, 1, 2], "target": 3}, {"user": "u2", "history": [4, 5], "target": 6}]
    records = rl_prompts(examples, index, "direct")
    path = tmp_path / "train.parquet"
    assert write_verl_parquet(records, path) == 2
    assert not list(tmp_path.glob(".*"))  # atomic write left no temp file

    tok = AutoTokenizer.from_pretrained(tiny)
    conf = {"max_prompt_length": 1024, "filter_overlong_prompts_workers": 1, "cache_dir": str(tmp_path / "cache")}
    ds = RLHFDataset(str(path), tok, OmegaConf.create(conf))
    assert len(ds) == 2
    row = ds[1]
    assert set(verl_rows(records)[1]) <= set(row)
    assert row["raw_prompt"] == records[1]["prompt"]
    assert row["data_source"] == "gream" and row["ability"] == "recommendation"
    assert row["reward_model"] == {"style": "rule", "ground_truth": "<a_2><b_1><c_0><d_1>"}
    assert row["extra_info"] == {"index": 1, "user": "u2"} and row["index"] == 1
    # verl's reward path: compute_score(data_source, response, reward_model.ground_truth, extra_info)
    score = compute_score(row["data_source"], "<a_2><b_1><c_0><d_1>", row["reward_model"]["ground_truth"],
                          row["extra_info"])
    assert score == {"score": 1.0, "prefix_len": 4, "exact": 1}
    # the length filter tokenises through the chat template: a tiny limit drops every prompt
    short = RLHFDataset(str(path), tok, OmegaConf.create({**conf, "max_prompt_length": 8}))
    assert len(short) == 0


# ----------------------------------------------------------------------------------------------- config, reward


def test_config_from_the_recipe_and_validation(tmp_path):
    cfg = make_config(srpo_values(max_steps=2), tmp_path)
    recipe = section("rl.trl")
    for key, value in recipe.items():
        if key not in ("max_steps", "report_to"):
            assert getattr(cfg, key) == value, key
    assert cfg.max_steps == 2 and cfg.advantage == "srpo" and cfg.output_dir == str(tmp_path)
    assert cfg.report_to in ("none", [], ["none"])  # TrainingArguments normalises "none"
    assert (cfg.loss_type, cfg.bf16, cfg.gradient_checkpointing, cfg.use_vllm) == ("grpo", False, False, False)
    assert cfg.generation_batch_size % cfg.num_generations == 0
    assert cfg.model_init_kwargs == {"dtype": "float32"}
    with pytest.raises(TypeError, match="srpo_k"):  # SRPO fields have no defaults: config.yaml holds them
        make_config({k: v for k, v in srpo_values().items() if k != "srpo_k"}, tmp_path)
    with pytest.raises(ValueError, match="advantage"):
        SRPOConfig(**srpo_values(output_dir=str(tmp_path), advantage="ppo"))
    with pytest.raises(ValueError, match="loss_type"):
        SRPOConfig(**srpo_values(output_dir=str(tmp_path), loss_type="sapo"))


def test_srpo_reward_matches_residual_reward():
    fn = srpo_reward()
    completions = [[{"role": "assistant", "content": TARGET}], [{"role": "assistant", "content": "<a_1><b_2>"}],
                   "<think>x</think><answer><a_1><b_0><c_3><d_0></answer>", [{"role": "assistant", "content": "no"}]]
    got = fn(completions=completions, ground_truth=[TARGET] * 4)
    assert got == [1.0, 0.5**0.5, 0.25**0.5, 0.0]
    assert fn.__name__ == "srpo_residual_reward"
    assert srpo_reward(beta=1.0)(completions=completions[1:2], ground_truth=[TARGET]) == [0.5]


# ----------------------------------------------------------------------------------------------- trainer


def test_srpo_advantages_filter_and_loss(tiny, tmp_path):
    """(a) the advantages used by the loss are srpo_advantages_batched; (b) the zero-variance group is dropped."""
    summary, tr = _run(tiny, tmp_path / "run", reward_funcs=[scripted_reward])
    batch = tr.last_batch
    r = batch["rewards"]
    np.testing.assert_allclose(r, [0.5] * G + MIXED, atol=1e-6)
    np.testing.assert_array_equal(batch["exact"], r == 1.0)
    np.testing.assert_array_equal(batch["keep"], [False] * G + [True] * G)
    expected = np.where(batch["keep"], srpo_advantages_batched(r, r == 1.0, np.arange(2 * G) // G, k=4), 0.0)
    np.testing.assert_allclose(batch["advantages"], expected, rtol=0, atol=1e-12)
    # independent single-group path of the same math
    np.testing.assert_allclose(expected[G:], srpo_advantages(r[G:], r[G:] == 1.0, k=4), atol=1e-12)

    (inputs, loss), = tr.captured  # one step, one micro-batch (rows shuffled by TRL)
    used = inputs["advantages"].double().numpy()
    np.testing.assert_allclose(np.sort(used), np.sort(expected), atol=1e-6)
    dropped = inputs["completion_mask"].sum(dim=1) == 0
    assert int(dropped.sum()) == G
    assert torch.all(inputs["advantages"][dropped] == 0)
    np.testing.assert_allclose(np.sort(used[~dropped.numpy()]), np.sort(expected[G:]), atol=1e-6)
    # eq. 22 sequence mean over kept rollouts only; policy == reference on the first step, so KL ≈ 0
    assert loss == pytest.approx(-expected[G:].mean(), abs=1e-4)

    rows = _log_rows(tmp_path / "run")
    assert len(rows) == 1 and rows[0]["kept_group_frac"] == 0.5 and rows[0]["groups"] == 2
    assert rows[0]["reward_mean"] == pytest.approx(np.mean([0.5] * G + MIXED), abs=1e-6)
    assert rows[0]["exact_rate"] == pytest.approx(2 / (2 * G))
    assert summary["groups"] == 2 and summary["kept_groups"] == 1 and summary["filtered_group_frac"] == 0.5

    # dropped rollouts contribute nothing: scrambling their tokens changes neither loss nor gradients
    model = tr.model
    model.train()

    def loss_and_grads(batch_inputs):
        model.zero_grad()
        value = tr.compute_loss(model, batch_inputs)
        value.backward()
        return float(value.detach()), [p.grad.detach().clone() for p in model.parameters() if p.grad is not None]

    l1, g1 = loss_and_grads(inputs)
    scrambled = dict(inputs)
    ids = inputs["completion_ids"].clone()
    ids[dropped] = torch.randint(0, model.config.vocab_size, ids[dropped].shape, generator=torch.Generator().manual_seed(1))
    scrambled["completion_ids"] = ids
    l2, g2 = loss_and_grads(scrambled)
    assert np.isfinite(l1) and l1 == pytest.approx(l2, abs=1e-7)
    assert all(torch.isfinite(a).all() and torch.allclose(a, b, atol=1e-7) for a, b in zip(g1, g2))
    assert any(a.abs().sum() > 0 for a in g1)


def test_grpo_switch_uses_eq10(tiny, tmp_path):
    """(d) advantage="grpo": plain group-normalised advantages (eq. 10), same filter."""
    _, tr = _run(tiny, tmp_path / "grpo", reward_funcs=[scripted_reward], advantage="grpo")
    batch = tr.last_batch
    r = batch["rewards"]
    expected = np.where(batch["keep"], grpo_advantages_batched(r, np.arange(2 * G) // G), 0.0)
    np.testing.assert_allclose(batch["advantages"], expected, atol=1e-12)
    np.testing.assert_allclose(expected[G:], grpo_advantages(r[G:]), atol=1e-12)
    assert not np.allclose(expected[G:], srpo_advantages(r[G:], r[G:] == 1.0, k=4))  # the bonus is really off
    (inputs, loss), = tr.captured
    np.testing.assert_allclose(np.sort(inputs["advantages"].double().numpy()), np.sort(expected), atol=1e-6)
    assert loss == pytest.approx(0.0, abs=1e-4)  # eq. 10 advantages have zero group mean


@pytest.mark.parametrize("loss_type", ["dapo", "bnpo"])
def test_token_mean_losses_exclude_dropped(tiny, tmp_path, loss_type):
    """Token-normalised losses: the normaliser is the kept completion tokens (dapo: num_items_in_batch)."""
    _, tr = _run(tiny, tmp_path / loss_type, reward_funcs=[scripted_reward], loss_type=loss_type)
    (inputs, loss), = tr.captured
    n_tok = inputs["completion_mask"].sum(dim=1).double()
    kept = n_tok > 0
    assert int(kept.sum()) == G
    adv = inputs["advantages"].double()
    assert loss == pytest.approx(float(-(adv[kept] * n_tok[kept]).sum() / n_tok[kept].sum()), abs=1e-4)
    if loss_type == "dapo":
        assert int(inputs["num_items_in_batch"]) == int(n_tok.sum())


def flat_reward(completions, **_):
    """The same reward for every rollout: every group has zero variance and is dropped."""
    return [0.5] * len(completions)


def test_training_stops_after_batches_without_a_kept_group(tiny, tmp_path):
    """stop_after_empty_batches=2: two generation batches that keep no group end training at step 2 of 6; with
    a kept group in every batch all steps run."""
    summary, _ = _run(tiny, tmp_path / "flat", reward_funcs=[flat_reward], max_steps=6, stop_after_empty_batches=2)
    assert summary["steps"] == 2 and summary["max_steps"] == 6 and summary["kept_groups"] == 0
    assert summary["stopped_early"] == {"at_step": 2, "empty_batches": 2}
    assert len(_log_rows(tmp_path / "flat")) == 2
    summary, _ = _run(tiny, tmp_path / "mixed", reward_funcs=[scripted_reward], max_steps=3, stop_after_empty_batches=1)
    assert summary["steps"] == 3 and summary["stopped_early"] is None and summary["kept_groups"] == 3
    with pytest.raises(ValueError, match="stop_after_empty_batches"):
        make_config(srpo_values(stop_after_empty_batches=0), tmp_path)


def test_train_srpo_end_to_end(tiny, tmp_path):
    """(c) real reward on generated text, a few steps, weights change, artefacts written."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out = tmp_path / "e2e"
    records = _records([f"u{i}" for i in range(8)])
    cfg = {"num_generations": G, "per_device_train_batch_size": 4 * G, "max_completion_length": 6,
           "learning_rate": 1e-2, "max_steps": 3, "seed": 0, "generation_kwargs": _only_id_tokens(tiny)}
    summary = train_srpo(tiny, records, out, srpo_values(**cfg), trainer_cls=CaptureTrainer)
    tr = CaptureTrainer.instances[-1]

    rows = _log_rows(out)
    assert [r["step"] for r in rows] == [1, 2, 3]
    for row in rows:
        assert {"reward_mean", "exact_rate", "kept_group_frac", "loss", "kl", "step_time"} <= set(row)
        assert 0.0 <= row["kept_group_frac"] <= 1.0
    assert any(r["kept_group_frac"] > 0 for r in rows)
    assert (out / "reward_kept.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert json.loads((out / "summary.json").read_text()) == summary
    assert summary["steps"] == 3 and summary["rollouts"] == 3 * 4 * G and summary["groups"] == 12
    assert summary["sec_per_step"] > 0

    # the reward TRL logged for each decoded completion is r_rs from reward_fns
    texts, rewards = list(tr._logs["completion"]), list(tr._logs["rewards"]["srpo_residual_reward"])
    assert len(texts) == 4 * G
    assert rewards == pytest.approx([residual_reward(parse_answer(t), id_tokens(TARGET)) for t in texts])
    assert any(parse_answer(t) is not None for t in texts)  # ID tokens survived skip_special_tokens decoding

    before = AutoModelForCausalLM.from_pretrained(tiny).state_dict()
    after = AutoModelForCausalLM.from_pretrained(out / "model").state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in before)
    tok = AutoTokenizer.from_pretrained(out / "model")
    assert tok.convert_ids_to_tokens(tok(TARGET, add_special_tokens=False).input_ids) == id_tokens(TARGET)


def test_continuation_mask_keeps_the_first_id():
    """Levels a–d (0–3) then a slot (level 4) or the next item's level-a token."""
    levels_of = {10: 0, 11: 1, 12: 2, 13: 3, 14: 4, 99: 0}
    ids = torch.tensor([[10, 11, 12, 13, 99, 11],   # ID then the next item: 4 tokens
                        [10, 11, 12, 13, 14, 99],   # ID with a conflict slot: 5 tokens
                        [7, 7, 7, 7, 7, 7]])        # no ID at all: the wrong first tokens stay in the loss
    assert continuation_mask(ids, levels_of, 4).tolist() == [[1, 1, 1, 1, 0, 0], [1, 1, 1, 1, 1, 0],
                                                             [1, 1, 1, 1, 0, 0]]
    assert continuation_mask(ids[:, :3], levels_of, 4).tolist() == [[1, 1, 1]] * 3


def test_continuation_rollouts_are_scored_and_trained_on_their_first_id(tiny, tmp_path):
    """Continuation prompts (the history IDs in a continued assistant turn): the reward reads the first ID of each
    completion, the items after it get no loss, and groups with mixed rewards are kept."""
    from transformers import AutoTokenizer

    out = tmp_path / "cont"
    history = ["<a_0><b_1><c_2><d_3>", "<a_3><b_3><c_0><d_1>"]
    target = "<a_0><b_2><c_3><d_0>"  # a first token this random model samples often: rewards vary within groups
    records = [{"prompt": continuation_direct_messages(history), "ground_truth": target, "user": f"u{i}",
                "continued": "".join(history)} for i in range(8)]
    cfg = {"num_generations": G, "per_device_train_batch_size": 4 * G, "max_completion_length": 7,
           "learning_rate": 1e-2, "max_steps": 2, "seed": 0, "continuation_levels": 4,
           "generation_kwargs": _only_id_tokens(tiny, id_tokens(target) + ["<a_1>"])}
    summary = train_srpo(tiny, records, out, srpo_values(**cfg), trainer_cls=CaptureTrainer)
    tr = CaptureTrainer.instances[-1]
    texts, rewards = list(tr._logs["completion"]), list(tr._logs["rewards"]["srpo_residual_reward"])
    assert rewards == pytest.approx([residual_reward(first_id(t), id_tokens(target)) for t in texts])
    assert any(0 < r < 1 for r in rewards)
    assert any(len(parse_answer(t) or []) > 4 for t in texts)  # completions run past the first ID ...
    for inputs, _ in tr.captured:  # ... but only its tokens are trained on
        assert int(inputs["completion_mask"][:, 4:].sum()) == 0
    assert summary["kept_groups"] > 0
    tok = AutoTokenizer.from_pretrained(tiny)
    assert set(token_levels(tok).values()) == {0, 1, 2, 3}


def test_reward_rises_on_fixed_target(tiny, tmp_path):
    """Learning sanity: every prompt has the same target; SRPO raises the mean reward within 20 steps."""
    out = tmp_path / "learn"
    cfg = {"num_generations": G, "per_device_train_batch_size": 4 * G, "max_completion_length": 6,
           "learning_rate": 1e-2, "max_steps": 20, "seed": 0, "generation_kwargs": _only_id_tokens(tiny)}
    summary = train_srpo(tiny, _records([f"u{i}" for i in range(16)]), out, srpo_values(**cfg))
    rewards = [r["reward_mean"] for r in _log_rows(out)]
    assert len(rewards) == 20
    assert np.mean(rewards[-5:]) > np.mean(rewards[:5]) + 0.15, rewards
    assert summary["reward_last"] > summary["reward_first"]


def test_paired_differences_of_validation_runs(tmp_path):
    """SRPO − before / SRPO − GRPO / GRPO − before per user, by hand: 4 users, reasoning mode (n=2 samples)."""
    from gream_pipeline.artifacts import write_jsonl
    from gream_pipeline.rl.stage import paired_differences

    def recs(correct, ranked_hit):
        return [{"target_id": "T", "reason": {"n": 2, "correct": c, "ranked": ["T"] if h else ["X", "T"]}}
                for c, h in zip(correct, ranked_hit)]

    runs = {"valid_before": recs([0, 0, 1, 0], [0, 0, 1, 0]), "valid_after": recs([2, 1, 1, 0], [1, 1, 1, 0]),
            "grpo_valid_after": recs([0, 1, 1, 0], [0, 1, 1, 0])}
    for folder, rows in runs.items():
        (tmp_path / folder / "reason").mkdir(parents=True)
        write_jsonl(tmp_path / folder / "reason" / "predictions.jsonl", rows)
    out = paired_differences(tmp_path, ["reason"], seed=0)["reason"]
    assert out["users"] == 4
    # pass@1 per user = c / 2: srpo [1, .5, .5, 0], before [0, 0, .5, 0], grpo [0, .5, .5, 0]
    assert out["srpo-before"]["pass@1"]["diff"] == pytest.approx(1.5 / 4)
    assert out["srpo-grpo"]["pass@1"]["diff"] == pytest.approx(1.0 / 4)
    assert out["grpo-before"]["rank_recall@1"]["diff"] == pytest.approx(1 / 4)
    assert out["srpo-before"]["rank_recall@5"]["diff"] == pytest.approx(0.0)  # T is ranked 2nd otherwise
    assert "pass@5" not in out["srpo-before"]  # 2 samples: pass@5 undefined
    lo, hi = out["srpo-before"]["pass@1"]["lo"], out["srpo-before"]["pass@1"]["hi"]
    assert 0.0 <= lo <= 1.5 / 4 <= hi <= 1.0
