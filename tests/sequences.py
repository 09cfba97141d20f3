"""Synthetic sequence data shared by the tests of the sequence models."""

import numpy as np
import pandas as pd


def cyclic_histories(n_users=80, n_items=30, length=10, seed=0):
    """Each user walks the items in a cycle from a random start: the next item is predictable.

    Item ids start at 100 (so the id encoders are exercised); timestamps are 0..length-1.
    """
    rng = np.random.default_rng(seed)
    rows = []
    for u in range(n_users):
        start = rng.integers(n_items)
        rows += [(u, int((start + t) % n_items) + 100, t) for t in range(length)]
    return pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp"])
