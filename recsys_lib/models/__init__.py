"""Recommenders behind one interface (see :mod:`recsys_lib.models.base`).

The NumPy/SciPy models are importable from here. Keras models live in their own modules
(``recsys_lib.models.deep``, ``.transformer``, ``.sasrec``, ``.gru4rec``) so that importing
this package does not import TensorFlow.
"""

from recsys_lib.models.base import Recommender, top_k_indices
from recsys_lib.models.baselines import PopularityRecommender, RandomRecommender
from recsys_lib.models.content import ContentBasedRecommender
from recsys_lib.models.factorization import (
    ALSRecommender,
    BPRRecommender,
    MatrixFactorization,
)
from recsys_lib.models.linear import EASERecommender
from recsys_lib.models.neighbours import ItemKNNRecommender, UserKNNRecommender
from recsys_lib.models.sequential import MarkovRecommender, SequentialKNNRecommender

__all__ = ["Recommender", "top_k_indices", "PopularityRecommender", "RandomRecommender",
           "ContentBasedRecommender", "EASERecommender", "ItemKNNRecommender",
           "UserKNNRecommender", "MatrixFactorization", "BPRRecommender", "ALSRecommender",
           "MarkovRecommender", "SequentialKNNRecommender"]
