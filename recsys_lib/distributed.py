"""Data-parallel training of SASRec with TensorFlow's own distribution engine (notebook 13).

    python -m recsys_lib.distributed --workers 2 --dataset bundled --quick --out results/dist
    python -m recsys_lib.distributed --strategy mirrored --workers 2 --quick --out results/mir
    python -m recsys_lib.distributed --strategy single --quick --out results/single

The same SASRec network as notebook 10 (:class:`recsys_lib.models.sasrec.SASRec`, full
softmax over the catalogue) is trained with ``keras.Model.fit`` under a
``tf.distribute`` strategy, then scored on the validation users with the course protocol
(NDCG@10 and HR@10 over the full catalogue, seen items excluded).

**Data parallelism and all-reduce.** Every *replica* (a worker process, or a device inside
one process) holds a full copy of the model. At each step the *global batch* of ``B``
training windows is cut into one slice per replica; each replica computes the loss and the
gradients of its slice, then an **all-reduce** sums the gradients of all replicas and hands
every replica the same sum. Every replica applies the same optimizer update to the same
weights, so the copies never drift apart. A *ring* all-reduce (``CommunicationImplementation
.RING``) passes chunks of the gradient around a ring of the N replicas: a reduce-scatter, then
an all-gather, in which each replica sends about ``2 (N - 1) / N`` times the gradient's size
whatever N is, so adding replicas does not add traffic per replica.

**Global vs per-replica batch.** ``--global-batch B`` is the batch one optimizer step sees;
each of the N replicas gets ``B / N`` windows (the *per-replica batch*), so ``B`` must be a
multiple of N. Keras divides each replica's mean loss by N, so the summed gradients are the
gradient of the mean loss over the whole global batch: with the same global batch, the same
learning rate and the same windows in the same order, a distributed run takes the same steps
as one process (``--strategy single``), up to the order of floating-point additions: the
all-reduce adds the replicas' partial sums, one process adds all the windows in one sum, and
float addition is not associative, so the gradients differ in their last bits. Adam then
turns a gradient that is zero up to rounding into a full step of either sign, so the runs
drift a little further apart than rounding alone (the measured gaps, a few 1e-4 of the loss
after 3 epochs, are in ``tests/test_distributed.py``). Two replicas in one process
(``mirrored``) or in two (``multiworker``) add the same two partial sums, so they agree to
the last bit. Growing the global batch to use more replicas changes the optimisation: the
*linear scaling rule* (:func:`scaled_learning_rate`) multiplies the learning rate by the same
factor. Every epoch visits the windows in an order drawn by NumPy from ``(seed, epoch)``, the
same on every process; ``AutoShardPolicy.DATA`` makes each worker read its own part of each
global batch, and ``drop_remainder=True`` keeps every step at the full global batch (the last
partial batch of an epoch is skipped).

**TF_CONFIG.** ``MultiWorkerMirroredStrategy`` learns the cluster from the ``TF_CONFIG``
environment variable of each process: the list of all workers and which one it is::

    {"cluster": {"worker": ["127.0.0.1:20001", "127.0.0.1:20002"]},
     "task": {"type": "worker", "index": 0}}

Worker 0 is the *chief*: it writes ``result.json`` (every worker takes part in every step and
in every collective operation). The launcher (:func:`launch`) picks free ports on 127.0.0.1,
starts one process per worker with its own ``TF_CONFIG`` and its log in ``worker-{i}.log``,
waits for all of them with a time limit and stops every worker when one fails. On several
machines nothing else changes: put the machines' host names in the cluster list
(``tf_config(ports, i, hosts=["node-a", "node-b"])``, or write the JSON by hand) and run the
same worker command on each machine with its own ``task.index``; the ports must be open
between the machines. Nothing here secures that traffic: use a private network.

**GPUs and TPUs.** This module pins every worker to the CPU, so that the runs can be compared
and several workers can share one machine. On one machine with GPUs,
``tf.distribute.MirroredStrategy()`` makes one replica per visible GPU in a single process and
all-reduces with NCCL; across GPU machines, ``MultiWorkerMirroredStrategy`` with
``CommunicationImplementation.NCCL``. On a Colab TPU, ``TPUStrategy`` (after
``TPUClusterResolver`` and ``tf.tpu.experimental.initialize_tpu_system``) runs one replica
per TPU core; there the static shapes that ``drop_remainder=True`` gives are required, and the
global batch is usually a multiple of 8 x the number of cores. The model code (build and
compile inside ``strategy.scope()``, then ``model.fit`` on a ``tf.data.Dataset`` batched with
the *global* batch size) is the same everywhere. ``--strategy mirrored`` here imitates the GPU
case on a CPU: one process, ``--workers`` logical CPU devices.

**Rough edges handled here.** Keras 3's ``fit`` needs two small fixes to run under
``MultiWorkerMirroredStrategy`` with several workers (:func:`replica_safe_sasrec`); tf.data's
autotuning thread can hold a worker for up to a minute after ``fit`` (it is switched off in
:func:`epoch_dataset`); and a worker that waits for its cluster ignores SIGTERM (TensorFlow
takes it as a notice of preemption), so the launcher kills what does not stop at once, and
every worker also stops itself when its launcher is gone (:func:`start_watchdog`).

Explained in notebook 13.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np

from recsys_lib.checks import ArgumentError, check_choice, check_float, check_int
from recsys_lib.config import DEFAULT_SEED
from recsys_lib.data import DATASET_NAMES

HOST = "127.0.0.1"
#: ``--strategy`` values: several worker processes, one process with several devices, or
#: one process without a strategy (the reference).
STRATEGIES = ("multiworker", "mirrored", "single")
#: The learning rate that suits :data:`BASE_BATCH` (notebook 10's SASRec settings).
BASE_LEARNING_RATE = 1e-3
BASE_BATCH = 128
#: Settings of ``--quick`` (a test-sized run) and of a full run; explicit values win.
#: ``windows_per_user`` 0 keeps every training window; quick keeps each user's newest one,
#: and takes larger steps (learning rate 5e-3) so that 3 short epochs learn something.
#: A ``learning_rate`` of None scales :data:`BASE_LEARNING_RATE` to the global batch.
QUICK_SETTINGS = {"epochs": 3, "global_batch": 64, "d_model": 32, "num_blocks": 1,
                  "max_len": 50, "dropout": 0.0, "windows_per_user": 1,
                  "learning_rate": 5e-3, "timeout": 600.0}
FULL_SETTINGS = {"epochs": 15, "global_batch": 128, "d_model": 64, "num_blocks": 2,
                 "max_len": 50, "dropout": 0.2, "windows_per_user": 0,
                 "learning_rate": None, "timeout": 7200.0}
#: The most workers (processes or devices) one launcher starts on one machine.
MAX_WORKERS = 64
#: Validation cut-off (the course's NDCG@10 / HR@10).
K = 10
RESULT_FILE = "result.json"
#: Characters of a failed worker's log shown in the error.
TAIL_CHARS = 3000
#: Seconds a worker gets to stop after SIGTERM before it is killed. A worker of a
#: ``MultiWorkerMirroredStrategy`` ignores SIGTERM (TensorFlow takes it as a notice of
#: preemption), so it is always killed after these seconds.
STOP_GRACE = 2.0
#: A worker stops itself this many seconds after the launcher's time limit (a backstop for
#: a launcher that was killed before it could stop its workers).
WATCHDOG_MARGIN = 30.0
#: The environment variable that tells a worker its launcher's process id: a worker whose
#: launcher has gone stops itself.
LAUNCHER_ENV_VAR = "RECSYS_DISTRIBUTED_LAUNCHER"
#: Words in a worker's log that mean its port could not be used.
PORT_FAILURE_HINTS = ("address already in use", "failed to start grpc server",
                      "could not start grpc server")


@dataclass(frozen=True)
class DistributedConfig:
    """Every setting of a distributed (or reference) SASRec run, in one place.

    Args:
        out: folder for ``result.json`` and the ``worker-{i}.log`` files.
        workers: worker processes (``multiworker``) or logical CPU devices (``mirrored``),
            1 to :data:`MAX_WORKERS`; ``single`` always uses 1.
        dataset: a name of :data:`recsys_lib.data.DATASET_NAMES`.
        quick: test-sized settings (:data:`QUICK_SETTINGS`) instead of :data:`FULL_SETTINGS`.
        strategy: ``"multiworker"``, ``"mirrored"`` or ``"single"``.
        data_dir: where downloaded datasets are cached (ignored for ``"bundled"``).
        epochs, global_batch, d_model, num_blocks, max_len, dropout: None takes the quick or
            full setting.
        windows_per_user: train on each user's newest this many windows of ``max_len``
            items (0: all windows; quick: 1, a third of the work on the bundled data).
        learning_rate: Adam's step; None takes the quick setting (5e-3) or, in a full run,
            scales :data:`BASE_LEARNING_RATE` to the global batch with
            :func:`scaled_learning_rate`.
        num_heads: attention heads (``d_model`` must be a multiple of it).
        seed: seeds Keras, TensorFlow, NumPy and each epoch's window order.
        timeout: seconds the launcher waits for all workers before stopping them (None:
            600 with ``quick``, else 7200).

    Explained in notebook 13.
    """

    out: str | Path = "results/distributed"
    workers: int = 2
    dataset: str = "bundled"
    quick: bool = False
    strategy: str = "multiworker"
    data_dir: str | Path | None = None
    epochs: int | None = None
    global_batch: int | None = None
    learning_rate: float | None = None
    d_model: int | None = None
    num_blocks: int | None = None
    num_heads: int = 2
    max_len: int | None = None
    dropout: float | None = None
    windows_per_user: int | None = None
    seed: int = DEFAULT_SEED
    timeout: float | None = None

    def resolved(self) -> DistributedConfig:
        """A copy with every None filled in (quick or full settings) and every value checked.

        Returns:
            The complete configuration (``workers`` is 1 for ``strategy="single"``).

        Raises:
            ArgumentError: a count that is not a positive integer, an unknown strategy or
                dataset, a global batch that is not a multiple of the replicas, a
                ``d_model`` that the heads do not divide, a bad rate, seed or timeout.

        Explained in notebook 13.
        """
        check_choice("strategy", self.strategy, STRATEGIES)
        check_choice("dataset", self.dataset, DATASET_NAMES)
        workers = check_int("workers", self.workers, maximum=MAX_WORKERS)
        workers = 1 if self.strategy == "single" else workers
        preset = QUICK_SETTINGS if self.quick else FULL_SETTINGS
        values = {name: preset[name] if getattr(self, name) is None else getattr(self, name)
                  for name in preset}
        for name in ("epochs", "global_batch", "d_model", "num_blocks", "max_len"):
            values[name] = check_int(name, values[name])
        values["windows_per_user"] = check_int("windows_per_user", values["windows_per_user"],
                                               minimum=0)
        values["dropout"] = check_float("dropout", values["dropout"], strict=False,
                                        maximum=1.0)
        num_heads = check_int("num_heads", self.num_heads)
        if values["d_model"] % num_heads:
            raise ArgumentError(f"d_model ({values['d_model']}) must be a multiple of "
                                f"num_heads ({num_heads})")
        if values["global_batch"] % workers:
            raise ArgumentError(
                f"global_batch ({values['global_batch']}) must be a multiple of the "
                f"{workers} replicas, so that every replica gets the same per-replica batch; "
                f"e.g. {workers * max(1, values['global_batch'] // workers)}")
        if values["learning_rate"] is None:
            values["learning_rate"] = scaled_learning_rate(BASE_LEARNING_RATE, BASE_BATCH,
                                                           values["global_batch"])
        values["learning_rate"] = check_float("learning_rate", values["learning_rate"])
        values["timeout"] = check_float("timeout", values["timeout"])
        return dataclasses.replace(
            self, **values, workers=workers, quick=bool(self.quick), num_heads=num_heads,
            seed=check_int("seed", self.seed, minimum=0), out=Path(self.out),
            data_dir=None if self.data_dir is None else Path(self.data_dir))

    @property
    def replicas(self) -> int:
        """Model copies that train together (1 for ``single``)."""
        return 1 if self.strategy == "single" else self.workers

    @property
    def processes(self) -> int:
        """Worker processes the launcher starts (``workers`` for ``multiworker``, else 1)."""
        return self.workers if self.strategy == "multiworker" else 1

    def worker_args(self) -> list[str]:
        """The command-line arguments of the worker role for this (resolved) configuration.

        Explained in notebook 13.
        """
        args = ["--role", "worker", "--strategy", self.strategy, "--workers", str(self.workers),
                "--dataset", self.dataset, "--out", str(self.out), "--epochs", str(self.epochs),
                "--global-batch", str(self.global_batch),
                "--learning-rate", repr(self.learning_rate), "--d-model", str(self.d_model),
                "--num-blocks", str(self.num_blocks), "--num-heads", str(self.num_heads),
                "--max-len", str(self.max_len), "--dropout", repr(self.dropout),
                "--windows-per-user", str(self.windows_per_user),
                "--seed", str(self.seed), "--timeout", repr(self.timeout)]
        if self.quick:
            args.append("--quick")
        if self.data_dir is not None:
            args += ["--data-dir", str(self.data_dir)]
        return args


class WorkerError(RuntimeError):
    """A worker process failed (or, as :class:`WorkerTimeoutError`, ran out of time).

    Attributes:
        worker: the index of the worker that failed first.
        returncode: its exit code (None when it was still running).
        log: the path of its log file.
        tail: the end of that log.
        pids: the process ids of all workers (all stopped when this is raised).

    Explained in notebook 13.
    """

    def __init__(self, message: str, worker: int, returncode: int | None, log: Path,
                 tail: str, pids: list[int]) -> None:
        super().__init__(message)
        self.worker, self.returncode, self.log = worker, returncode, log
        self.tail, self.pids = tail, pids


class WorkerTimeoutError(WorkerError, TimeoutError):
    """The workers did not all finish within the time limit; all were stopped.

    Explained in notebook 13.
    """


# ----------------------------------------------------------------------------- helpers
def scaled_learning_rate(base_lr: float, base_batch: int, global_batch: int) -> float:
    """The linear scaling rule: grow the learning rate with the global batch.

    ``k`` times more windows per step average ``k`` times more gradients (less noise), and
    the rule takes a ``k`` times larger step to keep the progress per window about the same
    (Goyal et al., 2017). It holds for moderate ``k``; very large batches need a warm-up.

    Args:
        base_lr: a learning rate that works with ``base_batch``.
        base_batch: the batch size ``base_lr`` was tuned for.
        global_batch: the new global batch size.

    Returns:
        ``base_lr * global_batch / base_batch``.

    Raises:
        ArgumentError: a rate that is not positive, a batch that is not a positive integer.

    Explained in notebook 13.
    """
    base_lr = check_float("base_lr", base_lr)
    return base_lr * check_int("global_batch", global_batch) / check_int("base_batch",
                                                                         base_batch)


def free_ports(n: int, host: str = HOST) -> list[int]:
    """``n`` different TCP ports on ``host`` that are free now (the operating system picks).

    All ``n`` sockets are open together, so the ports differ; they are closed before
    returning, so another program could take one before a worker binds it (the worker then
    fails and the launcher says so: run again).

    Args:
        n: how many ports.
        host: the address to bind.

    Returns:
        The port numbers.

    Raises:
        ArgumentError: ``n`` is not a positive integer.
        OSError: no port could be bound.

    Explained in notebook 13.
    """
    n = check_int("n", n)
    sockets = []
    try:
        for _ in range(n):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sockets.append(sock)
            sock.bind((host, 0))
        return [int(sock.getsockname()[1]) for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def tf_config(ports: Sequence[int], index: int, hosts: Sequence[str] | None = None) -> dict:
    """The ``TF_CONFIG`` of worker ``index`` in a cluster of ``len(ports)`` workers.

    Args:
        ports: one port per worker.
        index: this worker's position in the list (0 is the chief).
        hosts: one host name per worker (default: 127.0.0.1 for all, one machine). With
            several machines, list their names: every worker gets the same cluster and its
            own index.

    Returns:
        ``{"cluster": {"worker": ["host:port", ...]}, "task": {"type": "worker",
        "index": index}}``; ``json.dumps`` it into the ``TF_CONFIG`` environment variable.

    Raises:
        ArgumentError: no ports, a port outside 1..65535, an index outside the cluster, or
            a hosts list of another length.

    Explained in notebook 13.
    """
    ports = [check_int("every port", port, maximum=65535) for port in ports]
    if not ports:
        raise ArgumentError("ports must list at least one port")
    hosts = [HOST] * len(ports) if hosts is None else [str(host) for host in hosts]
    if len(hosts) != len(ports):
        raise ArgumentError(f"hosts has {len(hosts)} names for {len(ports)} ports")
    index = check_int("index", index, minimum=0, maximum=len(ports) - 1)
    return {"cluster": {"worker": [f"{host}:{port}" for host, port in
                                   zip(hosts, ports, strict=True)]},
            "task": {"type": "worker", "index": index}}


def worker_commands(config: DistributedConfig,
                    ports: Sequence[int] | None = None) -> list[tuple[list[str], dict]]:
    """The command and environment of each worker process of a run.

    Args:
        config: the run's settings (resolved here).
        ports: the workers' ports for ``multiworker`` (default: :func:`free_ports`).

    Returns:
        ``[(argv, env), ...]``, one per process: ``argv`` runs ``python -m
        recsys_lib.distributed --role worker ...``; ``env`` is this process's environment
        plus ``TF_CONFIG`` (``multiworker`` only), ``TF_CPP_MIN_LOG_LEVEL=2`` (no C++ log
        noise), unbuffered output, this package on ``PYTHONPATH`` and this process's id in
        ``RECSYS_DISTRIBUTED_LAUNCHER`` (a worker stops itself when its launcher is gone).

    Raises:
        ArgumentError: a bad setting, or ``ports`` of the wrong length.

    Explained in notebook 13.
    """
    config = config.resolved()
    argv = [sys.executable, "-m", "recsys_lib.distributed", *config.worker_args()]
    env = dict(os.environ)
    env.pop("TF_CONFIG", None)
    package_root = str(Path(__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH")) if p)
    env.update({"TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONUNBUFFERED": "1",
                LAUNCHER_ENV_VAR: str(os.getpid())})
    if config.strategy != "multiworker":
        return [(argv, env)]
    ports = free_ports(config.workers) if ports is None else list(ports)
    if len(ports) != config.workers:
        raise ArgumentError(f"ports has {len(ports)} ports for {config.workers} workers")
    return [(argv, env | {"TF_CONFIG": json.dumps(tf_config(ports, i))})
            for i in range(config.workers)]


def log_tail(path: str | Path, n_chars: int = TAIL_CHARS) -> str:
    """The last ``n_chars`` characters of a log file ("" when it does not exist).

    Explained in notebook 13.
    """
    try:
        with open(path, "rb") as log:
            log.seek(0, os.SEEK_END)
            log.seek(max(0, log.tell() - 4 * n_chars))
            return log.read().decode("utf-8", errors="replace")[-n_chars:]
    except OSError:
        return ""


def _stop(processes: list[subprocess.Popen], grace: float = STOP_GRACE) -> None:
    """Terminate every process still running, kill those that outlive ``grace`` seconds."""
    running = [p for p in processes if p.poll() is None]
    for process in running:
        process.terminate()
    deadline = time.monotonic() + grace
    for process in running:
        try:
            process.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _failure_advice(tail: str, returncode: int | None) -> str:
    lowered = tail.lower()
    if any(hint in lowered for hint in PORT_FAILURE_HINTS):
        return ("its port could not be used (another program took it after it was chosen, "
                "or the address is blocked): run again, new free ports are picked")
    if returncode is not None and returncode < 0:
        return (f"it was killed by signal {-returncode} (e.g. out of memory): try fewer "
                "workers, a smaller --global-batch or --quick")
    return "fix the error shown above in its log and run again"


def supervise(commands: Sequence[tuple[Sequence[str], Mapping[str, str]]],
              logs: Sequence[str | Path], timeout: float, poll: float = 0.2,
              started: list | None = None) -> list[int]:
    """Start every worker, wait until all have finished, and never leave one running.

    Each worker's standard output and error go to its log file. As soon as one worker exits
    with an error, or when ``timeout`` seconds have passed, every worker still running is
    terminated (killed if it does not stop within a few seconds) before the error is raised:
    a worker of a ``MultiWorkerMirroredStrategy`` whose peer died would wait for it forever.
    The workers are stopped on any other exception too (Ctrl-C included).

    Args:
        commands: ``(argv, env)`` per worker, e.g. from :func:`worker_commands`.
        logs: one log path per worker.
        timeout: seconds to wait for all workers.
        poll: seconds between checks.
        started: if given, each ``subprocess.Popen`` is appended to it as it starts (to
            watch the processes, e.g. in a test).

    Returns:
        The process ids of the workers (all finished, exit code 0).

    Raises:
        WorkerError: a worker exited with a non-zero code (the message names it, shows the
            end of its log and says what to do); the others were stopped.
        WorkerTimeoutError: not all workers finished in time; all were stopped.
        ArgumentError: as many logs as commands are needed; a positive timeout.

    Explained in notebook 13.
    """
    timeout = check_float("timeout", timeout)
    if len(logs) != len(commands) or not commands:
        raise ArgumentError(f"supervise needs one log per command, got {len(commands)} "
                            f"commands and {len(logs)} logs")
    processes: list[subprocess.Popen] = []
    files = []
    n = len(commands)
    try:
        for (argv, env), log in zip(commands, logs, strict=True):
            files.append(open(log, "wb"))  # noqa: SIM115 (closed in finally)
            processes.append(subprocess.Popen(list(argv), env=dict(env), stdout=files[-1],
                                              stderr=subprocess.STDOUT,
                                              stdin=subprocess.DEVNULL))
            if started is not None:
                started.append(processes[-1])
        pids = [p.pid for p in processes]
        deadline = time.monotonic() + timeout
        while True:
            codes = [p.poll() for p in processes]
            failed = [i for i, code in enumerate(codes) if code not in (None, 0)]
            if failed:
                i = failed[0]
                _stop(processes)
                tail = log_tail(logs[i])
                raise WorkerError(
                    f"worker {i} of {n} (pid {pids[i]}) failed with exit code {codes[i]}; "
                    f"every other worker was stopped. The end of its log {logs[i]}:\n"
                    f"{tail}\n-> {_failure_advice(tail, codes[i])}",
                    i, codes[i], Path(logs[i]), tail, pids)
            if all(code == 0 for code in codes):
                return pids
            if time.monotonic() > deadline:
                running = [i for i, code in enumerate(codes) if code is None]
                i = running[0]
                _stop(processes)
                tail = log_tail(logs[i])
                raise WorkerTimeoutError(
                    f"worker(s) {', '.join(map(str, running))} of {n} still running after "
                    f"{timeout:.0f} s; all were stopped. The end of worker {i}'s log "
                    f"{logs[i]}:\n{tail}\n-> a worker that waits for its peers forever "
                    "usually means another one could not join the cluster; otherwise raise "
                    "--timeout or use --quick",
                    i, None, Path(logs[i]), tail, pids)
            time.sleep(poll)
    finally:
        _stop(processes)
        for file in files:
            file.close()


def prepare_out_dir(out: str | Path) -> Path:
    """Create ``out`` if needed, check that it is writable, and remove the result and logs
    of an earlier run there (so an old result is never mistaken for a new one).

    Returns:
        ``out`` as a Path.

    Raises:
        ArgumentError: ``out`` is a file, or cannot be created or written.

    Explained in notebook 13.
    """
    out = Path(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / ".write-test"
        probe.write_text("ok", encoding="utf-8")
        probe.unlink()
        for old in [out / RESULT_FILE, *out.glob("worker-*.log")]:
            old.unlink(missing_ok=True)
    except OSError as err:
        raise ArgumentError(f"the output folder {out} cannot be created or written "
                            f"({type(err).__name__}: {err}); choose another --out") from err
    return out


# ----------------------------------------------------------------------------- launcher
def launch(config: DistributedConfig | None = None, /, **settings) -> dict:
    """Run one distributed (or reference) SASRec training and return its ``result.json``.

    ``launch(workers=2, dataset="bundled", quick=True, out="results/dist")`` starts two
    worker processes with ``MultiWorkerMirroredStrategy``; ``strategy="mirrored"`` or
    ``"single"`` starts one process. This process imports no TensorFlow: every run happens
    in fresh worker processes (a ``MirroredStrategy`` over logical CPU devices must set them
    up before TensorFlow starts, which a notebook kernel has done long before).

    Args:
        config: a :class:`DistributedConfig` (default: its defaults).
        **settings: fields of :class:`DistributedConfig` that replace the config's.

    Returns:
        The chief's result: ``strategy, workers, replicas_in_sync, dataset, quick, seed,
        global_batch, per_replica_batch, learning_rate, epochs, loss`` (one per epoch),
        ``val_ndcg@10, val_hit_rate@10, wall_seconds, train_seconds`` and more, plus
        ``launch_seconds`` (the whole run, process starts included), also written back to
        ``out/result.json``.

    Raises:
        ArgumentError: an unknown setting or a bad value (see
            :meth:`DistributedConfig.resolved`), or an unwritable ``out``; no process is
            started.
        WorkerError: a worker failed (the message names it and shows the end of its log).
        WorkerTimeoutError: the run took longer than ``timeout``.

    Explained in notebook 13.
    """
    unknown = set(settings) - {f.name for f in dataclasses.fields(DistributedConfig)}
    if unknown:
        raise ArgumentError(f"unknown setting(s) {sorted(unknown)}; the settings are the "
                            "fields of DistributedConfig")
    config = dataclasses.replace(config or DistributedConfig(), **settings).resolved()
    out = prepare_out_dir(config.out)
    config = dataclasses.replace(config, out=out.resolve())
    start = time.perf_counter()
    commands = worker_commands(config)
    logs = [out / f"worker-{i}.log" for i in range(len(commands))]
    supervise(commands, logs, config.timeout)
    path = out / RESULT_FILE
    if not path.is_file():
        raise WorkerError(f"every worker finished, but worker 0 wrote no {path}. The end of "
                          f"its log {logs[0]}:\n{log_tail(logs[0])}", 0, 0, logs[0],
                          log_tail(logs[0]), [])
    result = json.loads(path.read_text(encoding="utf-8"))
    result["launch_seconds"] = round(time.perf_counter() - start, 2)
    _write_json(path, result)
    return result


def summary_line(result: Mapping) -> str:
    """One line about a result, e.g. for the command line or a notebook.

    Explained in notebook 13.
    """
    return (f"{result['strategy']}: {result['replicas_in_sync']} replica(s), global batch "
            f"{result['global_batch']} ({result['per_replica_batch']} per replica), "
            f"{result['epochs']} epoch(s), final loss {result['loss'][-1]:.4f}, "
            f"val ndcg@{K} {result[f'val_ndcg@{K}']:.4f}, hit_rate@{K} "
            f"{result[f'val_hit_rate@{K}']:.4f}, train {result['train_seconds']:.1f} s, "
            f"wall {result.get('launch_seconds', result['wall_seconds']):.1f} s")


def _write_json(path: Path, data: Mapping) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, path)


# ----------------------------------------------------------------------------- worker
def histories_recommender(train, max_len: int):
    """A :class:`recsys_lib.models.sasrec.SASRecRecommender` that has read ``train`` (the id
    encoders and each user's item-index history, oldest first) but trained nothing: set its
    ``model_`` to a trained SASRec network and ``recommend`` scores the full catalogue after
    each user's history with seen items excluded, SASRecRecommender's own scoring, so
    :func:`recsys_lib.training.validation_metrics` applies the course protocol.

    Explained in notebook 13.
    """
    from recsys_lib.models.sasrec import SASRecRecommender

    class HistoriesOnly(SASRecRecommender):
        def _fit(self, matrix) -> None:
            self.histories_ = self._histories(self.train_)

    return HistoriesOnly(max_len=max_len, progress=False).fit(train)


def epoch_order(n: int, seed: int, epoch: int) -> np.ndarray:
    """The order of the ``n`` training windows in ``epoch``: the same on every process.

    Explained in notebook 13.
    """
    return np.random.default_rng([seed, epoch]).permutation(n)


def epoch_dataset(inputs: np.ndarray, targets: np.ndarray, global_batch: int, seed: int,
                  epoch: int):
    """One epoch of ``(inputs, targets, loss weights)`` batches of the *global* batch size.

    The windows come in :func:`epoch_order`; the last partial batch is dropped, so every
    step sees ``global_batch`` windows; ``AutoShardPolicy.DATA`` lets each worker of a
    ``MultiWorkerMirroredStrategy`` read its own slice of every global batch (Keras hands
    the dataset to ``strategy.experimental_distribute_dataset``). Padding targets weigh 0.
    tf.data's autotuning is off (see the comment in the code), the order deterministic.

    Returns:
        A ``tf.data.Dataset``.

    Explained in notebook 13.
    """
    import tensorflow as tf

    order = epoch_order(len(inputs), seed, epoch)
    weights = (targets > 0).astype("float32")
    data = tf.data.Dataset.from_tensor_slices((inputs[order], targets[order], weights[order]))
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    options.deterministic = True
    # No autotuning thread: when an epoch's iterator is destroyed, TensorFlow waits for that
    # thread, which can sleep up to a minute (one worker then idles at the end of each fit).
    options.autotune.enabled = False
    return data.batch(global_batch, drop_remainder=True).with_options(options).prefetch(2)


@cache
def replica_safe_sasrec():
    """:class:`recsys_lib.models.sasrec.SASRec` with a fix that lets ``fit`` run under a
    strategy with more than one worker process.

    Keras 3 (3.15 here) trips twice over ``MultiWorkerMirroredStrategy`` with several
    workers (keras-team/keras issue 20585):

    * before training it takes the first batch of the distributed dataset to build the loss
      and metrics and averages it over the replicas with ``strategy.reduce``, which cannot
      reduce a tuple of per-replica batches ("Attempt to convert a value (PerReplica ...) to
      a Tensor"). Only the batch's shapes are needed, so this subclass builds from this
      worker's own slice of that batch instead (no collective operation);
    * after each step it averages the step's logs (the running loss, a scalar per replica)
      with ``strategy.reduce("MEAN", value, axis=0)``, which fails on a scalar ("Invalid
      reduction dimension 0"). With ``multi_worker_logs = True`` (the worker sets it when
      there are several workers), ``train_step`` returns each log value with a leading
      axis of length 1, which that reduce averages over the replicas back to a scalar.

    Training itself (forward pass, loss, gradients, all-reduce, update) is unchanged.

    Returns:
        The subclass (created once; importing it imports Keras).

    Explained in notebook 13.
    """
    import tensorflow as tf
    from keras import ops

    from recsys_lib.models.sasrec import SASRec

    class ReplicaSafeSASRec(SASRec):
        multi_worker_logs = False

        def train_step(self, data):
            logs = super().train_step(data)
            if not self.multi_worker_logs:
                return logs
            return {name: ops.reshape(value, (1,)) for name, value in logs.items()}

        def _maybe_symbolic_build(self, iterator=None, data_batch=None):
            if iterator is not None and data_batch is None:
                local = self.distribute_strategy.experimental_local_results
                for _, _, batches in iterator:
                    data_batch = tuple(
                        local(part)[0] if isinstance(part, tf.distribute.DistributedValues)
                        else part for part in next(batches))
                    break
            return super()._maybe_symbolic_build(data_batch=data_batch)

    return ReplicaSafeSASRec


def start_watchdog(timeout: float, launcher: int | None = None) -> threading.Thread:
    """Stop this worker process (exit code 3) after ``timeout`` seconds, or as soon as its
    launcher ``launcher`` (a process id) is no longer its parent.

    A backstop: the launcher stops its workers itself, but a launcher killed with SIGKILL
    cannot, and a worker of a ``MultiWorkerMirroredStrategy`` whose peers are gone would
    wait for them forever.

    Returns:
        The daemon thread that watches.

    Explained in notebook 13.
    """
    deadline = time.monotonic() + timeout

    def watch() -> None:
        while True:
            time.sleep(1.0)
            gone = launcher is not None and os.getppid() != launcher
            if gone or time.monotonic() > deadline:
                reason = ("its launcher is gone" if gone else
                          f"it has run for more than {timeout:.0f} s")
                # standard output: standard error may point at the null device for a moment
                # (import_tensorflow_quietly)
                print(f"worker stopping itself: {reason}", flush=True)
                os._exit(3)

    thread = threading.Thread(target=watch, name="worker-watchdog", daemon=True)
    thread.start()
    return thread


def _task_index(config: DistributedConfig) -> tuple[int, list[str] | None]:
    """This worker's index and the cluster's addresses (from ``TF_CONFIG``)."""
    if config.strategy != "multiworker":
        return 0, None
    raw = os.environ.get("TF_CONFIG")
    if not raw:
        raise RuntimeError("the multiworker role needs TF_CONFIG in its environment; start "
                           "workers with python -m recsys_lib.distributed (the launcher)")
    spec = json.loads(raw)
    cluster = list(spec["cluster"]["worker"])
    if len(cluster) != config.workers:
        raise RuntimeError(f"TF_CONFIG lists {len(cluster)} workers but --workers is "
                           f"{config.workers}")
    return int(spec["task"]["index"]), cluster


def make_strategy(config: DistributedConfig):
    """Import TensorFlow and create the run's strategy; call it first thing in a process.

    ``multiworker``: ``MultiWorkerMirroredStrategy`` with ring all-reduce (reads
    ``TF_CONFIG``; waits until every worker has joined). ``mirrored``: ``MirroredStrategy``
    over ``workers`` logical CPU devices, which TensorFlow allows only before its runtime
    starts. ``single``: the default strategy (no distribution). GPUs are hidden.

    Returns:
        The ``tf.distribute.Strategy``.

    Raises:
        RuntimeError: TensorFlow had already started (the logical devices cannot be made).

    Explained in notebook 13.
    """
    from recsys_lib.config import import_tensorflow_quietly

    import_tensorflow_quietly()  # without the C++ start-up lines (no CUDA on this machine...)
    import tensorflow as tf

    tf.config.set_visible_devices([], "GPU")
    if config.strategy == "multiworker":
        ring = tf.distribute.experimental.CommunicationImplementation.RING
        return tf.distribute.MultiWorkerMirroredStrategy(
            communication_options=tf.distribute.experimental.CommunicationOptions(
                implementation=ring))
    if config.strategy == "mirrored":
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration()] * config.workers)
        devices = [device.name for device in tf.config.list_logical_devices("CPU")]
        return tf.distribute.MirroredStrategy(devices[:config.workers])
    return tf.distribute.get_strategy()


def run_worker(config: DistributedConfig) -> dict:
    """The worker role: train SASRec under the configured strategy and validate it.

    Steps: load and split the dataset (the benchmark's leave-last-out protocol), create the
    strategy, build and compile SASRec inside ``strategy.scope()``, fit one epoch at a time
    on :func:`epoch_dataset` (one plain log line per epoch), then copy the trained weights
    into a plain model outside the strategy and score the validation users (no collective
    operation, so every worker can do it on its own; all do, and only the chief writes
    ``out/result.json``).

    Args:
        config: the run's settings; ``multiworker`` needs ``TF_CONFIG`` in the environment.

    Returns:
        The result dict (written to ``result.json`` by the chief only).

    Raises:
        ArgumentError: a bad setting (an unknown dataset ...).
        ValueError: a global batch larger than the training windows.
        RuntimeError: no or a wrong ``TF_CONFIG``, or TensorFlow already started.

    Explained in notebook 13.
    """
    wall_start = time.perf_counter()
    config = config.resolved()
    launcher = os.environ.get(LAUNCHER_ENV_VAR)
    start_watchdog(config.timeout + WATCHDOG_MARGIN, int(launcher) if launcher else None)
    index, cluster = _task_index(config)
    label = f"worker {index}"
    print(f"{label}: pid {os.getpid()}, strategy {config.strategy}, dataset {config.dataset}, "
          f"global batch {config.global_batch}", flush=True)

    from recsys_lib.benchmark import protocol_split
    from recsys_lib.data import load_movielens

    split = protocol_split(load_movielens(config.dataset, config.data_dir).ratings)
    strategy = make_strategy(config)  # before any other TensorFlow work

    import keras
    import tensorflow as tf

    from recsys_lib.models.sasrec import SASRec, training_windows
    from recsys_lib.training import validation_metrics

    keras.utils.set_random_seed(config.seed)
    histories = histories_recommender(split.train, config.max_len)
    keep = config.windows_per_user * config.max_len + 1  # the newest windows_per_user windows
    inputs, targets = training_windows(
        [h[-keep:] if config.windows_per_user else h for h in histories.histories_.values()],
        config.max_len)
    steps = len(inputs) // config.global_batch
    if steps == 0:
        raise ValueError(f"the global batch ({config.global_batch}) is larger than the "
                         f"{len(inputs)} training windows of {config.dataset}; choose "
                         f"--global-batch <= {len(inputs)}")
    replicas = strategy.num_replicas_in_sync
    devices = (list(strategy.extended.worker_devices) if config.strategy != "single"
               else [d.name for d in tf.config.list_logical_devices("CPU")])
    print(f"{label}: {replicas} replica(s) in sync, {len(inputs)} windows, {steps} steps of "
          f"{config.global_batch} per epoch ({config.global_batch // replicas} per replica)",
          flush=True)

    def network(model_class=SASRec) -> SASRec:
        model = model_class(len(histories.items_), config.max_len, config.d_model,
                       config.num_heads, config.num_blocks, None, config.dropout,
                       item_ids=histories.items_.ids_.tolist())
        model.build((None, config.max_len))
        return model

    with strategy.scope():
        model = network(replica_safe_sasrec())
        model.multi_worker_logs = config.strategy == "multiworker" and config.workers > 1
        model.compile(optimizer=keras.optimizers.Adam(config.learning_rate),
                      loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                      jit_compile=False)
    losses, train_start = [], time.perf_counter()
    for epoch in range(1, config.epochs + 1):
        start = time.perf_counter()
        data = epoch_dataset(inputs, targets, config.global_batch, config.seed, epoch)
        fitted = model.fit(data, epochs=1, verbose=0, shuffle=False)
        losses.append(float(fitted.history["loss"][-1]))
        print(f"{label} epoch {epoch:>{len(str(config.epochs))}}/{config.epochs}  loss "
              f"{losses[-1]:.4f}  {time.perf_counter() - start:.1f} s", flush=True)
    train_seconds = time.perf_counter() - train_start

    plain = network()  # outside the scope: ordinary variables, no collective op
    plain.set_weights(model.get_weights())
    histories.model_ = plain
    val_start = time.perf_counter()
    scores = validation_metrics(histories, split.val, k=K)()
    val_seconds = time.perf_counter() - val_start
    print(f"{label} val ndcg@{K} {scores[f'val_ndcg@{K}']:.4f}  hit_rate@{K} "
          f"{scores[f'val_hit_rate@{K}']:.4f}  {val_seconds:.1f} s", flush=True)
    result = {
        "strategy": config.strategy, "workers": config.workers,
        "processes": config.processes, "replicas_in_sync": replicas,
        "devices": devices, "cluster": cluster,
        "dataset": config.dataset, "quick": config.quick, "seed": config.seed,
        "global_batch": config.global_batch,
        "per_replica_batch": config.global_batch // replicas,
        "learning_rate": config.learning_rate, "epochs": config.epochs,
        "steps_per_epoch": steps, "windows": len(inputs),
        "windows_per_user": config.windows_per_user,
        "model": {"d_model": config.d_model, "num_blocks": config.num_blocks,
                  "num_heads": config.num_heads, "max_len": config.max_len,
                  "dropout": config.dropout},
        "loss": losses, **scores,
        "val_users": int(split.val["user_id"].isin(histories.users_.ids_).sum()),
        "train_seconds": round(train_seconds, 2), "val_seconds": round(val_seconds, 2),
        "wall_seconds": round(time.perf_counter() - wall_start, 2),
        "versions": {"tensorflow": tf.__version__, "keras": keras.__version__},
    }
    if index == 0:
        _write_json(Path(config.out) / RESULT_FILE, result)
        print(f"{label} (chief) wrote {Path(config.out) / RESULT_FILE}", flush=True)
    return result


# ----------------------------------------------------------------------------- command line
def build_parser() -> argparse.ArgumentParser:
    """The command line of ``python -m recsys_lib.distributed`` (launcher and worker role).

    Explained in notebook 13.
    """
    parser = argparse.ArgumentParser(
        prog="python -m recsys_lib.distributed",
        description="Train SASRec data-parallel with tf.distribute (notebook 13).")
    parser.add_argument("--workers", type=int, default=2,
                        help="worker processes (multiworker) or CPU devices (mirrored)")
    parser.add_argument("--dataset", default="bundled", help=", ".join(DATASET_NAMES))
    parser.add_argument("--quick", action="store_true", help="test-sized settings")
    parser.add_argument("--out", type=Path, required=True,
                        help="folder for result.json and worker-{i}.log")
    parser.add_argument("--strategy", choices=STRATEGIES, default="multiworker")
    parser.add_argument("--data-dir", default=None, help="folder holding <dataset>/ files")
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--global-batch", type=int, default=None,
                        help="windows per optimizer step, over all replicas")
    parser.add_argument("--learning-rate", type=float, default=None,
                        help="default: 5e-3 with --quick, else 1e-3 scaled linearly from a "
                        "batch of 128 to the global batch")
    parser.add_argument("--d-model", type=int, default=None)
    parser.add_argument("--num-blocks", type=int, default=None)
    parser.add_argument("--num-heads", type=int, default=2)
    parser.add_argument("--max-len", type=int, default=None)
    parser.add_argument("--dropout", type=float, default=None)
    parser.add_argument("--windows-per-user", type=int, default=None,
                        help="train on each user's newest N windows (0: all)")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument("--timeout", type=float, default=None,
                        help="seconds to wait for the workers before stopping them "
                        "(default: 600 with --quick, else 7200)")
    parser.add_argument("--role", choices=("launcher", "worker"), default="launcher",
                        help=argparse.SUPPRESS)
    return parser


def config_from_args(args: argparse.Namespace) -> DistributedConfig:
    """The :class:`DistributedConfig` of parsed command-line arguments (not yet resolved).

    Explained in notebook 13.
    """
    names = {f.name for f in dataclasses.fields(DistributedConfig)}
    return DistributedConfig(**{k: v for k, v in vars(args).items() if k in names})


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit code (0 ok, 1 a worker failed, 2 bad settings).

    Explained in notebook 13.
    """
    args = build_parser().parse_args(argv)
    config = config_from_args(args)
    if args.role == "worker":
        try:
            run_worker(config)
        except BaseException as err:  # the log is all the launcher shows: make it complete
            traceback.print_exc()
            print(f"worker failed: {type(err).__name__}: {err}", file=sys.stderr, flush=True)
            return 1
        return 0
    in_main_thread = threading.current_thread() is threading.main_thread()
    if in_main_thread:  # SIGTERM then stops the workers too (see launch's finally)
        previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        result = launch(config)
    except KeyboardInterrupt:
        print("error: interrupted; every worker was stopped", file=sys.stderr)
        return 130
    except ArgumentError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except WorkerError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    finally:
        if in_main_thread:
            signal.signal(signal.SIGTERM, previous)
    print(summary_line(result))
    print(f"result: {Path(config.out) / RESULT_FILE}")
    return 0


if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    sys.exit(code)
