"""`evaluate`: direct (trie beam) and reasoning (sampling) evaluation of a checkpoint, single-process or on Ray.

Users are cut into batches of `cfg.batch_size` in example order; each batch is decoded with seed `cfg.seed + batch
index`. Ray workers receive whole batches, so a sharded run performs exactly the computations of a single-process run
and returns the same predictions and metrics (given the same engine settings and thread counts).
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from . import metrics as M
from .answers import get_parser
from .config import EvalConfig
from .prompts import default_direct_prompt, default_reason_prompt, render, resolve_prompt_fn, system_prompt_value
from .reasoning import rank_answers, reason_decode, unconstrained_decode
from .trie import IDCatalog, TokenTrie, token_ids_for

log = logging.getLogger(__name__)


def load_tokenizer(path: str | os.PathLike):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(path))


def build_prompts(tokenizer, catalog: IDCatalog, examples: Sequence[Mapping[str, Any]], cfg: EvalConfig
                  ) -> dict[str, list[list[int]]]:
    """Token-id prompts per mode, rendered once on the driver."""
    fns = {"direct": (resolve_prompt_fn(cfg.direct_prompt_fn, default_direct_prompt),
                      system_prompt_value(cfg.direct_system_prompt), cfg.direct_response_prefix),
           "reason": (resolve_prompt_fn(cfg.reason_prompt_fn, default_reason_prompt),
                      system_prompt_value(cfg.reason_system_prompt), cfg.reason_response_prefix)}
    out: dict[str, list[list[int]]] = {}
    for mode in cfg.modes:
        fn, system, prefix = fns[mode]
        out[mode] = [render(tokenizer, fn([catalog.item_to_id[str(i)] for i in ex["history"]]), system, prefix)
                     for ex in examples]
    return out


class BatchRunner:
    """Owns one engine; decodes batches of users. Used in-process and as the body of a Ray actor."""

    def __init__(self, model_dir: str, index: Mapping[str, Sequence[str]], cfg: EvalConfig):
        from .engines import make_engine

        self.cfg = cfg
        self.catalog = IDCatalog.from_index(index)
        tok = load_tokenizer(cfg.engine.tokenizer_dir or model_dir)
        self.trie = TokenTrie.build(self.catalog, token_ids_for(tok, self.catalog))
        self.tok = tok
        self.engine = make_engine(model_dir, self.trie, tok, cfg.engine)

    def run(self, batch_idx: int, prompts: Mapping[str, list[list[int]]]) -> dict[str, list]:
        cfg, out = self.cfg, {}
        if "direct" in prompts:
            hyps = self.engine.beam(prompts["direct"], cfg.num_beams, max(cfg.top_k, max(cfg.ks)))
            out["direct"] = [[(self.catalog.ids[i], s) for i, s in h] for h in hyps]
        if "reason" in prompts:
            seed = cfg.seed + batch_idx
            if cfg.constrain_answer:
                samples = reason_decode(self.engine, self.tok, self.trie, prompts["reason"], cfg.n_samples,
                                        cfg.temperature, cfg.top_p, cfg.think_budget, seed,
                                        ban_early_end=cfg.ban_early_end)
            else:
                samples = unconstrained_decode(self.engine, self.tok, prompts["reason"], cfg.n_samples,
                                               cfg.temperature, cfg.top_p, cfg.max_new_tokens, seed, cfg.stop)
            out["reason"] = [[asdict(x) for x in user] for user in samples]
        return out

    def close(self) -> None:
        self.engine.close()


def _batches(n: int, size: int) -> list[range]:
    return [range(s, min(s + size, n)) for s in range(0, n, max(1, size))]


def _progress(total: int, enabled: bool):
    from tqdm.auto import tqdm

    return tqdm(total=total, unit=" users", desc="eval", disable=not enabled, dynamic_ncols=True)


def _run_local(model_dir, index, cfg, prompts, batches, info: dict) -> list[dict[str, list]]:
    runner = BatchRunner(str(model_dir), index, cfg)
    results = []
    with _progress(sum(len(b) for b in batches), cfg.progress) as bar:
        for bi, b in enumerate(batches):
            results.append(runner.run(bi, {m: [p[i] for i in b] for m, p in prompts.items()}))
            bar.update(len(b))
    runner.close()
    return results


def worker_device(requested: str, gpu_ids: Sequence[Any], visible: str | None) -> str:
    """The torch device of a Ray worker: its Ray-assigned GPU when it has one, else `requested`.

    Ray sets CUDA_VISIBLE_DEVICES of an actor with num_gpus > 0 to its assigned GPU ids, so the first assigned GPU is
    the local index of that id in CUDA_VISIBLE_DEVICES (0 in the usual case); without the variable the id itself is
    the index. Never a hard-coded cuda:0 of a worker that owns no GPU."""
    if not gpu_ids:
        return requested
    first = str(gpu_ids[0])
    vis = [v.strip() for v in (visible or "").split(",") if v.strip()]
    idx = vis.index(first) if first in vis else (0 if vis else int(first) if first.isdigit() else 0)
    return f"cuda:{idx}"


class RayBatchRunner(BatchRunner):
    """A BatchRunner inside a Ray actor: an HF engine set to a CUDA device runs on the GPU Ray assigned to it."""

    def __init__(self, model_dir: str, index: Mapping[str, Sequence[str]], cfg: EvalConfig):
        import ray

        gpu_ids = ray.get_gpu_ids()
        self.device = cfg.engine.device
        if gpu_ids and cfg.engine.kind in ("hf", "transformers") and str(cfg.engine.device).startswith("cuda"):
            self.device = worker_device(cfg.engine.device, gpu_ids, os.environ.get("CUDA_VISIBLE_DEVICES"))
            cfg = replace(cfg, engine=replace(cfg.engine, device=self.device))
        self.placement = {"node": ray.get_runtime_context().get_node_id(), "gpu_ids": [str(g) for g in gpu_ids],
                          "device": self.device, "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES")}
        super().__init__(model_dir, index, cfg)

    def where(self) -> dict[str, Any]:
        return self.placement


def _needs_gpu(cfg: EvalConfig) -> bool:
    """An engine that runs the model in the worker on CUDA (hf/vllm with device cuda*; openai servers need none)."""
    return cfg.engine.kind in ("hf", "transformers", "vllm") and str(cfg.engine.device).startswith("cuda")


def ray_address(cfg: EvalConfig) -> str | None:
    """Cluster to join: `eval.ray.address` (e.g. "auto" or "ray://head:10001"), else $RAY_ADDRESS; None: start one."""
    return cfg.ray.address or os.environ.get("RAY_ADDRESS") or None


def worker_resources(cfg: EvalConfig, cluster_gpus: float) -> tuple[int, float]:
    """(workers, GPUs per worker). `num_gpus_per_worker` > 0 is used as given; 0 with a CUDA engine reserves one GPU
    per worker (else every worker would share the GPU it happens to see). Workers that the cluster's GPUs cannot
    place are dropped with a warning (they would wait forever); no GPU at all for a CUDA engine is an error."""
    rc = cfg.ray
    n = max(1, int(rc.num_workers))
    gpus = float(rc.num_gpus_per_worker or 0.0)
    if gpus <= 0 and _needs_gpu(cfg):
        gpus = 1.0
    if gpus > 0:
        fit = int(cluster_gpus // gpus + 1e-9)
        if fit < 1:
            raise RuntimeError(f"eval on Ray: each worker needs {gpus:g} GPU (engine.device={cfg.engine.device!r}, "
                               f"ray.num_gpus_per_worker={rc.num_gpus_per_worker}) but the Ray cluster has "
                               f"{cluster_gpus:g} GPUs")
        if fit < n:
            log.warning("eval on Ray: %d workers × %g GPU do not fit the cluster's %g GPUs; using %d workers",
                        n, gpus, cluster_gpus, fit)
            n = fit
    return n, gpus


def _run_ray(model_dir, index, cfg, prompts, batches, info: dict) -> list[dict[str, list]]:
    """Joins a running cluster (`eval.ray.address`, "auto", or $RAY_ADDRESS: then Ray takes no num_cpus/num_gpus
    and the cluster's resources apply) or starts a local Ray sized for the workers (GPUs: Ray detects them)."""
    import ray
    from ray.util import ActorPool

    rc = cfg.ray
    started = False
    if not ray.is_initialized():
        env = {"PYTHONPATH": os.pathsep.join(filter(None, [str(Path(__file__).resolve().parents[2]),
                                                           os.environ.get("PYTHONPATH", "")])), **rc.env_vars}
        kwargs: dict[str, Any] = {"runtime_env": {"env_vars": env}, "log_to_driver": False}
        address = ray_address(cfg)
        if address:
            ray.init(address=address, **kwargs)
        else:
            ray.init(num_cpus=max(1, int(rc.num_workers * rc.num_cpus_per_worker)), include_dashboard=False,
                     **kwargs)
        started = True
    try:
        n_workers, gpus = worker_resources(cfg, float(ray.cluster_resources().get("GPU", 0.0)))
        worker_cfg = replace(cfg, direct_prompt_fn=None, reason_prompt_fn=None, progress=False)
        if not cfg.engine.num_threads and cfg.engine.kind == "hf":
            worker_cfg.engine = replace(cfg.engine, num_threads=max(1, int(rc.num_cpus_per_worker)))
        Actor = ray.remote(num_cpus=rc.num_cpus_per_worker, num_gpus=gpus)(RayBatchRunner)
        index_ref = ray.put(dict(index))
        actors = [Actor.remote(str(model_dir), index_ref, worker_cfg) for _ in range(n_workers)]
        placement = ray.get([a.where.remote() for a in actors])
        log.info("eval on Ray: %d workers %s", n_workers, placement)
        jobs = [(bi, {m: [p[i] for i in b] for m, p in prompts.items()}) for bi, b in enumerate(batches)]
        results = []
        with _progress(sum(len(b) for b in batches), cfg.progress) as bar:
            # each batch goes to the next free actor; results come back in batch order
            for b, result in zip(batches, ActorPool(actors).map(lambda a, job: a.run.remote(*job), jobs)):
                results.append(result)
                bar.update(len(b))
        for a in actors:
            ray.kill(a)
        info["ray_workers"], info["ray_placement"] = n_workers, placement
        return results
    finally:
        if started:
            ray.shutdown()


def _user_records(examples, catalog: IDCatalog, results, batches, cfg: EvalConfig) -> list[dict[str, Any]]:
    parse, _ = get_parser()
    valid = set(catalog.ids)
    recs: list[dict[str, Any]] = []
    for b, res in zip(batches, results):
        for j, i in enumerate(b):
            ex = examples[i]
            target = str(ex["target"])
            rec: dict[str, Any] = {"user": ex.get("user", str(i)), "target": target,
                                   "target_id": catalog.item_to_id[target]}
            if "target_item" in ex:  # the dataset's own id of the target (data/item_map.json)
                rec["target_item"] = ex["target_item"]
            if "direct" in res:
                rec["direct"] = [{"id": sid, "score": round(s, 6)} for sid, s in res["direct"][j]]
            if "reason" in res:
                samples = res["reason"][j]
                answers = []
                for x in samples:
                    toks = parse(x["text"])
                    answers.append("".join(toks) if toks else None)
                logprobs = [x["answer_logprob"] for x in samples]
                rec["reason"] = {"answers": answers,
                                 "n": len(answers),
                                 "correct": sum(a == rec["target_id"] for a in answers),
                                 "well_formed": sum(a is not None for a in answers),
                                 "valid": sum(a in valid for a in answers if a is not None),
                                 "natural_close": sum(x["natural_close"] for x in samples),
                                 "generated_tokens": sum(x["generated_tokens"] for x in samples),
                                 "ranked": rank_answers([a if a in valid else None for a in answers], logprobs)}
                if cfg.constrain_answer:
                    rec["reason"]["answer_logprobs"] = [round(v, 6) for v in logprobs]
                if cfg.save_texts:
                    rec["reason"]["texts"] = [x["text"] for x in samples]
                    rec["reason"]["closed_naturally"] = [bool(x["natural_close"]) for x in samples]
            recs.append(rec)
    return recs


def compute_metrics(records: Sequence[Mapping[str, Any]], catalog: IDCatalog, ks: Sequence[int]) -> dict[str, Any]:
    """metrics.json body from per-user records (see module docstring of metrics.py for the rules)."""
    out: dict[str, Any] = {}
    direct = [r for r in records if "direct" in r]
    if direct:
        ranked = [[h["id"] for h in r["direct"]] for r in direct]
        out["direct"] = M.ranking_metrics(ranked, [r["target_id"] for r in direct], ks)
        owner = M.resolve_id_owner(catalog.id_to_items())
        out["direct_item"] = M.ranking_metrics([M.item_level_ranking(x, owner) for x in ranked],
                                               [r["target"] for r in direct], ks)
    reason = [r["reason"] for r in records if "reason" in r]
    if reason:
        total = sum(r["n"] for r in reason) or 1
        out["reason"] = {**M.mean_pass_at_k([(r["n"], r["correct"]) for r in reason], ks),
                         "valid_answer_rate": sum(r["valid"] for r in reason) / total,
                         "well_formed_rate": sum(r["well_formed"] for r in reason) / total,
                         "natural_close_rate": sum(r["natural_close"] for r in reason) / total,
                         "generated_tokens_per_user": sum(r["generated_tokens"] for r in reason) / len(reason)}
        ranked = [r for r in records if "reason" in r]
        out["reason_rank"] = M.ranking_metrics([r["reason"]["ranked"] for r in ranked],
                                               [r["target_id"] for r in ranked], ks)
    return out


def evaluate(model_dir: Path, index: dict[str, list[str]], examples: list[dict], out_dir: Path,
             cfg: EvalConfig) -> dict[str, Any]:
    """Evaluate a checkpoint on one split; write metrics.json, predictions.jsonl, report.md and plots to `out_dir`.

    Returns the metrics dict: `direct` (recall@k, ndcg@k), `direct_item` (item-level variant), `reason` (pass@k,
    valid_answer_rate, well_formed_rate) for the modes run, and `meta`.
    """
    from .report import write_plots, write_report

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    examples = list(examples)[: cfg.max_users] if cfg.max_users else list(examples)
    unknown = [m for m in cfg.modes if m not in ("direct", "reason")]
    if unknown:
        raise ValueError(f"unknown eval modes {unknown} (direct | reason)")
    catalog = IDCatalog.from_index(index)
    tok = load_tokenizer(cfg.engine.tokenizer_dir or model_dir)
    token_ids_for(tok, catalog)  # fail early when the tokenizer lacks ID tokens
    prompts = build_prompts(tok, catalog, examples, cfg)
    batches = _batches(len(examples), cfg.batch_size)
    t0 = time.perf_counter()
    run = _run_ray if cfg.ray.enabled else _run_local
    info: dict[str, Any] = {"ray_workers": 0}
    results = run(model_dir, index, cfg, prompts, batches, info) if examples else []
    elapsed = time.perf_counter() - t0
    records = _user_records(examples, catalog, results, batches, cfg)
    metrics = compute_metrics(records, catalog, cfg.ks)
    _, parser_origin = get_parser()
    metrics["meta"] = {
        "split": cfg.split, "dataset": cfg.dataset, "n_users": len(examples), "n_ids": len(catalog.ids),
        "n_items": len(catalog.item_to_id), "modes": list(cfg.modes), "engine": cfg.engine.kind,
        "num_beams": cfg.num_beams, "n_samples": cfg.n_samples, "temperature": cfg.temperature, "top_p": cfg.top_p,
        "constrain_answer": cfg.constrain_answer, "think_budget": cfg.think_budget,
        "ban_early_end": cfg.ban_early_end,
        "seconds_per_user": round(elapsed / len(examples), 4) if examples else None,
        "ray_workers": info["ray_workers"], "answer_parser": parser_origin,
        "elapsed_s": round(elapsed, 3), "users_per_s": round(len(examples) / elapsed, 4) if elapsed > 0 else None,
        "model_dir": str(model_dir), **({"ray_placement": info["ray_placement"]} if "ray_placement" in info else {})}
    (out_dir / "predictions.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    (out_dir / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    plots = write_plots(metrics, records, out_dir, cfg) if cfg.plots else []
    (out_dir / "report.md").write_text(write_report(metrics, cfg, plots))
    log.info("eval %s: %s", cfg.split, json.dumps({k: v for k, v in metrics.items() if k != "meta"}))
    return metrics
