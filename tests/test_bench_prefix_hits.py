"""bench/prefix_hits.py: level-by-level prefix hits of direct-mode predictions, on hand-computed records."""
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))

import prefix_hits as ph  # noqa: E402


def rec(target: str, *preds: str) -> dict:
    return {"target_id": target, "direct": [{"id": p, "score": -float(i)} for i, p in enumerate(preds)]}


def test_prefix_hits_count_each_level_and_the_whole_id():
    records = [
        rec("<a_1><b_2><c_3><d_4>", "<a_1><b_2><c_3><d_4>", "<a_9><b_2><c_3><d_4>"),   # whole ID at rank 1
        rec("<a_1><b_2><c_3><d_4>", "<a_1><b_2><c_7><d_4>", "<a_1><b_5><c_3><d_4>"),   # prefix of 2 only
        rec("<a_1><b_2><c_3><d_4><e_1>", "<a_1><b_2><c_3><d_4><e_0>"),                 # 4 codes, wrong slot
        rec("<a_1><b_2><c_3><d_4>", "<a_8><b_2><c_3><d_4>", "<a_1><b_2><c_3><d_4>"),   # beyond k=1
    ]
    out = ph.prefix_hits(records, k=1, levels=4)
    assert out["users"] == 4
    assert out["prefix_hit"] == {"1": 0.75, "2": 0.75, "3": 0.5, "4": 0.5, "full_id": 0.25}
    assert out["distinct_first_tokens_in_top_k"] == 1.0
    lo, hi = out["prefix_hit_ci95"]["full_id"]
    assert lo < 0.25 < hi
    assert ph.prefix_hits(records, k=2, levels=4)["prefix_hit"]["full_id"] == 0.5
