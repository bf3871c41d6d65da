"""Evaluation: trie-constrained beam search (direct mode), sampling + Pass@k (reasoning mode), metrics,
engines (transformers, vLLM, OpenAI-compatible servers), Ray scale-out, report and plots.

Entry point: `evaluate(model_dir, index, examples, out_dir, cfg) -> metrics dict`.
"""

from .config import EngineConfig, EvalConfig, RayConfig
from .runner import compute_metrics, evaluate

__all__ = ["EngineConfig", "EvalConfig", "RayConfig", "compute_metrics", "evaluate"]
