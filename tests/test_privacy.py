"""DP-SGD (per-example gradients, clipping, noise, accounting) and federated averaging."""

from __future__ import annotations

import dp_accounting
import keras
import numpy as np
import pytest
import tensorflow as tf

from recsys_lib.checks import ArgumentError
from recsys_lib.privacy import (
    PooledHistoryModel,
    average_weights,
    clients_by_user_groups,
    clip_gradients,
    dp_epsilon,
    dp_sgd_step,
    federated_averaging,
    noise_for_epsilon,
    one_example_per_user,
    per_example_gradients,
    train_dp_sgd,
)

N_ITEMS, MAX_LEN = 12, 5


def dense_model(n_in=4, n_classes=3, seed=0):
    keras.utils.set_random_seed(seed)
    model = keras.Sequential([keras.Input((n_in,)), keras.layers.Dense(6, activation="tanh"),
                              keras.layers.Dense(n_classes)])
    return model


def masked_embedding_model(seed=0):
    """Embedding (mask_zero) -> masked mean over the history -> Dense logits."""
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((MAX_LEN,), dtype="int32")
    vectors = keras.layers.Embedding(N_ITEMS + 1, 4, mask_zero=True)(inputs)
    pooled = keras.layers.GlobalAveragePooling1D()(vectors)
    return keras.Model(inputs, keras.layers.Dense(N_ITEMS + 1)(pooled))


def pooled_model(seed=0):
    keras.utils.set_random_seed(seed)
    model = PooledHistoryModel(N_ITEMS, embedding_dim=4)
    model(np.zeros((1, MAX_LEN), dtype=np.int32))
    return model


def history_batch(n=7, seed=1, all_padding=False):
    """Left-padded histories of different lengths and targets 1..N_ITEMS; with
    ``all_padding`` the last history is empty (Keras's masked mean of it is 0/0 = NaN, so only
    :class:`PooledHistoryModel` takes it)."""
    rng = np.random.default_rng(seed)
    inputs = rng.integers(1, N_ITEMS + 1, size=(n, MAX_LEN)).astype(np.int32)
    for row in range(n):
        inputs[row, :row % MAX_LEN] = 0
    if all_padding:
        inputs[-1] = 0
    return inputs, rng.integers(1, N_ITEMS + 1, size=n).astype(np.int32)


def dense_batch(n=6, seed=2):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, 4)).astype(np.float32), rng.integers(0, 3, n).astype(np.int32)


def one_at_a_time(model, inputs, targets):
    grads = []
    for x, y in zip(inputs, targets, strict=True):
        with tf.GradientTape() as tape:
            logits = model(x[None])
            loss = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=y[None], logits=logits)
        grads.append([tf.convert_to_tensor(g).numpy()
                      for g in tape.gradient(loss, model.trainable_variables)])
    return [np.stack([g[v] for g in grads]) for v in range(len(grads[0]))]


def mean_loss_gradients(model, inputs, targets):
    with tf.GradientTape() as tape:
        loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(
            labels=targets, logits=model(inputs)))
    grads = [tf.convert_to_tensor(g).numpy()
             for g in tape.gradient(loss, model.trainable_variables)]
    assert all(np.isfinite(g).all() for g in grads)
    return grads


# ------------------------------------------------------------------ per-example gradients
@pytest.mark.parametrize("make, batch", [(dense_model, dense_batch),
                                         (masked_embedding_model, history_batch),
                                         (pooled_model, lambda: history_batch(all_padding=True))])
def test_per_example_gradients_equal_one_example_at_a_time(make, batch):
    model = make()
    inputs, targets = batch()
    expected = one_at_a_time(model, inputs, targets)
    got = per_example_gradients(model, inputs, targets)
    assert len(got) == len(model.trainable_variables)
    for g, e, v in zip(got, expected, model.trainable_variables, strict=True):
        assert g.shape == (len(targets), *v.shape)
        assert np.isfinite(e).all()
        np.testing.assert_allclose(g.numpy(), e, rtol=1e-5, atol=1e-6)
    chunked = per_example_gradients(model, inputs, targets, chunk_size=3)
    for g, c in zip(got, chunked, strict=True):
        np.testing.assert_allclose(c.numpy(), g.numpy(), rtol=1e-6, atol=1e-7)


def test_embedding_gradients_touch_only_the_rows_in_the_history():
    model = masked_embedding_model()
    inputs, targets = history_batch()
    table = per_example_gradients(model, inputs, targets)[0].numpy()   # (batch, n+1, d)
    assert table.shape == (len(targets), N_ITEMS + 1, 4)
    for row in range(len(targets)):
        used = set(inputs[row][inputs[row] > 0].tolist())
        untouched = sorted(set(range(N_ITEMS + 1)) - used)             # padding row 0 too
        np.testing.assert_array_equal(table[row, untouched], 0.0)
        assert (np.abs(table[row, sorted(used)]).sum(axis=1) > 0).all()


# ------------------------------------------------------------------ clipping
def test_clipping_bounds_every_norm_and_keeps_small_gradients():
    rng = np.random.default_rng(0)
    grads = [rng.normal(size=(8, 3, 2)), rng.normal(size=(8, 5))]
    first = np.sqrt((grads[0] ** 2).sum(axis=(1, 2)) + (grads[1] ** 2).sum(axis=1))
    target = np.array([0.3, 0.9, 1.2, 1.4, 2.0, 5.0, 0.1, 10.0])   # norms around C
    grads = [grads[0] * (target / first)[:, None, None], grads[1] * (target / first)[:, None]]
    clip = 1.5
    clipped, norms = clip_gradients(grads, clip)
    expected_norms = np.sqrt((grads[0] ** 2).sum(axis=(1, 2)) + (grads[1] ** 2).sum(axis=1))
    np.testing.assert_allclose(norms.numpy(), expected_norms, rtol=1e-5)
    assert (expected_norms < clip).any() and (expected_norms > clip).any()
    new_norms = np.sqrt(sum((c.numpy() ** 2).reshape(8, -1).sum(axis=1) for c in clipped))
    assert (new_norms <= clip + 1e-6).all()
    small = expected_norms <= clip
    for c, g in zip(clipped, grads, strict=True):
        np.testing.assert_array_equal(c.numpy()[small], g[small].astype(np.float32))
        scale = np.minimum(1, clip / expected_norms).reshape((-1,) + (1,) * (g.ndim - 1))
        np.testing.assert_allclose(c.numpy(), g * scale, rtol=1e-5)   # same direction
    np.testing.assert_allclose(new_norms[~small], clip, rtol=1e-5)


def test_clipping_rejects_bad_arguments():
    with pytest.raises(ArgumentError, match="l2_norm_clip"):
        clip_gradients([np.ones((2, 3))], 0.0)
    with pytest.raises(ValueError, match="same batch size"):
        clip_gradients([np.ones((2, 3)), np.ones((3, 3))], 1.0)
    with pytest.raises(ValueError, match="none"):
        clip_gradients([], 1.0)


# ------------------------------------------------------------------ DP-SGD step
def test_dp_sgd_step_without_noise_or_clipping_is_a_plain_sgd_step():
    model = masked_embedding_model()
    inputs, targets = history_batch()
    before = [w.copy() for w in model.get_weights()]
    grads = mean_loss_gradients(model, inputs, targets)
    dp_sgd_step(model, keras.optimizers.SGD(0.5), inputs, targets, l2_norm_clip=1e6,
                noise_multiplier=0.0, expected_batch_size=len(targets), seed=0)
    for w, b, g in zip(model.get_weights(), before, grads, strict=True):
        np.testing.assert_allclose(w, b - 0.5 * g, rtol=1e-5, atol=1e-7)


def test_dp_sgd_step_divides_clipped_sum_by_expected_batch_size():
    model = dense_model()
    inputs, targets = dense_batch()
    before = [w.copy() for w in model.get_weights()]
    clipped, _ = clip_gradients(per_example_gradients(model, inputs, targets), 0.1)
    out = dp_sgd_step(model, keras.optimizers.SGD(1.0), inputs, targets, l2_norm_clip=0.1,
                      noise_multiplier=0.0, expected_batch_size=10.0, seed=0)
    assert out["batch_size"] == len(targets) and 0 <= out["clipped_fraction"] <= 1
    for w, b, c in zip(model.get_weights(), before, clipped, strict=True):
        np.testing.assert_allclose(w, b - c.numpy().sum(axis=0) / 10.0, rtol=1e-5, atol=1e-7)


def test_dp_sgd_noise_has_standard_deviation_sigma_times_c():
    model = keras.Sequential([keras.Input((50,)), keras.layers.Dense(200)])  # 10,200 weights
    before = np.concatenate([w.ravel() for w in model.get_weights()])
    empty = (np.zeros((0, 50), np.float32), np.zeros(0, np.int32))           # zero gradient
    out = dp_sgd_step(model, keras.optimizers.SGD(1.0), *empty, l2_norm_clip=0.5,
                      noise_multiplier=3.0, expected_batch_size=1.0, seed=4)
    assert out["batch_size"] == 0
    noise = before - np.concatenate([w.ravel() for w in model.get_weights()])
    assert abs(noise.std() - 1.5) < 0.05 and abs(noise.mean()) < 0.05
    # the same seed draws the same noise; the expected batch size divides it
    model.set_weights([np.zeros_like(w) for w in model.get_weights()])
    dp_sgd_step(model, keras.optimizers.SGD(1.0), *empty, l2_norm_clip=0.5,
                noise_multiplier=3.0, expected_batch_size=4.0, seed=4)
    again = -np.concatenate([w.ravel() for w in model.get_weights()])
    np.testing.assert_allclose(again, noise / 4, rtol=1e-4, atol=1e-6)


def test_train_dp_sgd_reports_steps_epsilon_and_learns_without_noise():
    rng = np.random.default_rng(0)
    inputs = rng.normal(size=(200, 4)).astype(np.float32)
    targets = (inputs[:, 0] > 0).astype(np.int32) + (inputs[:, 1] > 0)     # learnable
    model = dense_model()
    result = train_dp_sgd(model, inputs, targets, epochs=3, sampling_rate=0.5,
                          l2_norm_clip=1.0, noise_multiplier=0.0, learning_rate=0.5, seed=0)
    assert result["steps"] == 6 and result["epsilon"] == float("inf")
    assert result["history"]["loss"][-1] < result["history"]["loss"][0]
    assert 70 < result["mean_batch_size"] < 130                              # q n = 100
    private = train_dp_sgd(dense_model(), inputs, targets, epochs=2, batch_size=50,
                           l2_norm_clip=1.0, noise_multiplier=1.1, learning_rate=0.1,
                           delta=1e-4, seed=0)
    assert private["steps"] == 8 and private["sampling_rate"] == pytest.approx(0.25)
    assert private["history"]["epsilon"] == [dp_epsilon(1.1, 0.25, 4, 1e-4),
                                             dp_epsilon(1.1, 0.25, 8, 1e-4)]


def test_train_dp_sgd_redraws_one_example_per_user_each_epoch():
    histories = [np.arange(1, 9), np.arange(3, 12), np.array([5, 2, 7])]
    draws = []

    def redraw(rng):
        draws.append(one_example_per_user(histories, MAX_LEN, rng))
        return draws[-1]

    inputs, targets = one_example_per_user(histories, MAX_LEN, 0)
    result = train_dp_sgd(pooled_model(), inputs, targets, epochs=3, sampling_rate=1.0,
                          l2_norm_clip=1.0, noise_multiplier=1.0, learning_rate=0.1,
                          redraw=redraw)
    assert len(draws) == 2 and result["mean_batch_size"] == 3.0             # q = 1
    with pytest.raises(ValueError, match="redraw must return"):
        train_dp_sgd(pooled_model(), inputs, targets, epochs=2, sampling_rate=1.0,
                     l2_norm_clip=1.0, noise_multiplier=1.0, learning_rate=0.1,
                     redraw=lambda rng: (inputs[:2], targets[:2]))


def test_train_dp_sgd_rejects_bad_arguments():
    inputs, targets = dense_batch()
    common = dict(epochs=1, l2_norm_clip=1.0, noise_multiplier=1.0, learning_rate=0.1)
    with pytest.raises(ValueError, match="exactly one"):
        train_dp_sgd(dense_model(), inputs, targets, **common)
    with pytest.raises(ValueError, match="exactly one"):
        train_dp_sgd(dense_model(), inputs, targets, sampling_rate=0.5, batch_size=2, **common)
    with pytest.raises(ArgumentError, match="sampling_rate"):
        train_dp_sgd(dense_model(), inputs, targets, sampling_rate=1.5, **common)
    with pytest.raises(ArgumentError, match="batch_size"):
        train_dp_sgd(dense_model(), inputs, targets, batch_size=7, **common)
    with pytest.raises(ValueError, match="one row per target"):
        train_dp_sgd(dense_model(), inputs, targets[:-1], sampling_rate=0.5, **common)
    with pytest.raises(ValueError, match="integer"):
        train_dp_sgd(dense_model(), inputs, targets * 1.0, sampling_rate=0.5, **common)
    with pytest.raises(ArgumentError, match="noise_multiplier"):
        train_dp_sgd(dense_model(), inputs, targets, sampling_rate=0.5,
                     **{**common, "noise_multiplier": -1.0})


# ------------------------------------------------------------------ accounting
@pytest.mark.parametrize("accountant", ["rdp", "pld"])
def test_dp_epsilon_is_dp_accounting_on_the_poisson_gaussian_event(accountant):
    sigma, q, steps, delta = 2.0, 0.1, 50, 1e-5
    event = dp_accounting.SelfComposedDpEvent(
        dp_accounting.PoissonSampledDpEvent(q, dp_accounting.GaussianDpEvent(sigma)), steps)
    direct = (dp_accounting.rdp.RdpAccountant() if accountant == "rdp"
              else dp_accounting.pld.PLDAccountant()).compose(event).get_epsilon(delta)
    assert dp_epsilon(sigma, q, steps, delta, accountant=accountant) == pytest.approx(direct)
    assert 0 < direct < 10


def test_dp_epsilon_falls_with_noise_and_grows_with_steps_and_sampling():
    sigmas = [0.8, 1.0, 1.5, 3.0]
    eps = [dp_epsilon(s, 0.1, 100, 1e-5) for s in sigmas]
    assert all(a > b for a, b in zip(eps[:-1], eps[1:], strict=True))
    eps = [dp_epsilon(1.0, 0.1, t, 1e-5) for t in (1, 10, 100, 1000)]
    assert all(a < b for a, b in zip(eps[:-1], eps[1:], strict=True))
    assert dp_epsilon(1.0, 0.05, 100, 1e-5) < dp_epsilon(1.0, 0.1, 100, 1e-5)
    assert dp_epsilon(0.0, 0.1, 100, 1e-5) == float("inf")
    # the RDP bound is looser than the PLD accounting
    assert dp_epsilon(2.0, 0.1, 50, 1e-5, "pld") < dp_epsilon(2.0, 0.1, 50, 1e-5, "rdp")


@pytest.mark.parametrize("bad, match", [
    (dict(sampling_rate=0.0), "sampling_rate"), (dict(sampling_rate=1.2), "sampling_rate"),
    (dict(steps=0), "steps"), (dict(steps=2.5), "steps"), (dict(delta=0.0), "delta"),
    (dict(delta=1.0), "delta"), (dict(noise_multiplier=-0.1), "noise_multiplier"),
    (dict(accountant="moments"), "accountant")])
def test_dp_epsilon_rejects_bad_arguments(bad, match):
    args = dict(noise_multiplier=1.0, sampling_rate=0.1, steps=10, delta=1e-5) | bad
    with pytest.raises(ArgumentError, match=match):
        dp_epsilon(**args)


def test_noise_for_epsilon_inverts_dp_epsilon():
    target = 2.0
    sigma = noise_for_epsilon(target, 0.1, 100, 1e-5)
    assert dp_epsilon(sigma, 0.1, 100, 1e-5) <= target
    assert dp_epsilon(sigma * 0.99, 0.1, 100, 1e-5) > target         # not much more noise
    assert dp_epsilon(sigma, 0.1, 100, 1e-5) == pytest.approx(target, rel=0.02)
    rough = [noise_for_epsilon(e, 0.1, 100, 1e-5, tolerance=0.05) for e in (1.0, 4.0)]
    assert rough[0] > sigma > rough[1]
    with pytest.raises(ArgumentError, match="target_epsilon"):
        noise_for_epsilon(0.0, 0.1, 100, 1e-5)
    with pytest.raises(ArgumentError, match="sampling_rate"):
        noise_for_epsilon(1.0, 0.0, 100, 1e-5)
    with pytest.raises(ValueError, match="10,000"):
        noise_for_epsilon(1e-6, 1.0, 10_000, 1e-10)


# ------------------------------------------------------------------ privacy unit
def test_one_example_per_user_cuts_each_history_once():
    # item index = position + 1, so "later" means "larger"
    histories = {u: np.arange(1, length + 1) for u, length in
                 zip("abcde", (2, 3, 8, 20, 60), strict=True)}
    inputs, targets = one_example_per_user(histories, max_len=MAX_LEN, rng=0)
    assert inputs.shape == (5, MAX_LEN) and targets.shape == (5,)
    for row, history in enumerate(histories.values()):
        cut = int(targets[row]) - 1
        assert 1 <= cut < len(history) and history[cut] == targets[row]
        expected = history[:cut][-MAX_LEN:]
        np.testing.assert_array_equal(inputs[row, MAX_LEN - len(expected):], expected)
        np.testing.assert_array_equal(inputs[row, :MAX_LEN - len(expected)], 0)
        assert (inputs[row][inputs[row] > 0] < targets[row]).all()     # target comes later
    same = one_example_per_user(list(histories.values()), MAX_LEN, np.random.default_rng(0))
    np.testing.assert_array_equal(same[1], targets)
    cuts = [one_example_per_user([np.arange(1, 5)], 3, seed)[1][0] for seed in range(60)]
    assert set(cuts) == {2, 3, 4}                                      # every cut is drawn


def test_one_example_per_user_rejects_short_histories_and_padding():
    with pytest.raises(ValueError, match="at least 2"):
        one_example_per_user([np.array([1, 2]), np.array([3])], 5, 0)
    with pytest.raises(ValueError, match=">= 1"):
        one_example_per_user([np.array([0, 2, 3])], 5, 0)
    with pytest.raises(ValueError, match="empty"):
        one_example_per_user([], 5, 0)
    with pytest.raises(ArgumentError, match="max_len"):
        one_example_per_user([np.array([1, 2])], 0, 0)


# ------------------------------------------------------------------ federated averaging
def test_fedavg_with_one_full_batch_client_is_one_central_sgd_step():
    model = masked_embedding_model()
    inputs, targets = history_batch()
    before = [w.copy() for w in model.get_weights()]
    grads = mean_loss_gradients(model, inputs, targets)
    history = federated_averaging(model, [(inputs, targets)], rounds=1, clients_per_round=1,
                                  local_epochs=1, local_batch_size=len(targets),
                                  client_learning_rate=0.3, seed=0)
    for w, b, g in zip(model.get_weights(), before, grads, strict=True):
        np.testing.assert_allclose(w, b - 0.3 * g, rtol=1e-5, atol=1e-7)
    n_bytes = sum(w.nbytes for w in before)
    assert history[0]["bytes_up"] == n_bytes and history[0]["clients"] == [0]
    assert history[0]["examples"] == len(targets) and np.isfinite(history[0]["loss"])


def test_fedavg_server_takes_the_example_weighted_mean_of_client_weights():
    inputs, targets = dense_batch(n=9)
    clients = [(inputs[:2], targets[:2]), (inputs[2:], targets[2:])]
    start = dense_model().get_weights()
    solo = []
    for client in clients:
        model = dense_model()
        model.set_weights(start)
        federated_averaging(model, [client], rounds=1, clients_per_round=1, local_epochs=2,
                            local_batch_size=16, client_learning_rate=0.5)
        solo.append(model.get_weights())
    model = dense_model()
    model.set_weights(start)
    history = federated_averaging(model, clients, rounds=1, clients_per_round=2,
                                  local_epochs=2, local_batch_size=16, client_learning_rate=0.5)
    for w, a, b in zip(model.get_weights(), *solo, strict=True):
        np.testing.assert_allclose(w, (2 * a + 7 * b) / 9, rtol=1e-5, atol=1e-7)
    assert history[0]["bytes_up"] == 2 * sum(w.nbytes for w in start)


def test_average_weights_by_hand_and_errors():
    a, b = [np.array([1.0, 2.0]), np.array([[0.0]])], [np.array([4.0, 8.0]), np.array([[3.0]])]
    out = average_weights([a, b], [1, 2])
    np.testing.assert_allclose(out[0], [3.0, 6.0])
    np.testing.assert_allclose(out[1], [[2.0]])
    with pytest.raises(ValueError, match="positive example count"):
        average_weights([a, b], [1, 0])
    with pytest.raises(ValueError, match="positive example count"):
        average_weights([a, b], [1])
    with pytest.raises(ValueError, match="different shapes"):
        average_weights([a, [np.ones(3), b[1]]], [1, 1])


def test_clients_by_user_groups_keeps_every_example_and_each_user_in_one_client():
    rng = np.random.default_rng(0)
    users = rng.integers(0, 10, 40)
    inputs, targets = np.arange(40)[:, None] * np.ones((1, 3)), np.arange(40)
    clients = clients_by_user_groups(inputs, targets, users, n_clients=3, seed=1)
    assert len(clients) == 3
    assert sorted(np.concatenate([y for _, y in clients]).tolist()) == list(range(40))
    for x, y in clients:
        np.testing.assert_array_equal(x[:, 0], y)
    owners = [set(users[y]) for _, y in clients]
    assert all(not (owners[i] & owners[j]) for i in range(3) for j in range(i + 1, 3))
    with pytest.raises(ArgumentError, match="n_clients"):
        clients_by_user_groups(inputs, targets, users, n_clients=11)
    with pytest.raises(ValueError, match="one entry per example"):
        clients_by_user_groups(inputs, targets, users[:-1], n_clients=2)


def test_fedavg_rejects_bad_arguments():
    inputs, targets = dense_batch()
    model = dense_model()
    with pytest.raises(ArgumentError, match="clients_per_round"):
        federated_averaging(model, [(inputs, targets)], rounds=1, clients_per_round=2)
    with pytest.raises(ValueError, match="no examples"):
        federated_averaging(model, [(inputs, targets), (inputs[:0], targets[:0])], rounds=1,
                            clients_per_round=1)
    with pytest.raises(ValueError, match="empty"):
        federated_averaging(model, [], rounds=1, clients_per_round=1)
    with pytest.raises(ArgumentError, match="rounds"):
        federated_averaging(model, [(inputs, targets)], rounds=0, clients_per_round=1)


def test_pooled_history_model_scores_the_mean_of_real_items_against_every_item():
    model = pooled_model()
    model.item_bias.assign(np.arange(N_ITEMS + 1, dtype=np.float32) / 10)
    table = model.item_embedding.embeddings.numpy()
    logits = model(np.array([[0, 0, 0, 3, 7], [0, 0, 0, 0, 0]], np.int32)).numpy()
    expected = (table[[3, 7]].mean(axis=0) @ table.T + np.arange(N_ITEMS + 1) / 10)
    np.testing.assert_allclose(logits[0, 1:], expected[1:], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(logits[1, 1:], np.arange(1, N_ITEMS + 1) / 10, atol=1e-6)
    assert (logits[:, 0] < -1e8).all()                                 # never padding
    clone = PooledHistoryModel.from_config(model.get_config())
    assert (clone.n_items, clone.embedding_dim, clone.use_item_bias) == (N_ITEMS, 4, True)
