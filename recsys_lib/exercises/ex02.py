"""Checks for the exercises of notebook 02 (content-based filtering).

Used by ``exercises/02_content_based.ipynb``: ``from recsys_lib.exercises.ex02 import *``.
"""

from __future__ import annotations

import numbers

import numpy as np
import pandas as pd
import scipy.sparse as sp

from recsys_lib.exercises.core import ExerciseSet, Incorrect, Question, call_answer
from recsys_lib.models.content import ContentBasedRecommender, item_documents, tfidf_matrix

__all__ = ["q1", "q2", "q3", "q4", "summary", "assert_all_correct", "EXERCISES"]

# A tiny catalogue shared by q3 and q4: two films of a series, a drama, a space adventure, a
# comedy, and (id 200) the film that is being recommended.
_ITEMS = pd.DataFrame({
    "item_id": [101, 102, 103, 104, 105, 200],
    "title": ["Space Battle (1990)", "Space Battle II (1992)", "Quiet Garden (2001)",
              "Star Pilots (1985)", "Laugh Out (2010)", "Space Battle III (2017)"],
    "genres": ["Action|Sci-Fi", "Action|Sci-Fi", "Drama", "Adventure|Sci-Fi", "Comedy",
               "Action|Sci-Fi"],
})


def _item_profiles() -> pd.DataFrame:
    """Unit TF-IDF profiles of the tiny catalogue: rows item_id, columns terms."""
    matrix, vocabulary = tfidf_matrix(item_documents(_ITEMS))
    return pd.DataFrame(matrix.toarray(), index=pd.Index(_ITEMS["item_id"], name="item_id"),
                        columns=vocabulary)


def _scalar(value, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        shape = getattr(value, "shape", None)
        extra = f" of shape {shape}" if shape is not None else ""
        raise Incorrect(f"{what} should be a single number (a float), got "
                        f"{type(value).__name__}{extra}; with sparse rows, a @ b.T is a 1 x 1 "
                        "matrix: take its only element, or use float(...) on a number")
    return float(value)


# ----------------------------------------------------------------------------------- q1
def _reference_idf(documents: list[list[str]]) -> dict[str, float]:
    n = len(documents)
    df = pd.Series([term for doc in documents for term in set(doc)]).value_counts()
    return {term: float(np.log((1 + n) / (1 + count)) + 1) for term, count in df.items()}


def _check_idf(func) -> None:
    # "a" occurs twice in the first document: df("a") is 2, not 3. "b" is in 3 of 4 documents.
    documents = [["a", "b", "a"], ["b", "c"], ["b"], ["d", "a"]]
    got = call_answer(func, [list(doc) for doc in documents])
    if isinstance(got, pd.Series):
        got = got.to_dict()
    if not isinstance(got, dict):
        raise Incorrect(f"Return a dict term -> idf, got {type(got).__name__}")
    want = _reference_idf(documents)
    if set(got) != set(want):
        raise Incorrect(f"Expected one idf per distinct term {sorted(want)}, "
                        f"got the keys {sorted(map(str, got))}")
    values = {t: _scalar(v, f"The idf of {t!r}") for t, v in got.items()}
    n = len(documents)
    df = {t: sum(t in doc for doc in documents) for t in want}
    occurrences = {t: sum(doc.count(t) for doc in documents) for t in want}
    variants = {
        "You used the unsmoothed ln(N / df); eq. (2) is ln((1 + N) / (1 + df)) + 1":
            {t: np.log(n / df[t]) for t in want},
        "You forgot the + 1 after the logarithm: with ln((1 + N) / (1 + df)) alone a term in "
        "every document would get weight 0":
            {t: np.log((1 + n) / (1 + df[t])) for t in want},
        "You counted every occurrence of a term: df counts documents, so a term repeated inside "
        "one document counts once (use set(doc))":
            {t: np.log((1 + n) / (1 + occurrences[t])) + 1 for t in want},
        "Use the natural logarithm (np.log), not log10":
            {t: np.log10((1 + n) / (1 + df[t])) + 1 for t in want},
    }
    if all(np.isclose(values[t], want[t]) for t in want):
        return
    for message, variant in variants.items():
        if all(np.isclose(values[t], variant[t]) for t in want):
            raise Incorrect(message)
    wrong = [t for t in sorted(want) if not np.isclose(values[t], want[t])]
    raise Incorrect(f"wrong idf for {wrong}: expected "
                    f"{ {t: round(want[t], 4) for t in wrong} }, got "
                    f"{ {t: round(values[t], 4) for t in wrong} }")


# ----------------------------------------------------------------------------------- q2
def _check_cosine(func) -> None:
    a = np.array([1.0, 2.0, 0.0, 2.0])
    b = np.array([2.0, 0.0, 1.0, 2.0])
    want = float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))  # 6 / 9
    got = _scalar(call_answer(func, a.copy(), b.copy()), "The cosine of two NumPy vectors")
    if np.isclose(got, a @ b):
        raise Incorrect(f"You returned the dot product a . b = {a @ b:g}; divide it by the two "
                        "norms ||a|| ||b|| (eq. 4)")
    if not np.isclose(got, want):
        raise Incorrect(f"cosine({a.tolist()}, {b.tolist()}) should be {want:.4f}, got {got:.4f}")
    zero = np.zeros(4)
    got_zero = _scalar(call_answer(func, zero, b.copy()), "The cosine with a zero vector")
    if np.isnan(got_zero):
        raise Incorrect("You returned nan for a zero vector (0 / 0); return 0.0 when either "
                        "vector has norm 0: it has nothing in common with anything")
    if not np.isclose(got_zero, 0.0):
        raise Incorrect(f"The cosine with a zero vector should be 0.0, got {got_zero}")
    # Sparse rows, as in a TF-IDF matrix (scaled so that they are not unit vectors).
    matrix, _ = tfidf_matrix([["x", "y", "y"], ["y", "z"]])
    sa, sb = sp.csr_matrix(matrix[0] * 3.0), sp.csr_matrix(matrix[1] * 0.5)
    want_sparse = float((matrix[0] @ matrix[1].T).toarray()[0, 0])  # unit rows: dot = cosine
    try:
        result = call_answer(func, sa, sb)
    except Incorrect as err:
        raise Incorrect(f"Your function works for NumPy arrays but not for 1 x n scipy.sparse "
                        f"rows ({err}); turn a sparse row into a dense vector with "
                        ".toarray().ravel() first") from None
    got_sparse = _scalar(result, "The cosine of two sparse rows")
    if not np.isclose(got_sparse, want_sparse):
        raise Incorrect(f"For two sparse rows expected {want_sparse:.4f}, got {got_sparse:.4f}")


# ----------------------------------------------------------------------------------- q3
_Q3_RATINGS = pd.DataFrame({"user_id": [7, 7, 7, 7], "item_id": [104, 101, 103, 105],
                            "rating": [4.0, 5.0, 2.0, 2.5], "timestamp": [1, 2, 3, 4]})


def _check_user_profile(func) -> None:
    profiles = _item_profiles()
    ratings = _Q3_RATINGS
    model = ContentBasedRecommender(_ITEMS, weight_by_rating=True).fit(ratings)
    assert list(model.items_.ids_) == list(profiles.index)
    want = pd.Series(model.user_profiles_[0].toarray().ravel(), index=model.vocabulary_)
    got = call_answer(func, profiles.copy(), ratings[["item_id", "rating"]].copy())
    if not isinstance(got, pd.Series):
        shape = getattr(got, "shape", None)
        raise Incorrect(f"Return a pandas Series indexed by the terms (the columns of "
                        f"item_profiles), got {type(got).__name__}"
                        + (f" of shape {shape}" if shape is not None else ""))
    if set(got.index) != set(want.index) or len(got) != len(want):
        raise Incorrect(f"The profile should have one value per term, {len(want)} in all, "
                        f"indexed like item_profiles.columns; got {len(got)} values")
    got = got.reindex(want.index).astype(float)
    if np.allclose(got, want):
        return
    rows = profiles.loc[ratings["item_id"]].to_numpy()  # (n_rated, n_terms)
    r = ratings["rating"].to_numpy()
    positional = profiles.iloc[: len(ratings)].to_numpy()
    variants = {
        "You weighted each film by its raw rating; subtract the user's mean rating first, so "
        "films rated below average push the profile away (eq. 5)": r @ rows,
        "You summed the profiles without weights; weight each film by (rating - user mean)":
            rows.sum(axis=0),
        "You divided by the number of rated films; eq. (5) is a plain weighted sum":
            (r - r.mean()) @ rows / len(r),
        "The rows of item_profiles are not in the order of the ratings: look each film up by "
        "its item_id, e.g. item_profiles.loc[ratings['item_id']]":
            (r - r.mean()) @ positional,
    }
    for message, variant in variants.items():
        if np.allclose(got.to_numpy(), variant):
            raise Incorrect(message)
    worst = (got - want).abs().idxmax()
    raise Incorrect(f"The profile differs from eq. (5), most for the term {worst!r}: expected "
                    f"{want[worst]:.4f}, got {got[worst]:.4f}")


# ----------------------------------------------------------------------------------- q4
# The user disliked "Space Battle II" (the film most like the recommended "Space Battle III"),
# liked "Quiet Garden" most, and liked "Star Pilots" (the liked film most like the recommendation).
_Q4_RATINGS = pd.DataFrame({"item_id": [103, 102, 105, 104], "rating": [5.0, 1.0, 3.0, 4.0]})
_Q4_ITEM = 200


def _reference_reason(profiles: pd.DataFrame, ratings: pd.DataFrame, item) -> object:
    liked = ratings.loc[ratings["rating"] > ratings["rating"].mean(), "item_id"]
    sims = profiles.loc[liked].to_numpy() @ profiles.loc[item].to_numpy()
    return liked.to_numpy()[int(np.argmax(sims))]


def _check_because_you_liked(func) -> None:
    profiles = _item_profiles()
    ratings = _Q4_RATINGS
    want = _reference_reason(profiles, ratings, _Q4_ITEM)
    got = call_answer(func, profiles.copy(), ratings.copy(), _Q4_ITEM)
    if isinstance(got, bool) or not isinstance(got, numbers.Integral):
        raise Incorrect(f"Return one item_id (an integer), got {type(got).__name__}")
    got = int(got)
    if got == want:
        return
    titles = _ITEMS.set_index("item_id")["title"]
    if got == _Q4_ITEM:
        raise Incorrect("You returned the recommended film itself; look only among the films "
                        "the user rated")
    if got not in set(ratings["item_id"]):
        if 0 <= got < len(ratings):
            raise Incorrect(f"{got} looks like a position; return the item_id (a value of "
                            "ratings['item_id'])")
        raise Incorrect(f"{got} is not one of the films the user rated "
                        f"{sorted(ratings['item_id'])}")
    rating = float(ratings.set_index("item_id").loc[got, "rating"])
    if rating <= ratings["rating"].mean():
        raise Incorrect(f"The user rated {titles[got]!r} {rating:g}, below their mean of "
                        f"{ratings['rating'].mean():g}: \"because you liked\" must pick among "
                        "the films rated above the user's mean")
    if got == ratings.loc[ratings["rating"].idxmax(), "item_id"]:
        raise Incorrect(f"You returned the user's highest-rated film {titles[got]!r}; pick the "
                        "liked film most similar (largest cosine) to the recommended one")
    raise Incorrect(f"Expected {want} ({titles[want]!r}), the liked film most similar to the "
                    f"recommended one; got {got} ({titles[got]!r})")


EXERCISES = ExerciseSet("ex02", [
    Question("q1", "smoothed idf", _check_idf,
             "Count, for each term, the documents that contain it (a set per document), then "
             "apply np.log((1 + N) / (1 + df)) + 1."),
    Question("q2", "cosine similarity", _check_cosine,
             "If sp.issparse(x), use x.toarray().ravel(). Then a @ b / (norm(a) * norm(b)), "
             "and return 0.0 when a norm is 0."),
    Question("q3", "rating-weighted user profile", _check_user_profile,
             "weights = rating - rating.mean(); rows = item_profiles.loc[ratings['item_id']]; "
             "the profile is weights @ rows, as a Series indexed by the columns."),
    Question("q4", "because you liked", _check_because_you_liked,
             "Keep the rows with rating > the user's mean, take their profiles with .loc, "
             "multiply by the recommended film's profile and return the item_id of the largest."),
])
q1, q2, q3, q4 = EXERCISES
summary = EXERCISES.summary
assert_all_correct = EXERCISES.assert_all_correct
