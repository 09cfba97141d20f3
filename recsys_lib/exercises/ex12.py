"""Checks for the exercises of notebook 12 (deployment: a real-time recommendation service).

Used by ``exercises/12_deployment.ipynb``: ``from recsys_lib.exercises.ex12 import *``.
Every expected value is computed here on small hand-made inputs: the request rules of
question 1 are those stated in the exercise (the service's own, notebook 12 section 5), the
percentiles of question 2 come from ``np.percentile`` (linear interpolation), the tables of
question 3 are written out below, and the sample size of question 4 is the two-proportion
z-test formula of notebook 12 section 9 (normal quantiles from :mod:`statistics`). Nothing
here imports TensorFlow, FastAPI or FAISS.
"""

from __future__ import annotations

import math
import numbers
from statistics import NormalDist

import numpy as np
import pandas as pd

from recsys_lib.exercises.core import ExerciseSet, Incorrect, Question, call_answer

__all__ = ["q1", "q2", "q3", "q4", "summary", "assert_all_correct", "EXERCISES",
           "LATENCY_TABLE"]


# ----------------------------------------------------------------------------------- q1
def _is_int(value) -> bool:
    """A JSON integer: an int that is not a bool (True is an int in Python, not in JSON)."""
    return isinstance(value, int) and not isinstance(value, bool)


def _q1_reference(payload, max_k: int, max_history: int) -> list[str]:
    if not isinstance(payload, dict):
        return ["body"]
    problems = []
    history = payload.get("history")
    if (not isinstance(history, list) or len(history) > max_history
            or not all(_is_int(item) for item in history)):
        problems.append("history")
    if "k" in payload and not (_is_int(payload["k"]) and 1 <= payload["k"] <= max_k):
        problems.append("k")
    return problems + [key for key in payload if key not in ("history", "k")]


_Q1_MAX_K, _Q1_MAX_HISTORY = 20, 5
#: (payload, why the expected answer is what it is): explanations shown for a wrong answer
_Q1_CASES = [
    ({"history": [3, 1, 2], "k": 5}, "a valid request"),
    ({"history": [3, 1, 2]}, "k is optional (the default is 10), so a payload without k is "
                             "valid"),
    ({"history": [], "k": 3}, "an empty history is valid: it is a new user (cold start), who "
                              "gets the popularity fallback"),
    ({"history": [-4, 0, 10**9]}, "integers that are not in the catalogue are not a request "
                                  "error: the service skips them and lists them in "
                                  "unknown_items"),
    ({"history": [1, 2, 3, 4, 5], "k": 20}, "the limits are inclusive: a history of exactly "
                                            "max_history items and k = max_k are allowed"),
    ({"k": 5}, "history is required: a payload without it has a problem in 'history'"),
    ({"history": None}, "null is not a list: 'history' has a problem"),
    ({"history": "123"}, "a string is not a list of ids, even if each of its characters is "
                         "a digit: 'history' must be a list"),
    ({"history": [1, True]}, "True is not an item id. In Python bool is a subclass of int, so "
                             "isinstance(True, int) is True: test "
                             "isinstance(x, int) and not isinstance(x, bool)"),
    ({"history": [1, 2.0]}, "2.0 is a float, not an integer id; a service must not guess"),
    ({"history": [1, "2"]}, "'2' is a string, not an integer id"),
    ({"history": [1, 2, 3, 4, 5, 6]}, "a history longer than max_history has a problem"),
    ({"history": [1], "k": 0}, "k must be at least 1"),
    ({"history": [1], "k": -3}, "k must be at least 1"),
    ({"history": [1], "k": 21}, "k above max_k has a problem"),
    ({"history": [1], "k": True}, "True is not a number of items (bool is a subclass of int "
                                  "in Python)"),
    ({"history": [1], "k": 2.5}, "k must be an integer"),
    ({"history": [1], "k": "10"}, "k must be an integer, not a string"),
    ({"history": [1], "k": None}, "k: null is not a number (leave k out to get the default)"),
    ({"history": [1.5, "x"], "k": 0}, "report every field that has a problem, not only the "
                                      "first one"),
    ({"k": 500}, "report every field that has a problem, not only the first one"),
    ({"history": [1, 2], "K": 5}, "an unknown field is a problem (here a typo for 'k', which "
                                  "would otherwise be ignored silently and give the default "
                                  "k): name it in the list"),
    ({"histroy": [1, 2]}, "a typo in a field name gives two problems: the unknown field "
                          "'histroy', and the missing 'history'"),
    ([1, 2, 3], "the body must be a JSON object; a list gives ['body'] and nothing else"),
    ("history", "the body must be a JSON object; a string gives ['body']"),
    (None, "the body must be a JSON object; null gives ['body']"),
]


def _fresh(payload):
    """A deep copy of a small JSON-like payload (the learner may modify what they get)."""
    if isinstance(payload, dict):
        return {key: _fresh(value) for key, value in payload.items()}
    if isinstance(payload, list):
        return [_fresh(value) for value in payload]
    return payload


def _check_request_problems(func) -> None:
    for payload, why in _Q1_CASES:
        got = call_answer(func, _fresh(payload), _Q1_MAX_K, _Q1_MAX_HISTORY)
        if not isinstance(got, list | tuple | set):
            raise Incorrect(f"Return a list of field names such as ['history', 'k'] (an empty "
                            f"list for a valid payload), got {type(got).__name__} for "
                            f"{payload!r}")
        if not all(isinstance(name, str) for name in got):
            raise Incorrect(f"Return the names of the fields as strings ('history', 'k' or "
                            f"'body'), got {list(got)!r} for {payload!r}")
        want = _q1_reference(payload, _Q1_MAX_K, _Q1_MAX_HISTORY)
        if set(got) == set(want):
            continue
        raise Incorrect(f"For the payload {payload!r} (max_k={_Q1_MAX_K}, "
                        f"max_history={_Q1_MAX_HISTORY}) you returned {sorted(got)}, "
                        f"expected {want}: {why}")


# ----------------------------------------------------------------------------------- q2
#: (latencies in ms, percentile); the first arrays are not sorted on purpose
_Q2_CASES = [
    ([12.0, 3.0, 7.5, 4.0, 30.0, 5.5, 6.0], 50),
    ([12.0, 3.0, 7.5, 4.0, 30.0, 5.5, 6.0], 90),
    ([12.0, 3.0, 7.5, 4.0, 30.0, 5.5, 6.0], 99),
    ([9.0, 1.0, 4.0, 2.0], 50),
    ([9.0, 1.0, 4.0, 2.0, 3.0, 8.0, 2.5, 40.0, 6.0, 5.0, 7.0], 95),
    ([4.2], 99),
    ([5.0, 2.0, 8.0], 0),
    ([5.0, 2.0, 8.0], 100),
]


def _same(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)


def _interpolate(values: np.ndarray, position: float) -> float:
    position = min(max(position, 0.0), len(values) - 1.0)
    low = math.floor(position)
    high = min(low + 1, len(values) - 1)
    return float(values[low] + (position - low) * (values[high] - values[low]))


def _q2_mistakes(values: list, q: float) -> dict[str, float]:
    data = np.asarray(values, dtype=float)
    ordered = np.sort(data)
    n = len(data)
    return {
        "unsorted": _interpolate(data, q / 100 * (n - 1)),
        "fraction": float(np.percentile(data, q / 100)),
        "times_n": _interpolate(ordered, q / 100 * n),
        "nearest_rank": float(np.percentile(data, q, method="inverted_cdf")),
        "lower": float(np.percentile(data, q, method="lower")),
        "higher": float(np.percentile(data, q, method="higher")),
        "nearest": float(np.percentile(data, q, method="nearest")),
        "weibull": float(np.percentile(data, q, method="weibull")),
    }


_Q2_MESSAGES = {
    "unsorted": "you interpolated between values in the order they arrived; sort them first "
                "(np.sort returns a sorted copy)",
    "fraction": "q is a percentile between 0 and 100 (99 means the 99th percentile), not a "
                "fraction: the position is q / 100 * (n - 1)",
    "times_n": "the position of the q-th percentile among n sorted values is q / 100 * (n - 1) "
               "(0 for the minimum, n - 1 for the maximum), not q / 100 * n",
    "nearest_rank": "that is the nearest-rank percentile (the value at rank ceil(q / 100 * n)), "
                    "a common textbook definition; np.percentile interpolates linearly between "
                    "the two sorted values around position q / 100 * (n - 1)",
    "lower": "you took the sorted value just below the position q / 100 * (n - 1); interpolate "
             "linearly between it and the next one",
    "higher": "you took the sorted value just above the position q / 100 * (n - 1); interpolate "
              "linearly between it and the one below",
    "nearest": "you rounded the position q / 100 * (n - 1) to the nearest index; interpolate "
               "linearly between the two neighbouring sorted values instead",
    "weibull": "you used the position q / 100 * (n + 1) (a definition used by some statistics "
               "packages); np.percentile's default uses q / 100 * (n - 1) on 0-based indices",
}


def _check_percentile(func) -> None:
    answers = []
    for values, q in _Q2_CASES:
        given = np.array(values)
        got = call_answer(func, given, q)
        if not np.array_equal(given, np.array(values)):
            raise Incorrect("Your function changed the caller's array (latencies.sort() sorts "
                            "in place); use np.sort(latencies), which returns a sorted copy")
        if isinstance(got, np.ndarray) and got.size == 1:
            got = got.item()
        if isinstance(got, bool) or not isinstance(got, numbers.Real):
            raise Incorrect(f"Return one number (a float), got {type(got).__name__}")
        answers.append(float(got))
    wrong = [(values, q, got) for (values, q), got in zip(_Q2_CASES, answers, strict=True)
             if not _same(got, float(np.percentile(values, q)))]
    if not wrong:
        return
    values, q, got = wrong[0]
    case = (f"For the latencies {values} and q={q} you returned {got:g}, expected "
            f"{float(np.percentile(values, q)):g}")
    for name, message in _Q2_MESSAGES.items():  # a mistake made in every case
        if all(_same(answer, _q2_mistakes(v, c)[name])
               for (v, c), answer in zip(_Q2_CASES, answers, strict=True)):
            raise Incorrect(f"{case}: {message}")
    raise Incorrect(f"{case}. Sort the values, find the position p = q / 100 * (n - 1), and "
                    "interpolate between the sorted values at floor(p) and floor(p) + 1")


# ----------------------------------------------------------------------------------- q3
def _table(rows: list[tuple[str, float, float]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["setting", "recall", "ms_per_query"])


#: The table the exercise shows (measured-looking numbers, written by hand).
LATENCY_TABLE = _table([
    ("ivf nprobe=1", 0.612, 0.021),
    ("ivf nprobe=4", 0.871, 0.043),
    ("ivf nprobe=8", 0.950, 0.071),
    ("ivf nprobe=16", 0.983, 0.112),
    ("ivf nprobe=64", 0.999, 0.240),
    ("hnsw efSearch=16", 0.902, 0.060),
    ("hnsw efSearch=32", 0.953, 0.094),
    ("hnsw efSearch=64", 0.986, 0.161),
    ("flat (exact)", 1.000, 0.820),
])

#: (table, target recall): the first is the exercise's own
_Q3_CASES = [
    (LATENCY_TABLE, 0.95),
    (LATENCY_TABLE, 0.98),
    (_table([("x", 0.96, 0.30), ("y", 0.99, 0.50), ("z", 0.97, 0.12), ("w", 0.70, 0.05)]), 0.95),
    (_table([("a", 0.80, 0.10), ("b", 0.90, 0.20), ("c", 0.93, 0.40)]), 0.95),
    (LATENCY_TABLE.iloc[::-1].reset_index(drop=True), 0.90),
]


def _q3_reference(table: pd.DataFrame, target: float):
    good = table[table["recall"] >= target]
    if good.empty:
        return None
    return good.loc[good["ms_per_query"].idxmin(), "setting"]


def _q3_mistakes(table: pd.DataFrame, target: float) -> dict[str, object]:
    strict = table[table["recall"] > target]
    reaching = table[table["recall"] >= target]
    return {
        "max_recall": table.loc[table["recall"].idxmax(), "setting"],
        "min_latency": table.loc[table["ms_per_query"].idxmin(), "setting"],
        "strict": (None if strict.empty
                   else strict.loc[strict["ms_per_query"].idxmin(), "setting"]),
        "first": None if reaching.empty else reaching["setting"].iloc[0],
    }


_Q3_MESSAGES = {
    "strict": "has recall exactly equal to the target, which reaches it: use >=, not >",
    "max_recall": "is the most accurate setting; the question is the fastest one that is "
                  "accurate enough: among the rows with recall >= target, the lowest "
                  "ms_per_query",
    "min_latency": "is the fastest setting, whose recall is below the target: keep only the "
                   "rows with recall >= target first, then take the fastest",
    "first": "is faster than the first row that reaches the target: latency does not always "
             "grow down a table (it may mix index kinds, and timings are noisy), so compare "
             "ms_per_query",
}


def _check_choose_setting(func) -> None:
    answers = []
    for table, target in _Q3_CASES:
        got = call_answer(func, table.copy(), target)
        case = f"With target recall {target}"
        if isinstance(got, numbers.Integral) and not isinstance(got, bool):
            raise Incorrect(f"{case} you returned {got!r}, a row number; return the value of "
                            "the 'setting' column of the chosen row, such as 'ivf nprobe=8'")
        if isinstance(got, pd.Series | pd.DataFrame):
            raise Incorrect(f"{case} you returned a {type(got).__name__}; return the value of "
                            "the 'setting' column of the chosen row (a string)")
        if got is not None and not isinstance(got, str):
            raise Incorrect(f"{case} return the 'setting' of the chosen row (a string) or "
                            f"None, got {type(got).__name__}")
        answers.append(got)
    for (table, target), got in zip(_Q3_CASES, answers, strict=True):
        want = _q3_reference(table, target)
        if got == want:
            continue
        case = f"With target recall {target}"
        if want is None:
            raise Incorrect(f"{case} and recalls {table['recall'].tolist()}, no setting "
                            f"reaches the target, yet you returned {got!r}. Return None: "
                            "a setting that misses the target is not an answer (build a "
                            "bigger index, or accept a lower target, knowingly)")
        if got is None:
            raise Incorrect(f"{case} you returned None, but {want!r} reaches it; return None "
                            "only when no setting does")
        for name, message in _Q3_MESSAGES.items():  # a mistake made in every case
            if all(answer == _q3_mistakes(t, g)[name]
                   for (t, g), answer in zip(_Q3_CASES, answers, strict=True)):
                raise Incorrect(f"{case} you returned {got!r}; {want!r} {message}"
                                if name in ("strict", "first") else
                                f"{case} you returned {got!r}, which {message}")
        raise Incorrect(f"{case} expected {want!r}, got {got!r}")


# ----------------------------------------------------------------------------------- q4
def _sample_size(p0: float, lift: float, alpha: float = 0.05, power: float = 0.8, *,
                 absolute: bool = False, one_sided: bool = False, no_power: bool = False,
                 pooled: bool = False, rounding=math.ceil):
    """Users per group for a two-sided two-proportion z-test, and its usual mistakes."""
    p1 = p0 + lift if absolute else p0 * (1 + lift)
    z = NormalDist().inv_cdf
    z_alpha = z(1 - alpha) if one_sided else z(1 - alpha / 2)
    z_beta = 0.0 if no_power else z(power)
    p_bar = (p0 + p1) / 2
    null_sd = math.sqrt(2 * p_bar * (1 - p_bar))
    alt_sd = null_sd if pooled else math.sqrt(p0 * (1 - p0) + p1 * (1 - p1))
    n = (z_alpha * null_sd + z_beta * alt_sd) ** 2 / (p1 - p0) ** 2
    return rounding(n)


#: (baseline conversion, relative lift, alpha, power)
_Q4_CASES = [(0.05, 0.10, 0.05, 0.8), (0.10, 0.05, 0.05, 0.8), (0.02, 0.20, 0.01, 0.9),
             (0.30, 0.02, 0.05, 0.8), (0.12, 0.15, 0.10, 0.8)]

_Q4_MISTAKES = [
    (dict(absolute=True), "the lift is relative: a 10% lift on a 5% conversion rate is "
                          "5.5%, p1 = p0 * (1 + lift), not p0 + lift"),
    (dict(one_sided=True), "you used the one-sided quantile z_(1 - alpha); the test is "
                           "two-sided (a change in either direction counts), so use "
                           "z_(1 - alpha / 2)"),
    (dict(no_power=True), "your n gives only 50% power: the formula adds z_power times the "
                          "standard deviation under the alternative, with z_power = "
                          "NormalDist().inv_cdf(power)"),
    (dict(pooled=True), "you used the pooled standard deviation sqrt(2 p(1 - p)) in both "
                        "terms; the power term uses the spread under the alternative, "
                        "sqrt(p0 (1 - p0) + p1 (1 - p1))"),
]


def _check_sample_size(func) -> None:
    answers = []
    for p0, lift, alpha, power in _Q4_CASES:
        got = call_answer(func, p0, lift, alpha, power)
        case = (f"For a baseline conversion of {p0:.0%}, a relative lift of {lift:.0%}, "
                f"alpha={alpha} and power={power}")
        if isinstance(got, bool) or not isinstance(got, numbers.Real):
            raise Incorrect(f"{case} return a number of users (an int), got "
                            f"{type(got).__name__}")
        if not float(got).is_integer():
            raise Incorrect(f"{case} you returned {got}: a sample size is a whole number of "
                            "users per group; round UP with math.ceil (rounding down would "
                            "give less than the power asked for)")
        answers.append(int(got))
    wants = [_sample_size(*case) for case in _Q4_CASES]
    if answers == wants:
        return
    index = next(i for i, (a, w) in enumerate(zip(answers, wants, strict=True)) if a != w)
    p0, lift, alpha, power = _Q4_CASES[index]
    got, want = answers[index], wants[index]
    case = (f"For a baseline conversion of {p0:.0%}, a relative lift of {lift:.0%}, "
            f"alpha={alpha} and power={power} you returned {got}, expected {want}")
    if all(abs(a - 2 * w) <= 2 for a, w in zip(answers, wants, strict=True)):
        raise Incorrect(f"{case}: that is the total of both groups; return the number of users "
                        "in EACH group")
    variants = [(dict(rounding=math.floor), "round the formula UP with math.ceil; rounding "
                                            "down gives slightly less power than asked for"),
                (dict(rounding=round), "round the formula UP with math.ceil, not to the "
                                       "nearest integer: rounding down gives slightly less "
                                       "power than asked for"),
                *_Q4_MISTAKES]
    for variant, message in variants:  # a mistake made in every case
        if all(a == _sample_size(*c, **variant)
               for c, a in zip(_Q4_CASES, answers, strict=True)):
            raise Incorrect(f"{case}: {message}")
    raise Incorrect(f"{case} users per group")


EXERCISES = ExerciseSet("ex12", [
    Question("q1", "validate a /recommend payload", _check_request_problems,
             "Start with `if not isinstance(payload, dict): return ['body']`. A JSON integer "
             "is `isinstance(x, int) and not isinstance(x, bool)`. Check 'history' (present, "
             "a list, every entry an integer, len <= max_history) and, only if it is present, "
             "'k' (an integer with 1 <= k <= max_k), then add every other key of the payload; "
             "collect every problem."),
    Question("q2", "a latency percentile, as np.percentile computes it", _check_percentile,
             "s = np.sort(latencies); p = q / 100 * (len(s) - 1); lo = floor(p), "
             "hi = min(lo + 1, len(s) - 1); return s[lo] + (p - lo) * (s[hi] - s[lo])."),
    Question("q3", "the fastest index setting that is accurate enough", _check_choose_setting,
             "Filter first: ok = table[table['recall'] >= min_recall]. If it is empty return "
             "None; otherwise return ok.loc[ok['ms_per_query'].idxmin(), 'setting']."),
    Question("q4", "A/B test sample size for a lift in conversion", _check_sample_size,
             "p1 = p0 * (1 + lift); z = NormalDist().inv_cdf; n = (z(1 - alpha / 2) * "
             "sqrt(2 p(1 - p)) + z(power) * sqrt(p0(1 - p0) + p1(1 - p1)))**2 / (p1 - p0)**2 "
             "with p the mean of p0 and p1; return math.ceil(n)."),
])
q1, q2, q3, q4 = EXERCISES
summary = EXERCISES.summary
assert_all_correct = EXERCISES.assert_all_correct
