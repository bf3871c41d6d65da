"""Leave-one-out split (the LC-Rec/LETTER convention).

For a user sequence ``s`` of length ``n``: test target ``s[n-1]`` with history ``s[:n-1]``; validation target
``s[n-2]`` with history ``s[:n-2]`` (when ``n >= 3``); training targets ``s[1..n-3]`` with their prefixes. Histories
keep the most recent ``max_history`` items. Hence |train| = Σ max(n-3, 0), |valid| = #{n >= 3}, |test| = #users.
"""

from __future__ import annotations

from dataclasses import dataclass

from gream_pipeline.errors import GreamError


@dataclass(frozen=True)
class Example:
    user: str
    history: list[int]
    target: int

    def to_dict(self) -> dict:
        return {"user": self.user, "history": self.history, "target": self.target}


def _example(user: str, seq: list[int], t: int, max_history: int) -> Example:
    return Example(user=user, history=list(seq[max(0, t - max_history):t]), target=seq[t])


def leave_one_out(sequences: dict[str, list[int]], max_history: int = 20) -> dict[str, list[Example]]:
    """Split every user's sequence into train/valid/test examples (see module docstring)."""
    if max_history < 1:
        raise GreamError(f"data.max_history={max_history}: allowed: an integer >= 1")
    split: dict[str, list[Example]] = {"train": [], "valid": [], "test": []}
    for user, seq in sequences.items():
        n = len(seq)
        split["train"].extend(_example(user, seq, t, max_history) for t in range(1, n - 2))
        if n >= 3:
            split["valid"].append(_example(user, seq, n - 2, max_history))
        split["test"].append(_example(user, seq, n - 1, max_history))
    return split


def training_sequences(sequences: dict[str, list[int]]) -> dict[str, list[int]]:
    """Each user's sequence without its validation and test items (what training may see)."""
    return {u: s[: max(len(s) - 2, 1)] for u, s in sequences.items()}
