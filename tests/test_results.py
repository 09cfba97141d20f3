"""The README's results tables are generated from benchmark outputs."""

import json

import pytest

from recsys_lib import results


def write_run(folder, model, seed, ndcg, quick=False):
    run = folder / f"{model}-{seed}"
    run.mkdir(parents=True)
    (run / "metrics.json").write_text(json.dumps({
        "model": model, "seed": seed, "quick": quick, "best_params": {"k": 1},
        "wall_seconds": 2.0,
        "test": {"ndcg@10": ndcg, "hit_rate@10": 2 * ndcg, "mrr@10": ndcg, "recall@10": ndcg},
    }))


def test_table_averages_seeds_and_orders_by_ndcg(tmp_path):
    write_run(tmp_path, "pop", 1, 0.05)
    for seed, value in ((1, 0.10), (2, 0.12), (3, 0.14)):
        write_run(tmp_path, "sasrec", seed, value)
    table = results.results_table(results.collect_runs(tmp_path))
    lines = table.splitlines()
    assert lines[2].startswith("| sasrec | 3 | **0.1200 ± 0.0200**")
    assert lines[3].startswith("| pop | 1 | 0.0500 |")


def test_readme_block_is_replaced(tmp_path):
    write_run(tmp_path / "ml-100k", "pop", 1, 0.05)
    readme = tmp_path / "README.md"
    readme.write_text("a\n<!-- results:ml-100k:start -->\nold\n<!-- results:ml-100k:end -->\nb\n")
    assert results.main([str(tmp_path / "ml-100k"), "--readme", str(readme)]) == 0
    text = readme.read_text()
    assert "old" not in text and "| pop | 1 |" in text and text.endswith("end -->\nb\n")
    with pytest.raises(ValueError, match="markers"):
        results.update_readme(tmp_path / "README.md", "bundled", "x")


def test_quick_runs_and_empty_folders_are_refused(tmp_path):
    with pytest.raises(FileNotFoundError, match="run the benchmark"):
        results.collect_runs(tmp_path)
    write_run(tmp_path, "pop", 1, 0.05, quick=True)
    with pytest.raises(ValueError, match="--quick"):
        results.results_table(results.collect_runs(tmp_path))


def test_readme_tables_match_the_committed_results():
    """Every results table in the README is exactly what results/<dataset> generates."""
    from recsys_lib.config import REPO_ROOT

    folders = [p for p in sorted((REPO_ROOT / "results").iterdir()) if p.is_dir()]
    assert folders
    for folder in folders:
        shown = results.readme_table(REPO_ROOT / "README.md", folder.name)
        expected = results.results_table(results.collect_runs(folder)) + "\n"
        assert shown == expected, (f"README table for {folder.name} is stale: run "
                                   f"python -m recsys_lib.results {folder} --readme README.md")
