"""python -m recsys_lib.distributed (notebook 13): real worker processes, bounded in time,
always stopped.

Every run is quick mode on the bundled data (SASRec d_model 32, 1 block, each user's newest
window, 3 epochs, global batch 64). The three strategies train the same windows in the same
order from the same initial weights, so their losses and validation scores must agree up to
floating-point rounding (tolerances below, measured). Each test checks that no worker
process is left behind.
"""

import json
import math
import os
import re
import socket
import subprocess
import sys
import time

import pytest

from recsys_lib import distributed as dist
from recsys_lib.checks import ArgumentError

pytest.importorskip("tensorflow")  # the workers train with it (the launcher imports none)
psutil = pytest.importorskip("psutil")

#: Seconds any one run of these tests may take (a quick run takes 20-40 s on 2 busy cores).
RUN_TIMEOUT = 240.0
QUICK = {"dataset": "bundled", "quick": True, "workers": 2, "timeout": RUN_TIMEOUT}

# Why single and distributed runs are not bit-identical, and how far apart they are.
# With 2 replicas, each replica sums the gradient over its 32 windows and the all-reduce adds
# the two partial sums; one process sums all 64 windows at once. Float addition is not
# associative, so the gradients differ in their last bits (about 1e-7 relative). With plain
# SGD the losses then agree to ~1e-7; Adam divides each gradient by its running RMS, so a
# gradient that is ~0 up to rounding (its sign decided by the summation order) becomes a step
# of the full learning rate either way, which moves the runs a little further apart.
# Measured (TF 2.21, Keras 3.15, 2 CPU cores): final loss 6.45329 (single) vs 6.45488
# (multiworker and mirrored): 2.5e-4 relative (1.2e-4 after epoch 1); val NDCG@10 0.01933 vs
# 0.01894 (4e-4); HR@10 0.04173 vs 0.04024 (one user of 671). The tolerances leave about
# 8x (loss) and 12x (NDCG) margin; one user more or less hitting moves HR by 0.0015.
LOSS_RTOL = 2e-3
NDCG_ATOL = 0.005
HIT_RATE_ATOL = 0.01
# multiworker and mirrored both add the same two per-replica sums (a + b == b + a exactly),
# so they came out bit-identical; allow for thread-count effects inside TensorFlow's kernels.
SAME_REPLICAS_RTOL = 1e-5


def live_children() -> list:
    """This test process's descendants that are still running (not reaped zombies)."""
    alive = []
    for child in psutil.Process().children(recursive=True):
        try:
            if child.status() != psutil.STATUS_ZOMBIE:
                alive.append(child)
        except psutil.NoSuchProcess:
            pass
    return alive


def assert_no_worker_left(pids=()) -> None:
    workers = [c for c in live_children() if "recsys_lib.distributed" in " ".join(c.cmdline())]
    assert not workers, f"worker processes left running: {workers}"
    for pid in pids:
        if psutil.pid_exists(pid):
            assert psutil.Process(pid).status() == psutil.STATUS_ZOMBIE, pid


@pytest.fixture(scope="module")
def multiworker_run(tmp_path_factory):
    """Two worker processes through the command line: ``main([...])``."""
    out = tmp_path_factory.mktemp("multiworker")
    code = dist.main(["--workers", "2", "--dataset", "bundled", "--quick", "--out", str(out),
                      "--timeout", str(RUN_TIMEOUT)])
    assert code == 0, (out / "worker-0.log").read_text() if (out / "worker-0.log").exists() else ""
    return out, json.loads((out / "result.json").read_text())


@pytest.fixture(scope="module")
def single_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("single")
    return out, dist.launch(out=out, strategy="single", **QUICK)


@pytest.fixture(scope="module")
def mirrored_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("mirrored")
    return out, dist.launch(out=out, strategy="mirrored", **QUICK)


def test_multiworker_run_writes_logs_and_result_and_leaves_no_process(multiworker_run):
    out, result = multiworker_run
    assert_no_worker_left()
    logs = sorted(p.name for p in out.glob("worker-*.log"))
    assert logs == ["worker-0.log", "worker-1.log"]
    assert result["strategy"] == "multiworker" and result["workers"] == 2
    assert result["replicas_in_sync"] == 2 and result["processes"] == 2
    assert result["global_batch"] == 64 and result["per_replica_batch"] == 32
    assert result["quick"] is True and result["dataset"] == "bundled"
    assert len(result["cluster"]) == 2 and all(a.startswith("127.0.0.1:") for a in
                                               result["cluster"])
    assert len(result["loss"]) == result["epochs"] == 3
    assert all(math.isfinite(loss) for loss in result["loss"])
    assert result["loss"][-1] < result["loss"][0]  # it learns
    ndcg = result["val_ndcg@10"]
    assert math.isfinite(ndcg) and 0.0 <= ndcg <= 1.0
    assert 0.0 <= result["val_hit_rate@10"] <= 1.0 and result["val_users"] > 600
    assert result["train_seconds"] > 0 and result["launch_seconds"] >= result["wall_seconds"]
    # no worker idles long after the chief is done (process start and exit take a few
    # seconds; tf.data's autotuning thread once held a worker up to a minute after fit)
    assert result["launch_seconds"] - result["wall_seconds"] < 20
    # one plain line per epoch in each log, no progress bars, and no C++ start-up noise
    for i in (0, 1):
        text = (out / f"worker-{i}.log").read_text()
        assert len(re.findall(rf"^worker {i} epoch \d/3  loss \d", text, re.M)) == 3, text
        assert "\r" not in text and "cudart_stub" not in text
    # the replicas stayed identical: worker 1 scores its copy of the model like the chief
    worker1 = (out / "worker-1.log").read_text()
    assert f"worker 1 val ndcg@10 {ndcg:.4f}" in worker1
    assert "wrote" not in worker1  # only the chief writes result.json


def test_single_and_mirrored_match_multiworker_within_rounding(multiworker_run, single_run,
                                                               mirrored_run):
    multi, single, mirrored = multiworker_run[1], single_run[1], mirrored_run[1]
    assert_no_worker_left()
    assert single["replicas_in_sync"] == 1 and single["per_replica_batch"] == 64
    assert mirrored["replicas_in_sync"] == 2 and mirrored["processes"] == 1
    assert len(mirrored["devices"]) == 2
    for name in ("global_batch", "epochs", "seed", "learning_rate", "windows"):
        assert single[name] == multi[name] == mirrored[name], name
    for other in (single, mirrored):
        assert other["loss"][-1] == pytest.approx(multi["loss"][-1], rel=LOSS_RTOL)
        assert other["val_ndcg@10"] == pytest.approx(multi["val_ndcg@10"], abs=NDCG_ATOL)
        assert other["val_hit_rate@10"] == pytest.approx(multi["val_hit_rate@10"],
                                                         abs=HIT_RATE_ATOL)
    assert mirrored["loss"] == pytest.approx(multi["loss"], rel=SAME_REPLICAS_RTOL)


def test_a_failing_worker_stops_the_others_and_is_named(tmp_path):
    config = dist.DistributedConfig(out=tmp_path, **QUICK)
    commands = dist.worker_commands(config)
    argv, env = commands[1]
    argv = list(argv)
    argv[argv.index("--dataset") + 1] = "no-such-dataset"  # straight to worker 1
    commands[1] = (argv, env)
    logs = [tmp_path / "worker-0.log", tmp_path / "worker-1.log"]
    started = []
    with pytest.raises(dist.WorkerError) as caught:
        dist.supervise(commands, logs, timeout=60, started=started)
    err = caught.value
    assert err.worker == 1 and err.returncode == 1
    message = str(err)
    assert "worker 1 of 2" in message and "no-such-dataset" in message
    assert str(logs[1]) in message and "run again" in message
    # worker 0 was waiting for worker 1 in the cluster: it was stopped, not left behind
    assert len(started) == 2 and all(p.returncode is not None for p in started)
    assert_no_worker_left(err.pids)


def test_a_worker_error_through_launch_and_the_command_line(tmp_path, capsys):
    # passes the launcher's checks; the workers find only 671 windows for a batch of 100000
    code = dist.main(["--workers", "2", "--quick", "--out", str(tmp_path), "--global-batch",
                      "100000", "--timeout", str(RUN_TIMEOUT)])
    assert code == 1
    message = capsys.readouterr().err
    assert re.search(r"worker \d of 2", message) and "training windows" in message
    assert not (tmp_path / "result.json").exists()
    assert_no_worker_left()


def test_a_port_in_use_fails_with_advice(tmp_path):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as busy:
        busy.bind((dist.HOST, 0))
        busy.listen()
        taken = busy.getsockname()[1]
        config = dist.DistributedConfig(out=tmp_path, **QUICK)
        commands = dist.worker_commands(config, ports=[taken, dist.free_ports(1)[0]])
        logs = [tmp_path / "worker-0.log", tmp_path / "worker-1.log"]
        with pytest.raises(dist.WorkerError) as caught:
            dist.supervise(commands, logs, timeout=60)
    assert caught.value.worker == 0
    assert "could not be used" in str(caught.value) and "run again" in str(caught.value)
    assert_no_worker_left(caught.value.pids)


def test_the_time_limit_stops_every_worker(tmp_path):
    with pytest.raises(dist.WorkerTimeoutError) as caught:
        dist.launch(out=tmp_path, **(QUICK | {"timeout": 3.0}))
    message = str(caught.value)
    assert "still running after 3 s" in message and "all were stopped" in message
    assert isinstance(caught.value, TimeoutError) and len(caught.value.pids) == 2
    assert_no_worker_left(caught.value.pids)


def test_workers_stop_themselves_when_their_launcher_is_killed(tmp_path):
    # SIGKILL leaves the launcher no chance to stop its workers: their watchdog does it
    launcher = subprocess.Popen(
        [sys.executable, "-m", "recsys_lib.distributed", "--workers", "2", "--quick",
         "--out", str(tmp_path), "--timeout", str(RUN_TIMEOUT)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    pids, deadline = {}, time.monotonic() + 60
    try:
        while len(pids) < 2 and time.monotonic() < deadline:
            for i in (0, 1):
                log = tmp_path / f"worker-{i}.log"
                found = re.search(r"^worker \d: pid (\d+)", log.read_text(), re.M) \
                    if log.exists() else None
                if found:
                    pids[i] = int(found.group(1))
            time.sleep(0.2)
    finally:
        launcher.kill()
        launcher.wait()
    assert len(pids) == 2, "the workers did not start within 60 s"
    workers = [psutil.Process(pid) for pid in pids.values() if psutil.pid_exists(pid)]
    gone, alive = psutil.wait_procs(workers, timeout=15)
    for process in alive:  # clean up before failing
        process.kill()
    assert not alive, f"workers still running after their launcher died: {alive}"
    for i in (0, 1):
        assert "stopping itself: its launcher is gone" in (tmp_path / f"worker-{i}.log").read_text()


def test_bad_arguments_fail_fast_without_starting_a_process(tmp_path, capsys, monkeypatch):
    def no_process(*args, **kwargs):
        raise AssertionError("a process was started")

    monkeypatch.setattr(subprocess, "Popen", no_process)
    assert dist.main(["--workers", "0", "--out", str(tmp_path / "a")]) == 2
    assert "workers must be an integer >= 1 and <= 64, got 0" in capsys.readouterr().err
    with pytest.raises(SystemExit) as caught:
        dist.main(["--strategy", "ring", "--out", str(tmp_path / "b")])
    assert caught.value.code == 2 and "invalid choice: 'ring'" in capsys.readouterr().err
    assert dist.main(["--dataset", "ml-0", "--out", str(tmp_path / "c")]) == 2
    assert "dataset must be one of" in capsys.readouterr().err
    assert not list(tmp_path.rglob("worker-*.log"))
    bad = [({"strategy": "ring"}, "strategy must be one of"),
           ({"workers": 0}, "workers must be an integer >= 1"),
           ({"dataset": "ml-0"}, "dataset must be one of"),
           ({"global_batch": 63}, "must be a multiple of the 2 replicas"),
           ({"d_model": 33}, "multiple of num_heads"),
           ({"dropout": 1.0}, "dropout must be"),
           ({"timeout": 0}, "timeout must be"),
           ({"batch": 64}, "unknown setting")]
    for settings, words in bad:
        with pytest.raises(ArgumentError, match=words):
            dist.launch(out=tmp_path / "d", **(QUICK | settings))
    a_file = tmp_path / "file"
    a_file.write_text("x")
    with pytest.raises(ArgumentError, match="cannot be created or written"):
        dist.launch(out=a_file / "out", **QUICK)


def test_helpers_build_the_cluster_and_the_worker_commands(tmp_path):
    ports = dist.free_ports(3)
    assert len(set(ports)) == 3 and all(0 < p < 65536 for p in ports)
    spec = dist.tf_config(ports[:2], 1)
    assert spec == {"cluster": {"worker": [f"127.0.0.1:{ports[0]}", f"127.0.0.1:{ports[1]}"]},
                    "task": {"type": "worker", "index": 1}}
    remote = dist.tf_config([2222, 2222], 0, hosts=["node-a", "node-b"])
    assert remote["cluster"]["worker"] == ["node-a:2222", "node-b:2222"]
    with pytest.raises(ArgumentError):
        dist.tf_config(ports[:2], 2)
    assert dist.scaled_learning_rate(1e-3, 128, 512) == pytest.approx(4e-3)
    config = dist.DistributedConfig(out=tmp_path, **QUICK)
    commands = dist.worker_commands(config, ports=ports[:2])
    assert len(commands) == 2
    for i, (argv, env) in enumerate(commands):
        assert argv[1:3] == ["-m", "recsys_lib.distributed"] and "--role" in argv
        assert json.loads(env["TF_CONFIG"]) == dist.tf_config(ports[:2], i)
        assert env["TF_CPP_MIN_LOG_LEVEL"] == "2"
        assert env[dist.LAUNCHER_ENV_VAR] == str(os.getpid())
    single = dist.worker_commands(dist.DistributedConfig(out=tmp_path, strategy="single",
                                                         **QUICK))
    assert len(single) == 1 and "TF_CONFIG" not in single[0][1]
    resolved = config.resolved()
    assert (resolved.d_model, resolved.num_blocks, resolved.max_len) == (32, 1, 50)
    assert resolved.dropout == 0.0 and resolved.replicas == 2
    full = dist.DistributedConfig(out=tmp_path).resolved()
    assert full.learning_rate == pytest.approx(dist.BASE_LEARNING_RATE)
    assert full.d_model == 64 and full.num_blocks == 2 and full.windows_per_user == 0
