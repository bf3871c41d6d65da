"""PNG of code usage per level (items per code, sorted) for the index report."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np


def plot_code_usage(codes: np.ndarray, codebook_sizes: list[int], path: Path, title: str = "") -> None:
    """One panel per level: number of items per code, codes sorted by usage; unused codes shown as zeros."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    levels = codes.shape[1]
    fig, axes = plt.subplots(1, levels, figsize=(3.2 * levels, 2.8), squeeze=False)
    for level, ax in enumerate(axes[0]):
        counts = Counter(codes[:, level].tolist())
        usage = sorted((counts.get(c, 0) for c in range(codebook_sizes[level])), reverse=True)
        ax.bar(range(len(usage)), usage, width=1.0, color="tab:blue")
        used = sum(1 for u in usage if u)
        ax.set_title(f"level {chr(97 + level)}: {used}/{codebook_sizes[level]} codes used", fontsize=9)
        ax.set_xlabel("code (sorted by usage)", fontsize=8)
        ax.set_ylabel("items", fontsize=8)
        ax.tick_params(labelsize=7)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
