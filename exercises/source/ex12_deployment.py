# %% [markdown]
# # Exercises · 12 Deployment: a real-time recommendation service
#
# Four questions on the decisions notebook 12 makes when it turns a trained model into a
# service: which requests to refuse, how to read a latency distribution, which approximate index
# to deploy, and how many users an A/B test needs. Each asks for a small Python function; the
# `check()` line under it runs your function on hand-made inputs and says what is wrong, if
# anything. Nothing here starts a server or needs FAISS. Stuck? Use `hint()`, then `solution()`.
# The last cell prints your progress.

# %%
import math
from statistics import NormalDist

import numpy as np
import pandas as pd

from recsys_lib.exercises.ex12 import *  # noqa: F403  (q1, q2, ..., summary, LATENCY_TABLE)

# %% [markdown]
# ## Question 1: which fields of a request are wrong?
# The service of notebook 12 refuses a bad request with a 4xx status and a message that names
# the field, instead of guessing or crashing. Write `request_problems(payload, max_k,
# max_history)` that receives the decoded JSON body of a `POST /recommend` request and returns
# the **list of the names of the fields that have a problem** (an empty list for a valid
# request), following the service's rules:
#
# * the body must be a JSON object (a `dict`); if it is not, return `["body"]` and nothing else;
# * `"history"` is required and must be a list of integers, at most `max_history` of them (an
#   empty list is valid: a new user; an integer that is not a catalogue id is valid too: the
#   service skips it and lists it in `unknown_items`);
# * `"k"` is optional (the default is 10); when present it must be an integer with
#   `1 <= k <= max_k`;
# * any other key is a problem (a typo such as `"K"` would otherwise be ignored silently): put
#   its name in the list.
#
# JSON has no booleans-as-numbers and no "integers with a fractional part": `true`, `2.0` and
# `"2"` are not item ids, and not a valid `k`. Report every field with a problem, in any order.

# %%
def request_problems(payload, max_k: int, max_history: int) -> list[str]:
    # BEGIN SOLUTION q1
    def is_int(x):
        return isinstance(x, int) and not isinstance(x, bool)  # bool is a subclass of int

    if not isinstance(payload, dict):
        return ["body"]
    problems = []
    history = payload.get("history")
    if (not isinstance(history, list) or len(history) > max_history
            or not all(is_int(item) for item in history)):
        problems.append("history")
    if "k" in payload and not (is_int(payload["k"]) and 1 <= payload["k"] <= max_k):
        problems.append("k")
    return problems + [key for key in payload if key not in ("history", "k")]
    # END SOLUTION


q1.check(request_problems)

# %% [markdown]
# Which of your rules would a service that *guessed* (turning `"2"` into 2, `2.5` into 2,
# ignoring unknown keys) break silently, and why is a clear 422 better for the client that sent
# the request?

# %% [markdown]
# ## Question 2: p50 and p99, exactly as `np.percentile` computes them
# Latency budgets are written as percentiles: "p99 under 50 ms" means 99% of the requests take
# at most 50 ms. Write `percentile(latencies, q)` that returns the `q`-th percentile
# (`0 <= q <= 100`) of a NumPy array of latencies, with the default method of `np.percentile`:
# sort the values, take the position $p = \frac{q}{100}(n - 1)$ on 0-based indices, and
# interpolate linearly between the sorted values at $\lfloor p \rfloor$ and
# $\lfloor p \rfloor + 1$. Do not call `np.percentile` or `np.quantile` (the checker compares you
# with them), and do not change the caller's array.

# %%
def percentile(latencies: np.ndarray, q: float) -> float:
    # BEGIN SOLUTION q2
    s = np.sort(np.asarray(latencies, dtype=float))  # a sorted copy
    p = q / 100 * (len(s) - 1)  # 0 for the minimum, n - 1 for the maximum
    lo = math.floor(p)
    hi = min(lo + 1, len(s) - 1)
    return float(s[lo] + (p - lo) * (s[hi] - s[lo]))
    # END SOLUTION


q2.check(percentile)

# %% [markdown]
# With 200 requests, how many of them lie above the p99? What does that say about how many
# requests a load test needs before its p99 means much?

# %% [markdown]
# ## Question 3: the fastest index setting that is accurate enough
# Notebook 12 measures approximate nearest-neighbour indexes (FAISS IVF with several `nprobe`,
# HNSW with several `efSearch`, and the exact flat index) by their recall@10 against the exact
# top 10 and their time per query. Here is such a table:

# %%
LATENCY_TABLE

# %% [markdown]
# Write `choose_setting(table, min_recall)` that returns the `setting` (a string) of the row with
# the **lowest `ms_per_query` among the rows whose `recall` is at least `min_recall`**, or `None`
# when no row reaches it. The table may be in any order and latency need not grow with recall.

# %%
def choose_setting(table: pd.DataFrame, min_recall: float):
    # BEGIN SOLUTION q3
    ok = table[table["recall"] >= min_recall]  # accurate enough (the target is inclusive)
    if ok.empty:
        return None
    return ok.loc[ok["ms_per_query"].idxmin(), "setting"]  # and then the fastest
    # END SOLUTION


q3.check(choose_setting)

# %% [markdown]
# The table's latencies were measured once. If you re-ran the measurement, could the answer
# change? What would you do before committing to a setting in production?

# %% [markdown]
# ## Question 4: how many users does an A/B test need?
# A new recommender is expected to raise the conversion rate from $p_0$ to
# $p_1 = p_0(1 + \text{lift})$ (a *relative* lift). The two groups are compared with a two-sided
# two-proportion z-test at level $\alpha$, and the test should detect the lift with probability
# `power`. With $\bar p = (p_0 + p_1)/2$ and $z_x$ the standard normal quantile
# (`NormalDist().inv_cdf(x)`), the number of users **in each group** is
#
# $$n = \left\lceil \frac{\left(z_{1-\alpha/2}\sqrt{2\bar p(1-\bar p)} +
# z_{\text{power}}\sqrt{p_0(1-p_0) + p_1(1-p_1)}\right)^2}{(p_1 - p_0)^2} \right\rceil .$$
#
# Write `ab_sample_size(p0, lift, alpha, power)` that returns it as an `int`.

# %%
def ab_sample_size(p0: float, lift: float, alpha: float = 0.05, power: float = 0.8) -> int:
    # BEGIN SOLUTION q4
    p1 = p0 * (1 + lift)  # a relative lift
    z = NormalDist().inv_cdf
    p_bar = (p0 + p1) / 2
    spread = (z(1 - alpha / 2) * math.sqrt(2 * p_bar * (1 - p_bar))  # the test's threshold
              + z(power) * math.sqrt(p0 * (1 - p0) + p1 * (1 - p1)))  # the power asked for
    return math.ceil(spread**2 / (p1 - p0) ** 2)
    # END SOLUTION


q4.check(ab_sample_size)

# %% [markdown]
# Halve the lift you want to detect: by how much does `n` grow? (Try it, then explain it with the
# denominator of the formula.) What does that mean for testing small improvements on a site with
# few visitors?

# %% [solution-only]
print(f"10% lift on 5%: {ab_sample_size(0.05, 0.10):,} users per group; "
      f"5% lift: {ab_sample_size(0.05, 0.05):,} "
      f"({ab_sample_size(0.05, 0.05) / ab_sample_size(0.05, 0.10):.1f}x)")

# %% [markdown]
# ## Your progress

# %%
summary()

# %% [solution-only]
assert_all_correct()
