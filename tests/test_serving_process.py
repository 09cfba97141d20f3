"""The service as a real uvicorn process on 127.0.0.1 (notebook 12): start, call, burst, stop.

Traffic goes to 127.0.0.1 only, every loop is bounded in count and time, and the process is
always stopped (the test checks that it is gone).
"""

import asyncio

import pytest

from recsys_lib.config import import_tensorflow_quietly

pytest.importorskip("tensorflow")
import_tensorflow_quietly()
pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")
httpx = pytest.importorskip("httpx")

from test_serving import build_tiny_bundles  # noqa: E402

from recsys_lib.serving.app import MAX_HISTORY  # noqa: E402
from recsys_lib.serving.loadtest import run_load  # noqa: E402
from recsys_lib.serving.process import start_server  # noqa: E402

# Trains a tiny SASRec and starts server processes (tests/conftest.py: slow tier).
pytestmark = pytest.mark.slow(reason="starts a server process")

BURST, CONCURRENT, BURST_SECONDS = 40, 8, 30.0
#: (body, expected status) of the burst: valid and invalid requests mixed.
BURST_BODIES = [
    ({"history": [100, 101, 102], "k": 5}, 200),
    ({"history": [], "k": 3}, 200),
    ({"history": [100, 7], "k": 2}, 200),
    ({"history": [100, True]}, 422),
    ({"history": [100], "k": 0}, 422),
]


async def burst(url: str) -> list:
    """BURST requests, CONCURRENT at a time, within BURST_SECONDS; (index, status, json)."""
    gate = asyncio.Semaphore(CONCURRENT)

    async def one(client, i):
        async with gate:
            body, _ = BURST_BODIES[i % len(BURST_BODIES)]
            response = await client.post(f"{url}/recommend", json=body)
            return i, response.status_code, response.json()

    async with httpx.AsyncClient(timeout=BURST_SECONDS) as client:
        jobs = [one(client, i) for i in range(BURST)]
        return await asyncio.wait_for(asyncio.gather(*jobs), BURST_SECONDS)


def check_burst_answer(i: int, status: int, body: dict) -> None:
    expected_body, expected_status = BURST_BODIES[i % len(BURST_BODIES)]
    assert status == expected_status, (i, body)
    if status != 200:
        assert body["detail"].split(":")[0] in ("history[1]", "k"), body
        return
    assert body["model_version"] == "v1"
    assert len(body["items"]) == expected_body["k"]
    assert not {item["item_id"] for item in body["items"]} & set(expected_body["history"])
    assert body["fallback"] == ("popularity" if not expected_body["history"] else None)


def test_real_server_answers_valid_invalid_and_concurrent_requests(tmp_path):
    v1, v2 = build_tiny_bundles(tmp_path)
    server = start_server(v1, timeout=120)
    try:
        assert server.model_version == "v1" and server.running()
        url = server.url
        assert url.startswith("http://127.0.0.1:")
        ok = httpx.post(f"{url}/recommend", json={"history": [100, 101], "k": 3}, timeout=10)
        assert ok.status_code == 200 and len(ok.json()["items"]) == 3
        bad = [httpx.post(f"{url}/recommend", content=b"{oops", timeout=10,
                          headers={"content-type": "application/json"}),
               httpx.post(f"{url}/recommend", json={"history": ["a"]}, timeout=10),
               httpx.post(f"{url}/recommend", json={"history": [1] * (MAX_HISTORY + 1)},
                          timeout=10),
               httpx.get(f"{url}/items/99999/similar", timeout=10)]
        assert [r.status_code for r in bad] == [400, 422, 413, 404]
        assert all(r.json()["detail"] for r in bad)

        for i, status, body in asyncio.run(burst(url)):
            check_burst_answer(i, status, body)
        load = run_load(f"{url}/recommend", [{"history": [100, 101], "k": 10}],
                        concurrency=4, n_requests=20, time_limit=30.0)
        assert (load.n, load.errors, load.statuses) == (20, 0, {200: 20})

        reload = httpx.post(f"{url}/admin/reload", json={"bundle": str(v2)}, timeout=60)
        assert reload.json() == {"model_version": "v2", "previous_version": "v1"}
        after = httpx.post(f"{url}/recommend", json={"history": [100]}, timeout=10)
        assert after.json()["model_version"] == "v2"
        assert server.health()["status"] == "ok"
    finally:
        server.stop()
    assert not server.running() and server.process.returncode is not None
    with pytest.raises(httpx.TransportError):
        httpx.get(f"{server.url}/health", timeout=2)


def test_a_server_that_cannot_start_reports_its_error(tmp_path):
    damaged = tmp_path / "damaged"
    damaged.mkdir()
    (damaged / "manifest.json").write_text("{broken")
    with pytest.raises(RuntimeError, match=r"exited with code 2(.|\n)*not valid JSON"):
        start_server(damaged, timeout=60)
