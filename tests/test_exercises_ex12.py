"""Checkers of ex12: a correct answer passes, wrong answers fail with a useful message."""

import math
from statistics import NormalDist

import numpy as np
from exercise_harness import make_case_tests


# ------------------------------------------------------------------------------------ q1
def _is_int(x, bools_are_ints=False):
    return isinstance(x, int) and (bools_are_ints or not isinstance(x, bool))


def _problems(payload, max_k, max_history, *, bools_are_ints=False, k_required=False,
              strict_max=False, first_only=False, k_from=1, allow_float=False,
              extra_ok=False):
    if not isinstance(payload, dict):
        return ["body"]
    def ok_id(x):
        return _is_int(x, bools_are_ints) or (allow_float and isinstance(x, float))

    history = payload.get("history")
    limit = max_history - 1 if strict_max else max_history
    problems = []
    if not isinstance(history, list) or len(history) > limit or not all(map(ok_id, history)):
        problems.append("history")
        if first_only:
            return problems
    if "k" in payload or k_required:
        k = payload.get("k")
        if not (_is_int(k, bools_are_ints) and k_from <= k <= (max_k - strict_max)):
            problems.append("k")
    return problems + ([] if extra_ok else [key for key in payload if key not in ("history", "k")])


def _problems_any_iterable(payload, max_k, max_history):
    if not isinstance(payload, dict):
        return ["body"]
    history = payload.get("history")
    problems = []
    try:
        ids = [int(x) for x in history]  # "converts" strings, floats and bools as well
        if len(ids) > max_history:
            problems.append("history")
    except (TypeError, ValueError):
        problems.append("history")
    if "k" in payload and not (_is_int(payload["k"]) and 1 <= payload["k"] <= max_k):
        problems.append("k")
    return problems + [key for key in payload if key not in ("history", "k")]


def _problems_crash_on_list(payload, max_k, max_history):
    return _problems(payload.copy(), max_k, max_history)  # a list has no keys: AttributeError


# ------------------------------------------------------------------------------------ q2
def _percentile(latencies, q):
    s = np.sort(np.asarray(latencies, dtype=float))
    p = q / 100 * (len(s) - 1)
    lo = math.floor(p)
    hi = min(lo + 1, len(s) - 1)
    return float(s[lo] + (p - lo) * (s[hi] - s[lo]))


def _nearest_rank(latencies, q):
    s = np.sort(latencies)
    return float(s[max(math.ceil(q / 100 * len(s)), 1) - 1])


def _unsorted(latencies, q):
    s = np.asarray(latencies, dtype=float)
    p = q / 100 * (len(s) - 1)
    lo = math.floor(p)
    hi = min(lo + 1, len(s) - 1)
    return float(s[lo] + (p - lo) * (s[hi] - s[lo]))


def _sorts_in_place(latencies, q):
    latencies.sort()
    return _percentile(latencies, q)


def _times_n(latencies, q):
    s = np.sort(latencies)
    p = min(q / 100 * len(s), len(s) - 1)
    lo = math.floor(p)
    hi = min(lo + 1, len(s) - 1)
    return float(s[lo] + (p - lo) * (s[hi] - s[lo]))


# ------------------------------------------------------------------------------------ q3
def _choose(table, min_recall):
    ok = table[table["recall"] >= min_recall]
    return None if ok.empty else ok.loc[ok["ms_per_query"].idxmin(), "setting"]


def _choose_strict(table, min_recall):
    ok = table[table["recall"] > min_recall]
    return None if ok.empty else ok.loc[ok["ms_per_query"].idxmin(), "setting"]


def _choose_first(table, min_recall):
    ok = table[table["recall"] >= min_recall]
    return None if ok.empty else ok["setting"].iloc[0]


def _choose_no_none(table, min_recall):
    ok = table[table["recall"] >= min_recall]
    ok = table if ok.empty else ok
    return ok.loc[ok["ms_per_query"].idxmin(), "setting"]


def _choose_row_number(table, min_recall):
    ok = table[table["recall"] >= min_recall]
    return None if ok.empty else int(ok["ms_per_query"].idxmin())


# ------------------------------------------------------------------------------------ q4
def _n(p0, lift, alpha=0.05, power=0.8, *, absolute=False, one_sided=False, z_beta=True,
       rounding=math.ceil, groups=1):
    p1 = p0 + lift if absolute else p0 * (1 + lift)
    z = NormalDist().inv_cdf
    za = z(1 - alpha) if one_sided else z(1 - alpha / 2)
    zb = z(power) if z_beta else 0.0
    pbar = (p0 + p1) / 2
    n = (za * math.sqrt(2 * pbar * (1 - pbar))
         + zb * math.sqrt(p0 * (1 - p0) + p1 * (1 - p1))) ** 2 / (p1 - p0) ** 2
    return groups * rounding(n)


def _n_pooled(p0, lift, alpha=0.05, power=0.8):
    p1 = p0 * (1 + lift)
    z = NormalDist().inv_cdf
    pbar = (p0 + p1) / 2
    return math.ceil((z(1 - alpha / 2) + z(power)) ** 2 * 2 * pbar * (1 - pbar)
                     / (p1 - p0) ** 2)


# question -> (correct answer, [(wrong answer, words the message must contain), ...])
CASES = {
    "q1": (lambda p, mk, mh: _problems(p, mk, mh),
           [(lambda p, mk, mh: _problems(p, mk, mh, bools_are_ints=True), "subclass of int"),
            (lambda p, mk, mh: _problems(p, mk, mh, k_required=True), "k is optional"),
            (lambda p, mk, mh: _problems(p, mk, mh, strict_max=True), "inclusive"),
            (lambda p, mk, mh: _problems(p, mk, mh, first_only=True), "every field"),
            (lambda p, mk, mh: _problems(p, mk, mh, k_from=0), "at least 1"),
            (lambda p, mk, mh: _problems(p, mk, mh, allow_float=True), "2.0 is a float"),
            (lambda p, mk, mh: _problems(p, mk, mh, extra_ok=True), "unknown field"),
            (_problems_any_iterable, "a string is not a list"),
            (_problems_crash_on_list, "raised AttributeError"),
            (lambda p, mk, mh: ",".join(_problems(p, mk, mh)), "Return a list"),
            (lambda p, mk, mh: [], "expected")]),
    "q2": (_percentile,
           [(_nearest_rank, "nearest-rank"),
            (_unsorted, "sort them first"),
            (_sorts_in_place, "in place"),
            (_times_n, "not q / 100 * n"),
            (lambda x, q: _percentile(x, q / 100), "not a fraction"),
            (lambda x, q: float(np.percentile(x, q, method="lower")), "just below"),
            (lambda x, q: float(np.percentile(x, q, method="higher")), "just above"),
            (lambda x, q: float(np.percentile(x, q, method="nearest")), "rounded the position"),
            (lambda x, q: float(np.percentile(x, q, method="weibull")), "(n + 1)"),
            (lambda x, q: str(_percentile(x, q)), "one number"),
            (lambda x, q: float(np.mean(x)), "interpolate between")]),
    "q3": (_choose,
           [(_choose_strict, "not >"),
            (_choose_first, "first row"),
            (lambda t, r: t.loc[t["recall"].idxmax(), "setting"], "most accurate"),
            (lambda t, r: t.loc[t["ms_per_query"].idxmin(), "setting"], "below the target"),
            (_choose_no_none, "Return None"),
            (lambda t, r: _choose(t, r) or "flat (exact)", "Return None"),
            (lambda t, r: "ivf nprobe=8" if r == 0.95 else None, "only when no setting"),
            (_choose_row_number, "row number"),
            (lambda t, r: t[t["recall"] >= r], "DataFrame")]),
    "q4": (lambda p0, lift, alpha, power: _n(p0, lift, alpha, power),
           [(lambda *a: _n(*a, absolute=True), "relative"),
            (lambda *a: _n(*a, one_sided=True), "two-sided"),
            (lambda *a: _n(*a, z_beta=False), "50% power"),
            (lambda *a: _n(*a, groups=2), "EACH group"),
            (lambda *a: _n(*a, rounding=math.floor), "round the formula UP"),
            (lambda *a: _n(*a, rounding=lambda x: x), "whole number"),
            (_n_pooled, "alternative"),
            (lambda *a: str(_n(*a)), "an int"),
            (lambda *a: _n(*a) + 100, "users per group")]),
}

(test_correct, test_wrong, test_unanswered, test_cases_cover_every_question) = make_case_tests(
    "ex12", CASES)


def test_q2_reference_is_numpys_linear_percentile():
    rng = np.random.default_rng(0)
    for _ in range(200):
        values = rng.exponential(5.0, size=rng.integers(1, 40))
        q = float(rng.uniform(0, 100))
        assert math.isclose(_percentile(values, q), float(np.percentile(values, q)),
                            rel_tol=1e-12, abs_tol=1e-12)


def test_q4_sample_size_gives_the_power_asked_for():
    """A simulation of the two-proportion z-test at the checker's n reaches 80% power."""
    from recsys_lib.exercises import ex12

    p0, lift = 0.05, 0.10
    n = ex12._sample_size(p0, lift)
    rng = np.random.default_rng(0)
    a = rng.binomial(n, p0, size=20_000) / n
    b = rng.binomial(n, p0 * (1 + lift), size=20_000) / n
    pooled = (a + b) / 2
    z = (b - a) / np.sqrt(pooled * (1 - pooled) * 2 / n)
    power = np.mean(np.abs(z) > NormalDist().inv_cdf(0.975))
    assert abs(power - 0.8) < 0.015, power


def test_q3_exercise_table_has_a_boundary_answer():
    from recsys_lib.exercises import ex12

    table = ex12.LATENCY_TABLE
    assert _choose(table, 0.95) == "ivf nprobe=8"
    assert table.set_index("setting").loc["ivf nprobe=8", "recall"] == 0.95
