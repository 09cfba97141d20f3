"""The text encoder and the cold-start protocol of notebook 11 (trains tiny Keras models)."""

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

keras = pytest.importorskip("keras")

from recsys_lib.models.bert4rec import BERT4Rec  # noqa: E402
from recsys_lib.models.text_encoder import (  # noqa: E402
    cold_start_split,
    genre_share_scores,
    item_texts,
    masked_token_loss,
    pretrain_text_encoder,
    profile_scores,
    rank_candidates,
    text_embeddings,
    text_encoder,
    text_vectorizer,
    tokenize,
)

ITEMS = pd.DataFrame({
    "item_id": [10, 20, 30, 40, 50],
    "title": ["Toy Story (1995)", "Alien (1979)", "Aliens (1986)", "Heat (1995)", None],
    "genres": ["Adventure|Animation|Children", "Horror|Sci-Fi", "Action|Horror|Sci-Fi",
               "Action|Crime|Thriller", "(no genres listed)"],
})


def ratings_table(n_users=30, n_items=40, per_user=12, seed=0):
    rng = np.random.default_rng(seed)
    rows = [(u, int(i)) for u in range(n_users)
            for i in rng.choice(np.arange(100, 100 + n_items), per_user, replace=False)]
    return pd.DataFrame(rows, columns=["user_id", "item_id"])


def test_item_texts_join_title_and_genres_and_tokens_are_left_padded():
    texts = item_texts(ITEMS)
    assert texts[10] == "Toy Story (1995) | Adventure Animation Children"
    assert texts[50] == "|"  # no title, no genre words
    vectorizer = text_vectorizer(texts, max_tokens=50, max_len=6)
    vocabulary = vectorizer.get_vocabulary()
    assert vocabulary[:2] == ["", "[UNK]"] and "scifi" in vocabulary  # punctuation removed
    tokens = tokenize(vectorizer, texts)
    assert tokens.shape == (5, 6) and tokens.dtype == np.int32
    toy = [vocabulary.index(w) for w in "toy story 1995 adventure animation children".split()]
    np.testing.assert_array_equal(tokens[0], toy)  # six tokens fill the row
    alien = [vocabulary.index(w) for w in ["alien", "1979", "horror", "scifi"]]
    np.testing.assert_array_equal(tokens[1], [0, 0, *alien])  # padded on the left
    np.testing.assert_array_equal(tokens[4], [0, 0, 0, 0, 0, 1])  # empty text: one OOV token
    assert (tokenize(vectorizer, ["heat unknownword"])[0, -2:] == [vocabulary.index("heat"),
                                                                   1]).all()


def test_embeddings_have_unit_norm_one_row_per_text_and_ignore_padding():
    tokens = tokenize(text_vectorizer(item_texts(ITEMS), max_len=8), item_texts(ITEMS))
    encoder = text_encoder(vocab_size=int(tokens.max()) + 1, max_len=8, d_model=8, seed=1)
    assert isinstance(encoder, BERT4Rec) and encoder.mask_token == tokens.max() + 1
    vectors = text_embeddings(encoder, tokens, batch_size=2)
    assert vectors.shape == (5, 8)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-5)
    hidden = keras.ops.convert_to_numpy(encoder.hidden(tokens[:1], training=False))[0]
    mean = hidden[tokens[0] > 0].mean(axis=0)
    np.testing.assert_allclose(vectors[0], mean / np.linalg.norm(mean), rtol=1e-5, atol=1e-6)
    again = text_encoder(vocab_size=int(tokens.max()) + 1, max_len=8, d_model=8, seed=1)
    np.testing.assert_allclose(text_embeddings(again, tokens), vectors, atol=1e-6)  # seeded


def test_pretraining_lowers_the_masked_token_loss():
    """Texts made of two topics: the words of a text predict its missing word."""
    rng = np.random.default_rng(0)
    topics = [["space", "alien", "ship", "planet", "robot"], ["love", "kiss", "paris",
                                                             "wedding", "heart"]]
    texts = [" ".join(rng.choice(topics[i % 2], 4)) for i in range(200)]
    vectorizer = text_vectorizer(texts, max_len=4)
    tokens = tokenize(vectorizer, texts)
    encoder = text_encoder(vectorizer.vocabulary_size(), max_len=4, d_model=16, dropout=0.0)
    before = masked_token_loss(encoder, tokens, mask_rate=0.25, seed=5)
    np.testing.assert_allclose(before, np.log(vectorizer.vocabulary_size() - 1), rtol=0.1)
    history = pretrain_text_encoder(encoder, tokens, epochs=15, batch_size=32,
                                    learning_rate=1e-2, mask_rate=0.25)
    after = masked_token_loss(encoder, tokens, mask_rate=0.25, seed=5)
    assert len(history) == 15 and history[-1]["loss"] < history[0]["loss"]
    # a word of the right topic: at best log(5) = 1.61 nats; chance is log(11) = 2.40
    assert after < 1.9, (before, after)


def test_cold_split_removes_every_interaction_of_cold_items_and_only_those():
    ratings = ratings_table()
    split = cold_start_split(ratings, share=0.25, min_ratings=5, seed=3)
    counts = ratings["item_id"].value_counts()
    eligible = counts.index[counts >= 5]
    assert len(split.cold_items) == round(0.25 * len(eligible))
    assert set(split.cold_items) <= set(eligible)
    assert not split.train["item_id"].isin(split.cold_items).any()
    assert split.test["item_id"].isin(split.cold_items).all()
    assert len(split.train) + len(split.test) == len(ratings)
    pd.testing.assert_frame_equal(pd.concat([split.train, split.test]).sort_index(), ratings)
    again = cold_start_split(ratings, share=0.25, min_ratings=5, seed=3)
    np.testing.assert_array_equal(again.cold_items, split.cold_items)
    other = cold_start_split(ratings, share=0.25, min_ratings=5, seed=4)
    assert set(other.cold_items) != set(split.cold_items)
    few = cold_start_split(ratings, share=0.5, min_ratings=12, seed=0)
    assert set(few.cold_items) <= set(counts.index[counts >= 12])


def test_scorers_compute_profiles_and_genre_shares_by_hand():
    train = pd.DataFrame({"user_id": [1, 1, 2], "item_id": [10, 20, 40]})
    vectors = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [2.0, 0.0], [0.0, 0.0]])
    ids = [10, 20, 30, 40, 50]
    scores = profile_scores(vectors, ids, train, [2, 1], [30, 40, 50])
    # user 2's profile (2, 0); user 1's (0.5, 0.5); candidate 50 has a zero vector
    np.testing.assert_allclose(scores, [[1 / np.sqrt(2), 1.0, 0.0], [1.0, 1 / np.sqrt(2), 0.0]])
    np.testing.assert_allclose(profile_scores(sp.csr_matrix(vectors), ids, train, [2, 1],
                                              [30, 40, 50]), scores)
    shares = genre_share_scores(ITEMS, train, [1, 2], [30, 40, 50])
    # user 1 saw 10 (Adventure, Animation, Children) and 20 (Horror, Sci-Fi): each genre 1/2
    # item 30 = Action, Horror, Sci-Fi -> (0 + 1/2 + 1/2) / 3; item 50 has no genre -> 0
    np.testing.assert_allclose(shares, [[1 / 3, 0.0, 0.0], [1 / 3, 1.0, 0.0]])


def test_rank_candidates_orders_by_score_and_breaks_ties_at_random():
    recs = rank_candidates(np.array([[0.1, 0.9, 0.5], [3.0, 2.0, 1.0]]), ["a", "b"],
                           [7, 8, 9], k=2)
    assert recs == {"a": [8, 9], "b": [7, 8]}
    tied = np.zeros((1, 50))
    firsts = {rank_candidates(tied, ["u"], np.arange(50), k=1, seed=s)["u"][0]
              for s in range(10)}
    assert len(firsts) > 5  # not always the first column


def test_bad_input_gets_clear_messages():
    ratings = ratings_table()
    with pytest.raises(ValueError, match="share must be"):
        cold_start_split(ratings, share=1.0)
    with pytest.raises(ValueError, match="min_ratings"):
        cold_start_split(ratings, min_ratings=0)
    with pytest.raises(ValueError, match="no item"):
        cold_start_split(ratings, share=0.001)
    with pytest.raises(ValueError, match="non-empty DataFrame"):
        cold_start_split(ratings.iloc[:0])
    with pytest.raises(ValueError, match="missing"):
        item_texts(ITEMS.drop(columns="genres"))
    with pytest.raises(ValueError, match="non-empty list of strings"):
        text_vectorizer([])
    train = pd.DataFrame({"user_id": [1], "item_id": [10]})
    with pytest.raises(ValueError, match="unknown item id"):
        profile_scores(np.eye(2), [10, 20], train, [1], [99])
    with pytest.raises(ValueError, match="no training interaction"):
        profile_scores(np.eye(2), [10, 20], train, [1, 2], [20])
    with pytest.raises(ValueError, match="rows for"):
        profile_scores(np.eye(3), [10, 20], train, [1], [20])
    with pytest.raises(ValueError, match="expected"):
        rank_candidates(np.zeros((2, 3)), ["a"], [1, 2, 3])
    encoder = text_encoder(vocab_size=10, max_len=4, d_model=8)
    with pytest.raises(ValueError, match="token ids must be in 0..9"):
        text_embeddings(encoder, np.array([[0, 0, 3, 12]]))
    with pytest.raises(ValueError, match=r"\(n_texts, 4\)"):
        text_embeddings(encoder, np.array([1, 2, 3, 4]))
    with pytest.raises(ValueError, match="have no token"):
        text_embeddings(encoder, np.array([[0, 0, 0, 0]]))
    with pytest.raises(ValueError, match="mask_rate"):
        pretrain_text_encoder(encoder, np.array([[0, 1, 2, 3]]), epochs=1, mask_rate=0.0)
    with pytest.raises(ValueError, match="vocab_size"):
        text_encoder(vocab_size=2, max_len=4)
