"""The README's results tables are generated from benchmark outputs."""

import json

import pytest

from recsys_lib import results
from recsys_lib.config import REPO_ROOT


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
    folders = [p for p in sorted((REPO_ROOT / "results").iterdir())
               if p.is_dir() and any(p.rglob("metrics.json"))]  # benchmark folders
    assert len(folders) >= 3
    for folder in folders:
        shown = results.readme_table(REPO_ROOT / "README.md", folder.name)
        expected = results.results_table(results.collect_runs(folder)) + "\n"
        assert shown == expected, (f"README table for {folder.name} is stale: run "
                                   f"python -m recsys_lib.results {folder} --readme README.md")


#: Notebooks whose stored outputs print a table of test metrics that must agree with results/:
#: notebook -> (results folder, words that start the table's header line). In both tables the
#: first two numbers of a row are HR@10 and NDCG@10, printed with 4 decimals.
NOTEBOOK_TABLES = {
    "notebooks/05_evaluation.ipynb": ("results/bundled", "HR@10  NDCG@10"),
    "notebooks/10_transformer_recommender.ipynb": ("results/bundled", "hit_rate@10  ndcg@10"),
}


def stored_table_rows(notebook, header: str) -> dict[str, tuple[float, float]]:
    """model -> (HR@10, NDCG@10) as printed in the stored output that contains ``header``."""
    import nbformat

    nb = nbformat.read(notebook, as_version=4)
    texts = [o.text for c in nb.cells if c.cell_type == "code" for o in c.outputs
             if o.output_type == "stream" and header in o.text]
    assert len(texts) == 1, f"{notebook}: expected one stored table with {header!r}"
    lines = texts[0].split(header, 1)[1].splitlines()[1:]
    rows = {}
    for line in lines:
        words = line.split()
        if not words:
            break
        numbers = [float(w) for w in words[1:] if w.replace(".", "", 1).isdigit()]
        if len(numbers) >= 2:
            rows[words[0]] = (numbers[0], numbers[1])
    return rows


@pytest.mark.parametrize("notebook", sorted(NOTEBOOK_TABLES))
def test_notebook_tables_match_the_committed_results(notebook):
    """A stored table that cites results/ is re-executed whenever those results change."""
    root = REPO_ROOT
    folder, header = NOTEBOOK_TABLES[notebook]
    rows = stored_table_rows(root / notebook, header)
    checked = []
    for model, (hit_rate, ndcg) in rows.items():
        path = root / folder / model / "metrics.json"
        if not path.is_file():
            continue
        test = json.loads(path.read_text())["test"]
        for printed, key in ((hit_rate, "hit_rate@10"), (ndcg, "ndcg@10")):
            assert printed == pytest.approx(test[key], abs=5.01e-5), (
                f"{notebook} prints {key} {printed} for {model}, {path.relative_to(root)} says "
                f"{test[key]:.4f}: re-execute the notebook (python -m recsys_lib.execute "
                f"{notebook})")
        checked.append(model)
    assert len(checked) >= 8, f"{notebook}: only {checked} matched a results/ folder"


def _readme_rows(start: str, end: str) -> list[list[str]]:
    """The cells of the README's table rows between two headings."""
    text = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split(start, 1)[1].split(end, 1)[0]
    return [[c.strip() for c in line.strip().strip("|").split("|")]
            for line in section.splitlines() if line.startswith("| ") and "---" not in line]


def test_readme_serving_numbers_come_from_results():
    """Every number of the README's serving tables is in results/serving/*.json."""
    serving = json.loads((REPO_ROOT / "results/serving/serving-quick.json").read_text())
    rows = _readme_rows("### Serving (notebook 12)", "Retrieval (")
    latency = {row[0].split()[0]: row[1:] for row in rows[1:]}
    assert set(latency) == {"naive", "compiled", "batched"}
    for server, cells in latency.items():
        single = serving["latency"][server]["single"]
        many = serving["latency"][server]["concurrent"]
        assert cells[0] == f"{single['p50']:.1f} / {single['p99']:.1f}", server
        assert cells[1] == f"{single['throughput']:.0f}", server
        assert cells[2] == f"{many['p50']:.0f} / {many['p99']:.0f}", server
        assert cells[3] == f"{many['throughput']:.0f}", server
    retrieval = json.loads((REPO_ROOT / "results/serving/retrieval-1m.json").read_text())
    synthetic = retrieval["retrieval"]["synthetic"]
    assert synthetic["n_items"] == 1_000_000
    measured = {}
    for r in synthetic["rows"]:
        knob = r.get("nprobe", r.get("ef_search"))
        measured[(r["method"].split()[0], knob)] = r
    rows = _readme_rows("Retrieval (", "On the course's own catalogue")
    assert len(rows) == 7
    for method, recall, p50, build in rows[1:]:
        key = ("exact" if method.startswith("exact") else method.split()[1].strip(",").lower(),
               int(method.split()[-1]) if method[-1].isdigit() else None)
        run = measured[key]
        assert recall == f"{run['recall@10']:.3f}", method
        assert p50 == (f"{run['p50_ms']:.1f}" if run["p50_ms"] >= 1 else f"{run['p50_ms']:.3f}")
        assert build == (f"{run['build_s']:.1f}" if run["build_s"] else "0"), method


def test_readme_training_at_scale_numbers_come_from_results():
    """The README's epoch-time and distribution tables are results/ml-100k-speed and
    results/distributed, digit for digit."""
    speed = json.loads((REPO_ROOT / "results/ml-100k-speed/epoch_times.json").read_text())
    rows = _readme_rows("### Training at scale (notebook 13)", "Why: padding every window")
    assert [row[0] for row in rows[1:]] == list(speed["runs"])
    readme = (REPO_ROOT / "README.md").read_text()
    explanation = readme[readme.index("Why: padding every window"):]
    explanation = explanation[:explanation.index("**Test NDCG@10")]
    for name, run in speed["runs"].items():  # the work counts the explanation quotes
        if name != "max_len 50, buckets + 6400 tokens":
            assert f"{run['work']['positions']:,}" in explanation, run["settings"]
    for name, windows, epoch_s, ratio, first in rows[1:]:
        run = speed["runs"][name]
        assert (windows, epoch_s, first) == (f"{run['windows']:,}", f"{run['epoch_s']:.1f}",
                                             f"{run['first_epoch_s']:.1f}"), name
        assert ratio == f"{speed['ratio_to_max_len_50_padded'][name]:.2f}", name
    rows = _readme_rows("Data parallelism with TensorFlow's own engine", "The runs agree")
    assert [row[0] for row in rows[1:]] == ["single", "multiworker", "mirrored"]
    for strategy, replicas, batch, loss, ndcg, seconds in rows[1:]:
        run = json.loads((REPO_ROOT / f"results/distributed/{strategy}-quick/result.json")
                         .read_text())
        assert (replicas, batch) == (str(run["replicas_in_sync"]), str(run["global_batch"]))
        assert loss == f"{run['loss'][-1]:.5f}" and ndcg == f"{run['val_ndcg@10']:.4f}"
        assert seconds == f"{run['train_seconds']:.1f}", strategy
