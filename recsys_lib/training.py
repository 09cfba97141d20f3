"""One training loop for every Keras model of the course, with the course's early stopping.

Every Keras recommender (NeuMF and two towers in notebook 06, SASRec in notebook 10, and
the later models) trains through :func:`train_keras`:

* each epoch asks the model for that epoch's data (fresh negatives, a new shuffle ...) and
  runs one pass of ``keras.Model.fit`` over it;
* every ``eval_every`` epochs (and after the last one) it validates with the course
  protocol: top-10 lists over the **full catalogue**, seen items excluded, scored by
  NDCG@10 (and HR@10) against each validation user's held-out item;
* it stops after ``patience`` validations in a row without a better NDCG@10 and restores
  the weights of the best validation;
* it records one dict per epoch in a history (``epoch, loss, seconds`` of training and, on
  validated epochs, ``val_ndcg@10, val_hit_rate@10, val_seconds``) and, with
  ``progress=True``, prints one plain line per epoch (no carriage returns, so stored
  notebook outputs stay clean).

:class:`KerasRecommender` is the base class that gives a recommender the shared knobs
(``epochs, batch_size, learning_rate, patience, eval_every, progress, seed``) and
``fit(train, validation=...)``. This module does not import Keras: it only calls the
model's ``fit``, ``get_weights`` and ``set_weights``.

Explained in notebook 06 (first use) and notebook 10 (SASRec, with a changed loss).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from recsys_lib.checks import check_float, check_int
from recsys_lib.config import DEFAULT_SEED
from recsys_lib.metrics import evaluate_ranking, relevant_items
from recsys_lib.models.base import Recommender

#: Cut-off of the validation metrics computed during training.
VALIDATION_K = 10
#: The history key early stopping watches (the course's selection metric).
MONITOR = f"val_ndcg@{VALIDATION_K}"

#: What ``epoch_data`` returns: ``(x, y)`` or ``(x, y, sample_weight)``.
EpochData = tuple


@dataclass
class EarlyStopping:
    """Remember the best validation score and its weights; say when patience has run out.

    Args:
        patience: validations in a row without a better score before stopping; None
            never stops early (the best weights are still restored).

    Attributes:
        best_score, best_epoch, best_weights: of the best validation so far (None before
            the first one).
        waited: validations since the last improvement.

    Explained in notebook 06; notebook 10 trains SASRec with it.
    """

    patience: int | None = None
    best_score: float = -math.inf
    best_epoch: int | None = None
    best_weights: list | None = None
    waited: int = 0

    def update(self, epoch: int, score: float, get_weights: Callable[[], list]) -> bool:
        """Record a validation score; keep ``get_weights()`` if it is a new best.

        Only a strictly better score counts, so among equal scores the earliest epoch wins.

        Returns:
            True when ``score`` is a new best.

        Raises:
            ValueError: ``score`` is NaN (the model diverged: lower the learning rate).
        """
        if math.isnan(score):
            raise ValueError(f"the validation score of epoch {epoch} is NaN: training "
                             "diverged; try a smaller learning_rate")
        if score > self.best_score:
            self.best_score, self.best_epoch = score, epoch
            self.best_weights, self.waited = get_weights(), 0
            return True
        self.waited += 1
        return False

    @property
    def should_stop(self) -> bool:
        """True once ``patience`` validations in a row have not improved."""
        return self.patience is not None and self.waited >= self.patience


@dataclass
class TrainingRun:
    """What :func:`train_keras` returns: the history and the epoch whose weights are kept.

    Explained in notebook 06; notebook 10 trains SASRec with it.
    """

    history: list[dict] = field(default_factory=list)
    best_epoch: int = 0


def validation_metrics(recommender: Recommender, validation: pd.DataFrame,
                       k: int = VALIDATION_K) -> Callable[[], dict[str, float]]:
    """A function that scores ``recommender`` on ``validation`` with the course protocol.

    Users of ``validation`` who are not in the recommender's training data are left out
    (a model cannot rank for them). The returned function recommends the top ``k`` over the
    full catalogue with seen items excluded and returns ``{"val_ndcg@k", "val_hit_rate@k"}``.

    Args:
        recommender: a fitted recommender (its ``users_`` must be set when called).
        validation: held-out ``user_id, item_id`` rows, e.g. ``split.val``.
        k: the cut-off.

    Returns:
        A function of no arguments.

    Explained in notebook 06.
    """
    def validate() -> dict[str, float]:
        known = validation[validation["user_id"].isin(recommender.users_.ids_)]
        relevant = relevant_items(known)
        if not relevant:
            raise ValueError("no validation user is in the training data: the validation "
                             "table must hold later interactions of training users")
        recs = recommender.recommend(list(relevant), k=k)
        scores = evaluate_ranking(recs, relevant, k=k, metrics=("ndcg", "hit_rate"))
        return {f"val_{name}": value for name, value in scores.items() if "@" in name}
    return validate


def progress_line(name: str, row: dict, epochs: int) -> str:
    """One plain line for an epoch of the history, e.g. for a stored notebook output.

    Explained in notebook 06; notebook 10 trains SASRec with it.
    """
    parts = [f"{name} epoch {row['epoch']:>{len(str(epochs))}}/{epochs}",
             f"loss {row['loss']:.4f}"]
    parts += [f"{key[4:]} {value:.4f}" for key, value in row.items()
              if key.startswith("val_") and key != "val_seconds"]
    parts.append(f"{row['seconds'] + row.get('val_seconds', 0.0):.1f} s")
    return "  ".join(parts)


def train_keras(model: Any, epoch_data: Callable[[int], EpochData], *, epochs: int,
                batch_size: int, validate: Callable[[], dict] | None = None,
                eval_every: int = 1, patience: int | None = None, progress: bool = False,
                name: str = "model", shuffle: bool = False,
                monitor: str = MONITOR) -> TrainingRun:
    """Train a compiled Keras model epoch by epoch with validation and early stopping.

    Args:
        model: a compiled ``keras.Model`` (anything with ``fit``, ``get_weights`` and
            ``set_weights``).
        epoch_data: ``epoch_data(epoch)`` returns the epoch's ``(x, y)`` or
            ``(x, y, sample_weight)`` for ``model.fit``, or a dataset of batches (e.g. a
            ``tf.data.Dataset``, which ``batch_size`` and ``shuffle`` do not apply to).
        epochs: at most this many epochs.
        batch_size: examples per gradient step.
        validate: returns validation metrics (see :func:`validation_metrics`); None trains
            all ``epochs`` and keeps the last weights.
        eval_every: validate every this many epochs, and after the last epoch.
        patience: validations without a better ``monitor`` before stopping; None: never.
        progress: print one line per epoch.
        name: the model's name in those lines.
        shuffle: let Keras shuffle the epoch's examples (False when ``epoch_data`` already
            returns them in a random order).
        monitor: the key of ``validate()``'s result that early stopping maximises.

    Returns:
        A :class:`TrainingRun`: the history (one dict per epoch run) and the epoch whose
        weights the model holds at the end (the best validation, or the last epoch).

    Raises:
        ArgumentError: a size or count that is not a positive integer.
        KeyError: ``validate()`` does not return ``monitor``.

    Explained in notebook 06; notebook 10 trains SASRec with it.
    """
    epochs, batch_size = check_int("epochs", epochs), check_int("batch_size", batch_size)
    eval_every = check_int("eval_every", eval_every)
    stopper = EarlyStopping(None if patience is None else check_int("patience", patience))
    run = TrainingRun()
    for epoch in range(1, epochs + 1):
        start = time.perf_counter()
        data = epoch_data(epoch)
        if isinstance(data, tuple):
            x, y, *weights = data
            fitted = model.fit(x, y, sample_weight=weights[0] if weights else None,
                               batch_size=batch_size, epochs=1, shuffle=shuffle, verbose=0)
        else:  # a dataset of ready-made batches (e.g. tf.data, notebook 13)
            fitted = model.fit(data, epochs=1, shuffle=False, verbose=0)
        row = {"epoch": epoch, "loss": float(fitted.history["loss"][-1]),
               "seconds": round(time.perf_counter() - start, 2)}
        if validate is not None and (epoch % eval_every == 0 or epoch == epochs):
            start = time.perf_counter()
            row.update(validate())
            row["val_seconds"] = round(time.perf_counter() - start, 2)
            stopper.update(epoch, row[monitor], model.get_weights)
        run.history.append(row)
        if progress:
            print(progress_line(name, row, epochs), flush=True)
        if stopper.should_stop:
            break
    run.best_epoch = run.history[-1]["epoch"]
    if stopper.best_weights is not None:
        model.set_weights(stopper.best_weights)
        run.best_epoch = stopper.best_epoch
    return run


class KerasRecommender(Recommender):
    """Base class of the Keras recommenders: the shared knobs, ``fit`` with validation.

    Subclasses build their model in ``_fit(matrix)`` and call :meth:`_train` with it.

    Args:
        epochs: at most this many passes over the training data.
        batch_size: training examples per gradient step.
        learning_rate: Adam's step size.
        patience: with ``fit(..., validation=...)``, validations in a row without a better
            NDCG@10 before stopping (None: train all ``epochs``, keep the best weights).
        eval_every: with validation, epochs between validations.
        progress: print one line per epoch.
        seed: seeds Keras, NumPy and the model's samplers; same seed, same model on CPU.

    Attributes set by ``fit``:
        model_: the trained ``keras.Model``.
        history_: one dict per epoch (see :func:`train_keras`).
        best_epoch_: the epoch whose weights are kept.

    Raises:
        ArgumentError: a count that is not a positive integer, a rate that is not
            positive, a negative seed.

    Explained in notebook 06; notebook 10 trains SASRec with it.
    """

    def __init__(self, epochs: int, batch_size: int, learning_rate: float,
                 patience: int | None, eval_every: int, progress: bool,
                 seed: int = DEFAULT_SEED) -> None:
        self.epochs = check_int("epochs", epochs)
        self.batch_size = check_int("batch_size", batch_size)
        self.learning_rate = check_float("learning_rate", learning_rate)
        self.patience = None if patience is None else check_int("patience", patience)
        self.eval_every = check_int("eval_every", eval_every)
        self.progress = bool(progress)
        self.seed = check_int("seed", seed, minimum=0)
        self.history_: list[dict] = []

    def fit(self, train: pd.DataFrame, items: Iterable | None = None,
            validation: pd.DataFrame | None = None) -> KerasRecommender:
        """Train on ``train``; with ``validation``, early-stop on its NDCG@10.

        Args:
            train: user_id, item_id[, timestamp] (ratings are ignored: implicit feedback).
            items: extra catalogue items with no interactions (see the base class).
            validation: held-out ``user_id, item_id`` rows (e.g. ``split.val``); users not
                in ``train`` are ignored. Validated every ``eval_every`` epochs and after
                the last one, over the full catalogue with seen items excluded.

        Returns:
            self.

        Raises:
            ValueError: bad ``train`` (see the base class) or a ``validation`` that is not
                a DataFrame with ``user_id`` and ``item_id`` columns.
        """
        if validation is not None and (not isinstance(validation, pd.DataFrame)
                                       or {"user_id", "item_id"} - set(validation.columns)):
            raise ValueError("validation must be a DataFrame with user_id and item_id columns")
        self._validation = validation
        try:
            return super().fit(train, items)
        finally:
            del self._validation

    def _user_indices(self, users: Iterable) -> Any:
        if hasattr(self, "loaded_from_") and not hasattr(self, "users_"):
            raise RuntimeError(f"this {type(self).__name__} was loaded from {self.loaded_from_} "
                               "and knows no training users; call recommend_for_history("
                               "item_ids) with each user's history instead of recommend(users)")
        return super()._user_indices(users)

    def _train(self, model: Any, epoch_data: Callable[[int], EpochData],
               shuffle: bool = False) -> None:
        """Train ``model`` with :func:`train_keras` and this recommender's settings."""
        validate = None
        if self._validation is not None:
            validate = validation_metrics(self, self._validation)
        run = train_keras(model, epoch_data, epochs=self.epochs, batch_size=self.batch_size,
                          validate=validate, eval_every=self.eval_every,
                          patience=self.patience, progress=self.progress, name=self.name,
                          shuffle=shuffle)
        self.history_, self.best_epoch_ = run.history, run.best_epoch
