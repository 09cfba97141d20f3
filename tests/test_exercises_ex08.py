"""Checkers of ex08: a correct answer passes, wrong answers fail with a useful message."""

import numpy as np
from exercise_harness import make_case_tests

from recsys_lib.attention import keras_mha_weights_by_name, mha_parameter_count


def _params(d, h, k, use_bias=True):
    return mha_parameter_count(d, h, k, use_bias=use_bias)


def _split(x, h):
    b, t, width = x.shape
    return x.reshape(b, t, h, width // h).transpose(0, 2, 1, 3)


def _merge(x):
    b, h, t, d = x.shape
    return x.transpose(0, 2, 1, 3).reshape(b, t, h * d)


def _one_head(x, w_q, w_k, w_v, scale=None, axis=1):
    q, k, v = x @ w_q, x @ w_k, x @ w_v
    s = q @ k.T * (1 / np.sqrt(q.shape[1]) if scale is None else scale)
    e = np.exp(s - s.max(axis=axis, keepdims=True))
    w = e / e.sum(axis=axis, keepdims=True)
    return w @ v, w


def _w_o(layer):
    kernel = keras_mha_weights_by_name(layer)["W_O"]
    return kernel.reshape(-1, kernel.shape[-1])


def _kernel(layer, name):
    return keras_mha_weights_by_name(layer)[name]


# question -> (correct answer, [(wrong answer, words the message must contain), ...])
CASES = {
    "q1": (_params,
           [(lambda d, h, k, use_bias=True: _params(d, h, k, False), "no biases"),
            (lambda d, h, k, use_bias=True: _params(d, h, k, use_bias) - (d if use_bias else 0),
             "output bias"),
            (lambda d, h, k, use_bias=True: _params(d, h, k, True), "use_bias=False"),
            (lambda d, h, k, use_bias=True: 3 * d * h * k + (3 * h * k + d if use_bias else 0),
             "not W^O"),
            (lambda d, h, k, use_bias=True: _params(d, 1, k, use_bias), "size of each head"),
            (lambda d, h, k, use_bias=True: _params(d, h, max(k // h, 1), use_bias),
             "num_heads * key_dim"),
            (lambda d, h, k, use_bias=True: 4 * d * d + (4 * d if use_bias else 0),
             "4 d_model^2"),
            (lambda d, h, k, use_bias=True: float(_params(d, h, k, use_bias)), "return an int"),
            (lambda d, h, k, use_bias=True: _params(d, h, k, use_bias) + 1, "expected")]),
    "q2": ((_split, _merge),
           [(_split, "pair"),
            ((lambda x, h: x.reshape(x.shape[0], x.shape[1], h, -1), _merge),
             "move the head axis"),
            ((lambda x, h: x.reshape(x.shape[0], h, x.shape[1], -1), _merge),
             "mixes positions and heads"),
            ((lambda x, h: x.reshape(x.shape[0], x.shape[1], -1, h).transpose(0, 3, 1, 2),
              _merge), "interleaves"),
            ((lambda x, h: x[:, None], _merge), "shape (2, 3, 4, 2)"),
            ((_split, lambda x: x.reshape(x.shape[0], x.shape[2], -1)), "transpose"),
            ((_split, lambda x: x.transpose(0, 2, 3, 1).reshape(x.shape[0], x.shape[2], -1)),
             "give x back"),
            ((_split, lambda x: x), "merge_heads")]),
    "q3": (_one_head,
           [(lambda *a: _one_head(*a, scale=1.0), "did not scale"),
            (lambda x, *w: _one_head(x, *w, scale=1 / np.sqrt(x.shape[1])), "sqrt(d_model)"),
            (lambda *a: _one_head(*a, axis=0), "down each column"),
            (lambda *a: (_one_head(*a)[0], _one_head(*a)[1].T), "transposed"),
            (lambda x, *w: (_one_head(x, *w)[1] @ x, _one_head(x, *w)[1]), "output"),
            (lambda *a: _one_head(*a)[1], "pair"),
            (lambda *a: (_one_head(*a)[0], _one_head(*a)[1][:, :2]), "shape"),
            (lambda *a: (_one_head(*a)[0], np.ones_like(_one_head(*a)[1]) / 3), "should be")]),
    "q4": (_w_o,
           [(lambda layer: _kernel(layer, "W_O"), "as Keras stores it"),
            (lambda layer: _w_o(layer).T, "transposed"),
            (lambda layer: _kernel(layer, "W_O").transpose(1, 0, 2).reshape(
                -1, _kernel(layer, "W_O").shape[-1]), "wrong order"),
            (lambda layer: _kernel(layer, "W_Q").reshape(_kernel(layer, "W_Q").shape[0], -1),
             "query/kernel"),
            (lambda layer: _kernel(layer, "b_O"), "attention_output/bias"),
            (lambda layer: np.zeros((3, 3)), "expected an array of shape")]),
}

(test_correct, test_wrong, test_unanswered, test_cases_cover_every_question) = make_case_tests(
    "ex08", CASES)
