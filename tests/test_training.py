"""The shared Keras training loop: early stopping, best weights restored, history, progress.

A tiny Keras model and a scripted validation score make every expectation exact: the test
knows which epoch is best before training starts.
"""

from __future__ import annotations

import os

import numpy as np
import pandas as pd
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
keras = pytest.importorskip("keras")

from recsys_lib.checks import ArgumentError  # noqa: E402
from recsys_lib.training import (  # noqa: E402
    MONITOR,
    EarlyStopping,
    progress_line,
    train_keras,
    validation_metrics,
)


class Recorder:
    """Plays back a script of validation scores, one per validation."""

    def __init__(self, scores):
        self.scores, self.calls = list(scores), 0

    def validate(self):
        self.calls += 1
        return {MONITOR: self.scores[self.calls - 1], "val_hit_rate@10": 0.5}


def tiny_model(seed: int = 0):
    keras.utils.set_random_seed(seed)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
    return model


def data(epoch):
    rng = np.random.default_rng(epoch)
    x = rng.normal(size=(32, 3)).astype("float32")
    return x, x @ np.array([1.0, -2.0, 0.5], dtype="float32")


def train(scores, **kwargs):
    model = tiny_model()
    recorder = Recorder(scores)
    snapshots = {}  # epoch -> the weights after that epoch's training

    def epoch_data(epoch):
        if epoch > 1:
            snapshots[epoch - 1] = [w.copy() for w in model.get_weights()]
        return data(epoch)

    settings = dict(epochs=len(scores), batch_size=8, validate=recorder.validate) | kwargs
    run = train_keras(model, epoch_data, **settings)
    return model, run, snapshots


def test_best_weights_are_restored_and_the_history_is_complete():
    model, run, snapshots = train([0.1, 0.4, 0.2, 0.3, 0.35])
    assert run.best_epoch == 2
    for kept, after_epoch_2 in zip(model.get_weights(), snapshots[2], strict=True):
        np.testing.assert_array_equal(kept, after_epoch_2)
    assert [row["epoch"] for row in run.history] == [1, 2, 3, 4, 5]
    for row in run.history:
        assert {"epoch", "loss", "seconds", MONITOR, "val_hit_rate@10", "val_seconds"} <= set(row)
        assert np.isfinite(row["loss"]) and row["seconds"] >= 0
    assert run.history[-1]["loss"] < run.history[0]["loss"]  # it did train


def test_patience_counts_validations_without_improvement():
    _, run, _ = train([0.1, 0.3, 0.2, 0.25, 0.29, 0.5, 0.6], patience=3)
    assert [row["epoch"] for row in run.history] == [1, 2, 3, 4, 5]  # 3 misses after epoch 2
    assert run.best_epoch == 2
    _, run, _ = train([0.1, 0.3, 0.2, 0.25, 0.29, 0.5, 0.6], patience=None)
    assert len(run.history) == 7 and run.best_epoch == 7


def test_validation_every_n_epochs_and_after_the_last():
    scores = [0.2, 0.1, 0.3]  # consumed only on validated epochs: 2, 4, 5
    model = tiny_model()
    recorder = Recorder(scores)
    run = train_keras(model, data, epochs=5, batch_size=8, validate=recorder.validate,
                      eval_every=2)
    assert [row["epoch"] for row in run.history if MONITOR in row] == [2, 4, 5]
    assert run.best_epoch == 5 and recorder.calls == 3


def test_without_validation_the_last_epoch_is_kept():
    model = tiny_model()
    run = train_keras(model, data, epochs=3, batch_size=8)
    assert run.best_epoch == 3 and all(MONITOR not in row for row in run.history)


def test_equal_scores_keep_the_earliest_epoch_and_nan_is_an_error():
    stopper = EarlyStopping(patience=2)
    assert stopper.update(1, 0.5, lambda: ["w1"])
    assert not stopper.update(2, 0.5, lambda: ["w2"])
    assert stopper.best_epoch == 1 and stopper.best_weights == ["w1"] and not stopper.should_stop
    assert not stopper.update(3, 0.4, lambda: ["w3"]) and stopper.should_stop
    with pytest.raises(ValueError, match="diverged"):
        stopper.update(4, float("nan"), lambda: [])


def test_progress_prints_one_clean_line_per_epoch(capsys):
    train([0.1, 0.2, 0.15], progress=True, name="tiny")
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 3 and all(line.startswith("tiny epoch ") for line in lines)
    assert "\r" not in "".join(lines) and "ndcg@10 0.2000" in lines[1]
    row = {"epoch": 3, "loss": 1.5, "seconds": 2.0, "val_ndcg@10": 0.25, "val_seconds": 0.5}
    assert progress_line("m", row, 12) == "m epoch  3/12  loss 1.5000  ndcg@10 0.2500  2.5 s"


def test_sample_weights_reach_keras():
    model = tiny_model()
    x, y = data(1)
    weights = np.zeros(len(x), dtype="float32")  # every example weighs 0: no gradient
    before = [w.copy() for w in model.get_weights()]
    train_keras(model, lambda epoch: (x, y, weights), epochs=2, batch_size=8)
    for now, then in zip(model.get_weights(), before, strict=True):
        np.testing.assert_array_equal(now, then)


@pytest.mark.parametrize("bad, message", [
    ({"epochs": 0}, "epochs must be an integer >= 1"),
    ({"batch_size": 2.5}, "batch_size must be an integer >= 1"),
    ({"eval_every": True}, "eval_every must be an integer >= 1"),
    ({"patience": 0}, "patience must be an integer >= 1"),
])
def test_bad_settings_raise(bad, message):
    with pytest.raises(ArgumentError, match=message):
        train_keras(tiny_model(), data, **({"epochs": 1, "batch_size": 8} | bad))


def test_validation_metrics_use_the_full_catalogue_and_skip_unknown_users():
    from recsys_lib.models.baselines import PopularityRecommender

    train_table = pd.DataFrame({"user_id": [1, 1, 2, 3], "item_id": [10, 11, 10, 12]})
    model = PopularityRecommender().fit(train_table)
    validation = pd.DataFrame({"user_id": [2, 3, 99], "item_id": [11, 10, 10]})
    scores = validation_metrics(model, validation)()
    # popularity order 10, 11, 12 (ties by lower id); user 2 has seen 10 -> 11 first (hit at 1);
    # user 3 has seen 12 -> 10 first (hit at 1); user 99 is not in training and is skipped
    assert scores == {"val_ndcg@10": 1.0, "val_hit_rate@10": 1.0}
    with pytest.raises(ValueError, match="no validation user"):
        validation_metrics(model, validation.iloc[2:])()
