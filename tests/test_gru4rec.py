"""The GRU4Rec recommender: masking of padding, learning, early stopping, save/load, messages."""

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from sequences import cyclic_histories  # noqa: E402

from recsys_lib.metrics import evaluate_ranking, relevant_items  # noqa: E402
from recsys_lib.models.gru4rec import GRU4Rec, GRU4RecRecommender  # noqa: E402
from recsys_lib.models.sasrec import left_pad  # noqa: E402

# Every test here trains or runs a Keras model (tests/conftest.py marks the files it lists).
pytestmark = pytest.mark.slow(reason="trains Keras models (GRU4Rec)")


def last_logits(model, batch):
    return keras.ops.convert_to_numpy(model(np.asarray(batch)))[:, -1, :]


@pytest.mark.parametrize("num_layers", [1, 2])
def test_padding_does_not_change_the_scores(num_layers, tmp_path):
    keras.utils.set_random_seed(0)
    model = GRU4Rec(n_items=20, max_len=8, d_model=8, num_layers=num_layers, dropout=0.0)
    history = [3, 7, 1, 12]
    unpadded = last_logits(model, [history])
    for max_len in (4, 8, 30):
        np.testing.assert_allclose(last_logits(model, left_pad([history], max_len)), unpadded,
                                   atol=1e-5)
    # a batch with histories of different lengths: each row as if alone
    batch = left_pad([history, [5], [9, 9, 2]], 8)
    np.testing.assert_allclose(last_logits(model, batch)[0], unpadded[0], atol=1e-5)
    np.testing.assert_allclose(last_logits(model, batch)[1], last_logits(model, [[5]])[0],
                               atol=1e-5)
    hidden = keras.ops.convert_to_numpy(model.hidden(batch))
    np.testing.assert_array_equal(hidden[1, :7], 0.0)  # padding leaves the zero state alone
    logits = keras.ops.convert_to_numpy(model(batch))
    assert logits.shape == (3, 8, 21) and (logits[..., 0] < -1e8).all()  # never padding
    path = tmp_path / "untrained.keras"  # every layer of a stack is saved and restored
    model.save(path)
    loaded = GRU4RecRecommender.load(str(path))
    assert (loaded.num_layers, loaded.max_len, loaded.dropout) == (num_layers, 8, 0.0)
    np.testing.assert_array_equal(last_logits(loaded.model_, batch), last_logits(model, batch))
    np.testing.assert_allclose(loaded.score_histories([np.array(history)]), unpadded[:, 1:],
                               atol=1e-5)
    changed = batch.copy()
    changed[0, 6] = 15  # an earlier item changes the state: the GRU reads the order
    assert not np.allclose(last_logits(model, changed)[0], last_logits(model, batch)[0])


def test_gru4rec_learns_a_cycle_keeps_its_best_epoch_and_saves(tmp_path):
    data = cyclic_histories()
    last = data.groupby("user_id").tail(1)
    train = data.drop(index=last.index)
    model = GRU4RecRecommender(max_len=8, d_model=16, epochs=30, batch_size=16,
                               learning_rate=1e-2, dropout=0.0, patience=3, progress=False,
                               seed=3)
    model.fit(train, validation=last)
    users = last["user_id"].tolist()
    recs = model.recommend(users, k=1)
    hits = np.mean([recs[u][0] == i for u, i in zip(last.user_id, last.item_id, strict=True)])
    assert hits > 0.9, model.history_[-3:]
    # early stopping restored the weights of the best validation epoch
    validated = [row for row in model.history_ if "val_ndcg@10" in row]
    best = max(validated, key=lambda row: row["val_ndcg@10"])
    assert model.best_epoch_ == best["epoch"] < model.history_[-1]["epoch"]
    ranks = model.recommend(users, k=10)
    now = evaluate_ranking(ranks, relevant_items(last), k=10, metrics=("ndcg",))["ndcg@10"]
    assert now == pytest.approx(best["val_ndcg@10"])

    path = tmp_path / "gru4rec.keras"
    model.save(str(path))
    loaded = GRU4RecRecommender.load(str(path))
    assert (loaded.max_len, loaded.d_model, loaded.num_layers) == (8, 16, 1)
    histories = [model.histories_[u] for u in users[:5]]
    np.testing.assert_array_equal(loaded.score_histories(histories),
                                  model.score_histories(histories))
    history_ids = train.loc[train.user_id == users[0], "item_id"].tolist()
    assert loaded.recommend_for_history(history_ids, k=3) == model.recommend_for_history(
        history_ids, k=3)
    # new interactions extend a history without retraining (SASRec's add_history)
    model.add_history(last.head(1))
    assert model.histories_[users[0]][-1] == model.items_.transform([last.item_id.iloc[0]])[0] + 1
    assert last.item_id.iloc[0] not in model.recommend([users[0]], k=29)[users[0]]
    with pytest.raises(ValueError, match=".keras"):
        model.save(str(tmp_path / "model.h5"))


def test_gru4rec_bad_input_gets_clear_messages(tmp_path):
    data = cyclic_histories(n_users=12, length=6)
    data["user_id"] = "u" + data["user_id"].astype(str)  # string ids work like elsewhere
    model = GRU4RecRecommender(max_len=4, d_model=8, epochs=1, progress=False).fit(data)
    assert len(model.recommend(["u1", "u3"], k=3)["u3"]) == 3
    assert model.score(["u1"]).shape == (1, 30)
    with pytest.raises(ValueError, match="timestamp"):
        GRU4RecRecommender(progress=False).fit(data.drop(columns="timestamp"))
    with pytest.raises(ValueError, match="two or more training interactions"):
        GRU4RecRecommender(epochs=1, progress=False).fit(data.head(1))
    with pytest.raises(ValueError, match="can only recommend for users in its training data"):
        model.recommend(["nobody"])
    with pytest.raises(ValueError, match="k must be an integer >= 1"):
        model.recommend(["u1"], k=0)
    with pytest.raises(ValueError, match="unknown id"):
        model.recommend_for_history([999])
    with pytest.raises(ValueError, match="validation must be a DataFrame"):
        GRU4RecRecommender(progress=False).fit(data, validation=[1, 2])
    path = tmp_path / "model.keras"
    model.save(str(path))
    loaded = GRU4RecRecommender.load(str(path))
    with pytest.raises(RuntimeError, match="recommend_for_history"):
        loaded.recommend(["u1"])
    empty = tmp_path / "empty.keras"
    empty.write_bytes(b"")
    with pytest.raises(ValueError, match="not a readable .keras archive"):
        GRU4RecRecommender.load(str(empty))
    with pytest.raises(FileNotFoundError, match="no model file"):
        GRU4RecRecommender.load(str(tmp_path / "missing.keras"))
    other = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    other.save(tmp_path / "other.keras")
    with pytest.raises(ValueError, match="not a GRU4Rec model"):
        GRU4RecRecommender.load(str(tmp_path / "other.keras"))
    for bad, message in [({"dropout": 1.0}, "dropout"), ({"max_len": 0}, "max_len"),
                         ({"num_layers": 0}, "num_layers"), ({"d_model": 2.5}, "d_model"),
                         ({"batch_size": True}, "batch_size"), ({"seed": -1}, "seed"),
                         ({"learning_rate": 0.0}, "learning_rate")]:
        with pytest.raises(ValueError, match=f"{message} must be"):
            GRU4RecRecommender(**bad)
