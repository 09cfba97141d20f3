"""The recommendation service (notebook 12): bundles, scorers and every endpoint.

One tiny SASRec (a cyclic synthetic catalogue, one epoch: seconds) is trained per module and
exported twice (two versions); the app is exercised through FastAPI's TestClient.
"""

import asyncio
import json
import warnings

import numpy as np
import pandas as pd
import pytest

from recsys_lib.config import import_tensorflow_quietly

pytest.importorskip("tensorflow")
import_tensorflow_quietly()  # before Keras: no TensorFlow start-up lines in the test output
pytest.importorskip("fastapi")

with warnings.catch_warnings():  # Starlette's TestClient suggests httpx2; httpx works
    warnings.filterwarnings("ignore", message=".*httpx2")
    from fastapi.testclient import TestClient  # noqa: E402
from sequences import cyclic_histories  # noqa: E402

from recsys_lib.checks import ArgumentError  # noqa: E402
from recsys_lib.serving.app import MAX_HISTORY, MAX_K, create_app  # noqa: E402
from recsys_lib.serving.bundle import (  # noqa: E402
    BundleError,
    export_bundle,
    load_bundle,
    read_manifest,
)
from recsys_lib.serving.loadtest import latency_summary, run_load  # noqa: E402
from recsys_lib.serving.scoring import make_scorer, top_k_excluding  # noqa: E402

# Every test here uses a trained Keras model (tests/conftest.py: slow tier).
pytestmark = pytest.mark.slow(reason="trains a tiny SASRec and serves it")

N_ITEMS, FIRST_ID, MAX_LEN = 30, 100, 8
ALL_IDS = list(range(FIRST_ID, FIRST_ID + N_ITEMS))


def build_tiny_bundles(folder, versions=("v1", "v2")):
    """Train a one-epoch SASRec on cyclic histories; export it once per version."""
    from recsys_lib.models.sasrec import SASRecRecommender

    data = cyclic_histories(n_items=N_ITEMS, length=10)
    items = pd.DataFrame({"item_id": ALL_IDS, "title": [f"Film {i}" for i in ALL_IDS],
                          "genres": "Drama|Comedy"})
    model = SASRecRecommender(max_len=MAX_LEN, d_model=16, num_blocks=1, epochs=1,
                              progress=False, jit_compile=False, seed=1).fit(data)
    return [export_bundle(model, data, items, folder / version, dataset="synthetic",
                          metrics={"ndcg@10": 0.5}, model_version=version)
            for version in versions]


@pytest.fixture(scope="module")
def bundles(tmp_path_factory):
    return build_tiny_bundles(tmp_path_factory.mktemp("bundles"))


@pytest.fixture(scope="module")
def client(bundles):
    with TestClient(create_app(bundles[0]), raise_server_exceptions=False) as test_client:
        yield test_client


def recommend(client, history, k=10):
    response = client.post("/recommend", json={"history": history, "k": k})
    assert response.status_code == 200, response.text
    return response.json()


# ------------------------------------------------------------------------------- bundles
def test_bundle_manifest_and_round_trip(bundles):
    manifest = read_manifest(bundles[0])
    assert manifest["model_version"] == "v1" and manifest["dataset"] == "synthetic"
    assert (manifest["max_len"], manifest["n_items"]) == (MAX_LEN, N_ITEMS)
    assert set(manifest["files"]) == {"model.keras", "items.csv", "popularity.csv"}
    assert manifest["trained_at"].endswith("+00:00")
    bundle = load_bundle(bundles[0])
    assert bundle.items.loc[FIRST_ID, "title"] == f"Film {FIRST_ID}"
    assert sorted(bundle.popularity.tolist()) == ALL_IDS
    assert (np.diff(bundle.popularity_counts) <= 0).all()  # most popular first


@pytest.mark.parametrize("name", ["items.csv", "model.keras", "popularity.csv"])
def test_a_changed_byte_is_refused_naming_the_file(bundles, tmp_path, name):
    damaged = tmp_path / "damaged"
    damaged.mkdir()
    for file in bundles[0].iterdir():
        (damaged / file.name).write_bytes(file.read_bytes())
    data = bytearray((damaged / name).read_bytes())
    data[len(data) // 2] ^= 1
    (damaged / name).write_bytes(bytes(data))
    with pytest.raises(BundleError, match=rf"{name} is damaged.*serving\.export"):
        load_bundle(damaged)


def test_missing_and_malformed_bundles_are_refused(bundles, tmp_path):
    with pytest.raises(BundleError, match="no bundle folder"):
        load_bundle(tmp_path / "nowhere")
    (tmp_path / "manifest.json").write_text("{not json")
    with pytest.raises(BundleError, match="manifest.json is not valid JSON"):
        load_bundle(tmp_path)
    (tmp_path / "manifest.json").write_text(json.dumps({"model_version": "x"}))
    with pytest.raises(BundleError, match="lacks"):
        load_bundle(tmp_path)
    partial = tmp_path / "partial"
    partial.mkdir()
    (partial / "manifest.json").write_bytes((bundles[0] / "manifest.json").read_bytes())
    with pytest.raises(BundleError, match="model.keras is missing"):
        load_bundle(partial)


# ------------------------------------------------------------------------------- scorers
def test_scorers_agree_and_the_compiled_one_traces_once(bundles):
    bundle = load_bundle(bundles[0])
    compiled, naive = make_scorer(bundle, "compiled"), make_scorer(bundle, "naive")
    for history in ([100], [100, 101, 102], ALL_IDS * 2):
        a, b = compiled.recommend(history, 5), naive.recommend(history, 5)
        assert a[0] == b[0] and np.allclose(a[1], b[1], atol=1e-4)
    assert compiled.traces == 1  # warm-up traced it; no request retraced
    with pytest.raises(ArgumentError, match="k must be"):
        compiled.recommend([100], 0)
    with pytest.raises(ArgumentError, match="scorer must be one of"):
        make_scorer(bundle, "fast")


def test_batching_scorer_answers_concurrent_requests_like_the_compiled_one(bundles):
    bundle = load_bundle(bundles[0])
    compiled = make_scorer(bundle, "compiled")
    batched = make_scorer(bundle, "batched", max_batch=8, max_wait_ms=20.0)
    histories = [[FIRST_ID + i, FIRST_ID + i + 1] for i in range(20)]

    async def many():
        return await asyncio.gather(*(batched.arecommend(h, 3) for h in histories))

    answers = asyncio.run(many())
    for history, answer in zip(histories, answers, strict=True):
        expected = compiled.recommend(history, 3)
        assert answer.items == expected[0]
        assert np.allclose(answer.scores, expected[1], atol=1e-5)
    assert max(batched.batch_sizes) > 1 and sum(batched.batch_sizes) == len(histories)
    assert batched.traces == 1


def test_top_k_excluding_breaks_ties_by_index_and_runs_out():
    cols, values = top_k_excluding(np.array([1.0, 3.0, 3.0, 2.0]), np.array([3]), 10)
    assert cols.tolist() == [1, 2, 0] and values.tolist() == [3.0, 3.0, 1.0]


# ------------------------------------------------------------------------------- endpoints
def test_health(client):
    response = client.get("/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "model_version": "v1", "scorer": "compiled"}


def test_recommend_answers_with_titles_scores_and_version(client):
    body = recommend(client, [100, 101, 102], k=5)
    assert body["model_version"] == "v1" and body["fallback"] is None
    assert body["unknown_items"] == [] and body["history_used"] == 3
    assert len(body["items"]) == 5
    first = body["items"][0]
    assert set(first) == {"item_id", "title", "score"}
    assert first["title"] == f"Film {first['item_id']}"
    scores = [item["score"] for item in body["items"]]
    assert scores == sorted(scores, reverse=True)


def test_history_items_are_never_recommended(client):
    history = ALL_IDS[:25]
    body = recommend(client, history, k=MAX_K)
    assert sorted(item["item_id"] for item in body["items"]) == ALL_IDS[25:]
    assert recommend(client, ALL_IDS, k=5)["items"] == []  # nothing left to recommend


def test_cold_start_gets_flagged_popularity(client, bundles):
    body = recommend(client, [], k=4)
    assert body["fallback"] == "popularity" and body["history_used"] == 0
    expected = load_bundle(bundles[0]).popularity[:4].tolist()
    assert [item["item_id"] for item in body["items"]] == expected
    assert all(item["score"] > 0 for item in body["items"])  # interaction counts


def test_unknown_items_are_skipped_and_listed(client):
    body = recommend(client, [5, 100, -3, 5, 101], k=3)
    assert body["unknown_items"] == [5, -3] and body["fallback"] is None
    assert body["items"] == recommend(client, [100, 101], k=3)["items"]
    only_unknown = recommend(client, [1, 2], k=3)
    assert only_unknown["fallback"] == "popularity" and only_unknown["unknown_items"] == [1, 2]


def test_long_histories_are_truncated_to_the_most_recent_items(client):
    recent = [110, 111, 112, 113, 114, 115, 116, 117]
    long_history = [101, 102, 103, 104] + recent
    body = recommend(client, long_history, k=20)
    assert body["history_used"] == MAX_LEN
    shown = [item["item_id"] for item in body["items"]]
    assert not set(shown) & set(long_history)  # the old items are still excluded
    alone = recommend(client, recent, k=30)
    kept = [item for item in alone["items"] if item["item_id"] not in long_history]
    assert shown == [item["item_id"] for item in kept][:20]  # same scores as the recent part


def test_similar_items(client):
    response = client.get("/items/105/similar", params={"k": 3})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["item_id"] == 105 and body["title"] == "Film 105"
    assert len(body["items"]) == 3 and 105 not in [i["item_id"] for i in body["items"]]
    assert all(-1.0 <= i["score"] <= 1.0 for i in body["items"])


def test_similar_items_of_an_unknown_item_is_404(client):
    response = client.get("/items/99999/similar")
    assert response.status_code == 404
    assert response.json()["detail"].startswith("item_id: item 99999 is not in the catalogue")


# ------------------------------------------------------------------------------- bad requests
BAD_BODIES = [
    ({"history": [1, True]}, 422, "history[1]"),
    ({"history": [1, 2.5]}, 422, "history[1]"),
    ({"history": [1, "2"]}, 422, "history[1]"),
    ({"history": [1, None]}, 422, "history[1]"),
    ({"history": "1,2"}, 422, "history"),
    ({"history": {"a": 1}}, 422, "history"),
    ({"k": 3}, 422, "history"),
    ({"history": [1], "k": 0}, 422, "k"),
    ({"history": [1], "k": -5}, 422, "k"),
    ({"history": [1], "k": MAX_K + 1}, 422, "k"),
    ({"history": [1], "k": True}, 422, "k"),
    ({"history": [1], "k": 2.0}, 422, "k"),
    ({"history": [1], "k": "5"}, 422, "k"),
    ({"history": [1], "histroy": [2]}, 422, "histroy"),
    ([1, 2, 3], 422, "body"),
    ({"history": list(range(MAX_HISTORY + 1))}, 413, "history"),
]


@pytest.mark.parametrize(("body", "status", "field"), BAD_BODIES)
def test_bad_bodies_get_a_4xx_naming_the_field(client, body, status, field):
    response = client.post("/recommend", json=body)
    assert response.status_code == status, response.text
    answer = response.json()
    assert answer["detail"].startswith(f"{field}: "), answer
    assert field in answer["fields"]


@pytest.mark.parametrize("raw", [b"{\"history\": [1, 2", b"not json", b""])
def test_malformed_json_is_400(client, raw):
    response = client.post("/recommend", content=raw,
                           headers={"content-type": "application/json"})
    assert response.status_code in (400, 422), response.text
    assert response.json()["detail"].startswith("body")
    if raw:
        assert response.status_code == 400 and "malformed JSON" in response.json()["detail"]


@pytest.mark.parametrize(("url", "field"), [
    ("/items/abc/similar", "item_id (in the path)"),
    ("/items/1.5/similar", "item_id (in the path)"),
    ("/items/105/similar?k=0", "k (query parameter)"),
    ("/items/105/similar?k=1000", "k (query parameter)"),
    ("/items/105/similar?k=two", "k (query parameter)"),
])
def test_bad_similar_requests_are_422(client, url, field):
    response = client.get(url)
    assert response.status_code == 422, response.text
    assert response.json()["detail"].startswith(f"{field}: ")
    assert response.json()["fields"] == [field.split()[0]]


def test_wrong_method_and_path_are_4xx(client):
    assert client.get("/recommend").status_code == 405
    assert client.post("/nowhere", json={}).status_code == 404


# ------------------------------------------------------------------------------- reload
def test_hot_reload_changes_the_version_and_refuses_a_damaged_bundle(bundles, tmp_path):
    with TestClient(create_app(bundles[0], scorer="batched"),
                    raise_server_exceptions=False) as local:
        before = recommend(local, [100, 101], k=3)
        assert before["model_version"] == "v1"
        response = local.post("/admin/reload", json={"bundle": str(bundles[1])})
        assert response.status_code == 200, response.text
        assert response.json() == {"model_version": "v2", "previous_version": "v1"}
        after = recommend(local, [100, 101], k=3)
        assert after["model_version"] == "v2" and after["items"] == before["items"]
        assert local.get("/health").json()["model_version"] == "v2"

        damaged = tmp_path / "damaged"
        damaged.mkdir()
        for file in bundles[0].iterdir():
            (damaged / file.name).write_bytes(file.read_bytes())
        (damaged / "items.csv").write_text("item_id,title,genres\n1,Changed,Drama\n")
        refused = local.post("/admin/reload", json={"bundle": str(damaged)})
        assert refused.status_code == 409
        assert "items.csv is damaged" in refused.json()["detail"]
        assert "still serving v2" in refused.json()["detail"]
        assert recommend(local, [100], k=2)["model_version"] == "v2"
        missing = local.post("/admin/reload", json={"bundle": str(tmp_path / "none")})
        assert missing.status_code == 409 and "no bundle folder" in missing.json()["detail"]
        assert local.post("/admin/reload", json={"bundle": 3}).status_code == 422


def test_create_app_rejects_bad_arguments(bundles, tmp_path):
    with pytest.raises(ArgumentError, match="scorer must be one of"):
        create_app(bundles[0], scorer="quick")
    with pytest.raises(ArgumentError, match="max_k"):
        create_app(bundles[0], max_k=0)
    with pytest.raises(BundleError, match="no bundle folder"):
        create_app(tmp_path / "none")


def test_in_flight_requests_finish_during_a_reload(bundles):
    import httpx

    app = create_app(bundles[0], scorer="batched")

    async def traffic():
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as local:
            calls = [local.post("/recommend", json={"history": [100 + i % 20], "k": 3})
                     for i in range(30)]
            calls.insert(10, local.post("/admin/reload", json={"bundle": str(bundles[1])}))
            answers = await asyncio.gather(*calls)
            last = await local.post("/recommend", json={"history": [100], "k": 3})
            return answers, last

    answers, last = asyncio.run(traffic())
    assert [a.status_code for a in answers] == [200] * 31
    versions = {a.json()["model_version"] for a in answers}
    assert versions <= {"v1", "v2"} and last.json()["model_version"] == "v2"


# ------------------------------------------------------------------------------- load tools
def test_latency_summary_uses_numpy_percentiles():
    values = np.arange(1.0, 101.0)
    summary = latency_summary(values)
    assert summary == {"p50": 50.5, "p90": 90.1, "p99": 99.01, "mean": 50.5, "n": 100}
    assert latency_summary([])["n"] == 0
    with pytest.raises(ArgumentError, match="one-dimensional"):
        latency_summary(np.ones((2, 2)))


def test_run_load_checks_its_bounds():
    with pytest.raises(ArgumentError, match="payloads"):
        run_load("http://127.0.0.1:9/recommend", [])
    with pytest.raises(ArgumentError, match="concurrency"):
        run_load("http://127.0.0.1:9/recommend", [{}], concurrency=0)
    with pytest.raises(ArgumentError, match="time_limit"):
        run_load("http://127.0.0.1:9/recommend", [{}], time_limit=0)


# ------------------------------------------------------------------------------- export
def test_export_uses_the_benchmarks_sasrec_configuration():
    from recsys_lib.benchmark import MODELS
    from recsys_lib.serving.export import sasrec_params

    quick = sasrec_params(quick=True, epochs=3)
    assert quick == MODELS["sasrec"][2][0] | {"epochs": 3, "progress": False}
    assert sasrec_params(quick=False)["d_model"] == 64
    with pytest.raises(ArgumentError, match="epochs"):
        sasrec_params(quick=True, epochs=0)


def test_train_and_export_writes_a_loadable_bundle_with_test_metrics(bundles, tmp_path,
                                                                       monkeypatch):
    from recsys_lib.serving import export

    tiny = {"max_len": MAX_LEN, "d_model": 16, "num_blocks": 1, "epochs": 1,
            "jit_compile": False, "progress": False}
    monkeypatch.setattr(export, "sasrec_params", lambda quick, epochs: dict(tiny))
    train_and_export = export.train_and_export
    ratings = cyclic_histories(n_items=N_ITEMS, length=10)
    items = pd.DataFrame({"item_id": ALL_IDS, "title": "t", "genres": "g"})
    out = train_and_export("synthetic", tmp_path / "trained", quick=True, epochs=1,
                           data=(ratings, items))
    manifest = read_manifest(out)
    assert {"hit_rate@10", "ndcg@10", "mrr@10", "recall@10"} <= set(manifest["metrics"])
    assert manifest["metrics"]["users"] == 80 and manifest["metrics"]["quick"] is True
    assert manifest["metrics"]["training"]["params"] == tiny
    assert manifest["model_version"].startswith("sasrec-synthetic-")
    assert load_bundle(out).recommender.max_len == MAX_LEN
    given = train_and_export("synthetic", tmp_path / "given", data=(ratings, items),
                             model_path=str(bundles[0] / "model.keras"))
    assert read_manifest(given)["metrics"]["training"]["model_file"].endswith("model.keras")
