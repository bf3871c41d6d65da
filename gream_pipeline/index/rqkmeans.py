"""Residual-quantisation k-means (RQ-KMeans) with faiss, paper §3.1 eq. (4)–(8).

R^(1) = e (4); per level l, C^(l) = K-means({R^(l)}, N_l) (5); s^(l) = argmin_k ||R^(l) − c_k|| (6);
R^(l+1) = R^(l) − c_{s^(l)} (7); the code of an item is s = (s^(1), …, s^(H)) (8).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from tqdm import tqdm


@dataclass
class RQKMeansResult:
    codes: np.ndarray  # (n, H) int64, level codes
    codebooks: list[np.ndarray]  # H arrays of shape (N_l, d)
    residual_norms: list[float]  # mean ||R^(l+1)|| after each level


def kmeans(x: np.ndarray, k: int, niter: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """faiss k-means: returns (centroids (k, d), assignment (n,)); ``k`` is capped at the number of points."""
    import faiss

    x = np.ascontiguousarray(x, dtype=np.float32)
    k = max(1, min(k, len(x)))
    km = faiss.Kmeans(x.shape[1], k, niter=niter, seed=seed, verbose=False,
                      min_points_per_centroid=1, max_points_per_centroid=max(256, len(x)))
    km.train(x)
    _, assign = km.index.search(x, 1)
    return km.centroids.copy(), assign[:, 0].astype(np.int64)


def rq_kmeans(
    embeddings: np.ndarray, codebook_sizes: list[int], niter: int = 25, seed: int = 0, progress: bool = True
) -> RQKMeansResult:
    """Quantise ``embeddings`` (n, d) into ``len(codebook_sizes)`` levels of codes (eq. 4–8)."""
    if embeddings.ndim != 2 or len(embeddings) == 0:
        raise ValueError(f"embeddings must be a non-empty (n, d) array, got shape {embeddings.shape}")
    residual = np.ascontiguousarray(embeddings, dtype=np.float32).copy()
    codes, books, norms = [], [], []
    for level, size in enumerate(tqdm(codebook_sizes, desc="rq-kmeans levels", disable=not progress)):
        centroids, assign = kmeans(residual, size, niter, seed + level)
        residual -= centroids[assign]
        codes.append(assign)
        books.append(centroids)
        norms.append(float(np.linalg.norm(residual, axis=1).mean()))
    return RQKMeansResult(np.stack(codes, axis=1), books, norms)
