# %% [markdown]
# # Exercises · 04 Matrix factorisation and linear item models
#
# Four questions that rebuild, by hand, the formulas of notebook 04: the prediction of the latent
# factor model, the gradient that SGD follows, the BPR loss of one triple and the closed-form EASE
# weights. Each asks for a small function; the `check()` line under it runs your function on small
# hand-made inputs and says what is wrong, if anything. Stuck? Use `hint()`, then `solution()`. The
# last cell prints your progress.

# %%
import numpy as np

from recsys_lib.exercises.ex04 import *  # noqa: F403  (q1, q2, ..., summary)

# %% [markdown]
# ## Question 1: a prediction by hand
# Write `predict_rating(mu, b_u, b_i, p_u, q_i)` that returns the prediction of equation (1) of
# notebook 04 for one user and one film, as a single number:
#
# $$\hat r_{ui} = \mu + b_u + b_i + p_u^\top q_i$$
#
# `mu`, `b_u` and `b_i` are floats; `p_u` and `q_i` are NumPy arrays of shape `(k,)`.

# %%
def predict_rating(mu: float, b_u: float, b_i: float, p_u: np.ndarray, q_i: np.ndarray) -> float:
    # BEGIN SOLUTION q1
    return float(mu + b_u + b_i + p_u @ q_i)  # p_u @ q_i: the dot product, one number
    # END SOLUTION


q1.check(predict_rating)

# %% [markdown]
# Try it: with $\mu = 3.5$, $b_u = 0.3$, $b_i = -0.2$, $p_u = (1, 0.5)$ and $q_i = (0.4, -0.2)$
# the dot product is $0.4 - 0.1 = 0.3$, so the prediction is 3.9 stars.

# %%
try:
    r_hat = predict_rating(3.5, 0.3, -0.2, np.array([1.0, 0.5]), np.array([0.4, -0.2]))
    print(f"predicted rating: {r_hat:.2f} stars")
except NotImplementedError:
    print("answer question 1 first")

# %% [markdown]
# ## Question 2: the gradient for one rating
# The loss of one observed rating $r$ is
#
# $$\ell = (r - \hat r_{ui})^2 + \lambda \big(b_u^2 + b_i^2 + \lVert p_u \rVert^2 + \lVert q_i
# \rVert^2\big)$$
#
# (no factor 1/2, as in the notebook). Write `grad_p_u(r, mu, b_u, b_i, p_u, q_i, l2)` that returns
# $\partial \ell / \partial p_u$, an array of shape `(k,)`. Derive it first on paper: which terms of
# $\ell$ depend on $p_u$, and what is $\partial \hat r_{ui} / \partial p_u$?

# %%
def grad_p_u(r: float, mu: float, b_u: float, b_i: float, p_u: np.ndarray, q_i: np.ndarray,
             l2: float) -> np.ndarray:
    # BEGIN SOLUTION q2
    e = r - (mu + b_u + b_i + p_u @ q_i)  # the error of the prediction
    # d(e^2)/dp_u = 2 e * de/dp_u = -2 e q_i; d(l2 |p_u|^2)/dp_u = 2 l2 p_u
    return -2 * e * q_i + 2 * l2 * p_u
    # END SOLUTION


q2.check(grad_p_u)

# %% [markdown]
# One SGD step moves $p_u$ against this gradient, `p_u - lr * grad_p_u(...)`. If the film was
# liked more than predicted ($e > 0$), the step pulls $p_u$ towards $q_i$, so the dot product, and
# the next prediction, grows:

# %%
p_u, q_i = np.array([1.0, 0.5]), np.array([0.4, -0.2])
try:
    stepped = p_u - 0.1 * grad_p_u(4.5, 3.5, 0.3, -0.2, p_u, q_i, l2=0.0)
    print(f"p_u . q_i before the step {p_u @ q_i:.3f}, after {stepped @ q_i:.3f}")
except NotImplementedError:
    print("answer question 2 first")

# %% [markdown]
# ## Question 3: the BPR loss of one triple
# BPR scores film $i$ for user $u$ with $\hat x_{ui} = p_u^\top q_i + b_i$ and wants a film the
# user interacted with, $i$, to score above one they did not, $j$. Write
# `bpr_loss(p_u, q_i, q_j, b_i, b_j)` that returns the loss of the triple $(u, i, j)$ without the
# penalty, one number:
#
# $$-\ln \sigma(\hat x_{ui} - \hat x_{uj}), \qquad \sigma(x) = \frac{1}{1 + e^{-x}}$$
#
# It must work for score differences of any size: a triple in the wrong order by 1000 has loss
# 1000, not `inf` (`np.exp(1000)` overflows).

# %%
def bpr_loss(p_u: np.ndarray, q_i: np.ndarray, q_j: np.ndarray, b_i: float, b_j: float) -> float:
    # BEGIN SOLUTION q3
    x = p_u @ (q_i - q_j) + b_i - b_j  # x_ui - x_uj
    # -ln sigmoid(x) = ln(1 + exp(-x)); logaddexp(0, -x) = ln(exp(0) + exp(-x)), computed safely
    return float(np.logaddexp(0.0, -x))
    # END SOLUTION


q3.check(bpr_loss)

# %% [markdown]
# ## Question 4: EASE weights for a tiny matrix
# Write `ease_weights(X, l2)` that returns the EASE weight matrix $B$ of shape
# `(n_items, n_items)` for a binary user-item matrix `X` (a dense NumPy array of shape
# `(n_users, n_items)`) and the regularisation $\lambda$ = `l2`, following equation (18) of
# notebook 04:
#
# $$P = (X^\top X + \lambda I)^{-1}, \qquad B_{ij} = -\frac{P_{ij}}{P_{jj}} \;(i \neq j), \qquad
# B_{jj} = 0$$
#
# The cell after the check uses your function: it scores the films of the matrix below for a user
# who has seen films 0 and 1 (the scores are $x_u B$) and recommends the best film they have not
# seen.

# %%
def ease_weights(X: np.ndarray, l2: float) -> np.ndarray:
    # BEGIN SOLUTION q4
    n = X.shape[1]
    P = np.linalg.inv(X.T @ X + l2 * np.eye(n))  # (n, n)
    B = -P / np.diag(P)  # column j divided by P_jj
    np.fill_diagonal(B, 0.0)  # the constraint diag(B) = 0
    return B
    # END SOLUTION


q4.check(ease_weights)

# %%
X_tiny = np.array([[1, 1, 0, 0], [1, 0, 1, 0], [0, 1, 1, 1], [1, 1, 1, 0]], dtype=float)
x_user = np.array([1.0, 1.0, 0.0, 0.0])  # has seen films 0 and 1
try:
    scores = x_user @ ease_weights(X_tiny, 1.0)  # (n_items,)
    scores[x_user > 0] = -np.inf  # never recommend a film the user has seen
    print("scores:", np.round(scores, 3), "-> recommend film", int(np.argmax(scores)))
except NotImplementedError:
    print("answer question 4 first")

# %% [markdown]
# ## Your progress

# %%
summary()

# %% [solution-only]
assert_all_correct()
