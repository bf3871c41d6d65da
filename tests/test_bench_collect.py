"""bench/collect_results.py: gream's Recall@10 is compared with the baselines on the same users."""

import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))

import collect_results as cr  # noqa: E402


def _write(path: Path, obj: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj))


def test_ratios_use_the_baselines_on_gream_users(tmp_path):
    run = tmp_path / "bench_cpu-instruments"
    _write(run / "eval" / "metrics.json", {"direct": {"recall@10": 0.02}, "direct_users": 100, "reason_users": 5,
                                           "reason": {"pass@1": 0.01}})
    _write(run / "baselines" / "most_popular.json", {
        "n_test": 1000, "wall_time_s": 1.0, "test": {"recall@10": 0.01}, "test_first_n": {"n": 100, "recall@10": 0.04}})
    _write(run / "baselines" / "sasrec_recbole.json", {
        "epochs_run": 3, "best_epoch": 3, "stopped_by": "time_budget", "wall_time_s": 60.0,
        "test_gream_metrics": {"recall@10": 0.5}, "test_first_n": {"n": 100, "recall@10": 0.08}})
    text = "\n".join(cr.dataset_section(run))
    assert "ratio gream / SASRec (same users): **0.25** (0.0200 / 0.0800)" in text
    assert "ratio gream / most-popular (same users): **0.50**" in text
    assert "same 100 users" in text and "all 1000 test users" in text
    assert "ratio gream / paper GREAM-Align: **0.17**" in text  # 0.02 / 0.1207
    assert "| 0.0200 |" in text and "| 0.0100 |" in text


def test_full_test_baselines_when_gream_covered_every_user(tmp_path):
    run = tmp_path / "bench_cpu-scientific"
    _write(run / "eval" / "metrics.json", {"direct": {"recall@10": 0.03}, "direct_users": 1000})
    _write(run / "baselines" / "most_popular.json", {"n_test": 1000, "wall_time_s": 1.0, "test": {"recall@10": 0.06},
                                                     "test_first_n": {"n": 1000, "recall@10": 0.06}})
    text = "\n".join(cr.dataset_section(run))
    assert "ratio gream / most-popular (same users): **0.50**" in text and "same 1000 users" not in text


def test_generated_section_keeps_hand_written_text(tmp_path):
    path = tmp_path / "results.md"
    path.write_text("# notes\n\nhand-written\n")
    cr.replace_section(path, "first run")
    cr.replace_section(path, "second run")
    text = path.read_text()
    assert text.startswith("# notes\n\nhand-written\n") and "second run" in text and "first run" not in text
    assert text.count(cr.BEGIN) == 1 and text.count(cr.END) == 1


def test_sasrec_grid_is_reported(tmp_path):
    sys.path.insert(0, str(REPO / "bench" / "baselines"))
    import sasrec_grid as grid

    points = grid.grid_points([64, 128], [0.2, 0.5], [1e-3])
    assert points[0] == grid.DEFAULTS and len(points) == 4
    results = {grid.tag(points[0]): {"valid": {"ndcg@10": 0.05}, "test": {"recall@10": 0.09}, "epochs_run": 30,
                                     "best_epoch": 20, "stopped_by": "early_stopping", "wall_time_s": 10.0,
                                     "test_gream_metrics": {"recall@10": 0.09}},
               grid.tag(points[1]): {"valid": {"ndcg@10": 0.06}, "test": {"recall@10": 0.08}, "epochs_run": 25,
                                     "best_epoch": 15, "stopped_by": "early_stopping", "wall_time_s": 12.0,
                                     "test_gream_metrics": {"recall@10": 0.08}}}
    run = tmp_path / "bench_cpu-scientific"
    best = grid.write_best(run / "baselines" / "sasrec_recbole.json", points, results)
    assert best["grid"]["selected"] == grid.tag(points[1]) and best["grid"]["complete"] is False
    assert best["test"]["recall@10"] == 0.08  # chosen on validation, not on test
    _write(run / "eval" / "metrics.json", {"direct": {"recall@10": 0.03}, "direct_users": 10})
    text = "\n".join(cr.dataset_section(run))
    assert "best of 2/4 grid configs" in text and "| h128 dropout 0.5 lr 0.001 | not run |" in text
