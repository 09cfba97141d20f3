"""Paired comparison of two benchmark runs from their files (recsys_lib.compare)."""

import json

import pytest

from recsys_lib import benchmark, compare


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    for model in ("popularity", "random"):
        benchmark.run(model, "bundled", root / model, quick=True, progress=False)
    benchmark.run("popularity", "bundled", root / "popularity-ties", quick=True, progress=False,
                  tie_seed=0)
    return root


def test_compare_reproduces_both_runs_and_their_difference(runs, capsys):
    result = compare.compare_runs(runs / "popularity", runs / "random")
    for folder, mean in (("popularity", result.mean_a), ("random", result.mean_b)):
        stored = json.loads((runs / folder / "metrics.json").read_text())["test"]["ndcg@10"]
        assert mean == pytest.approx(stored, abs=1e-12)
    assert result.difference == pytest.approx(result.mean_a - result.mean_b)
    assert result.low <= result.difference <= result.high and result.n_users == 671
    assert compare.main([str(runs / "popularity"), str(runs / "random")]) == 0
    assert "is better than" in capsys.readouterr().out


def test_compare_refuses_runs_on_different_splits_or_stale_files(runs, tmp_path):
    assert compare.tie_seed_of({"ties": "random (seed 0)"}) == 0
    assert compare.tie_seed_of({"ties": "file order"}) is None
    with pytest.raises(ValueError, match="differ in ties"):
        compare.compare_runs(runs / "popularity", runs / "popularity-ties")
    # the ties run compares with itself on its own (rebuilt) split
    same = compare.compare_runs(runs / "popularity-ties", runs / "popularity-ties")
    assert same.difference == 0.0
    stale = tmp_path / "stale"
    stale.mkdir()
    (stale / "recommendations.csv").write_text(
        (runs / "random" / "recommendations.csv").read_text())
    (stale / "metrics.json").write_text((runs / "popularity" / "metrics.json").read_text())
    with pytest.raises(ValueError, match="different runs"):
        compare.compare_runs(stale, runs / "random")
    with pytest.raises(FileNotFoundError, match="recommendations.csv is not part"):
        compare.compare_runs(tmp_path, runs / "random")
