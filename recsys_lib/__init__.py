"""Shared code for the course "Recommender Systems, from Collaborative Filtering to Transformers".

Where each notebook's code lives (the notebooks import it; this package is the one source):

=========  ===================================================================================
notebook   modules
=========  ===================================================================================
00         ``config`` (quick mode, seeds, environment summary), ``data`` (MovieLens loading),
           ``course`` (Colab badge and setup cell)
01         ``preprocessing`` (cleaning, id encoding, k-core), ``splits`` (random, temporal,
           leave-last-out)
02         ``models.content`` (TF-IDF content-based filtering)
03         ``models.neighbours`` (item- and user-kNN)
04         ``models.factorization`` (MF, BPR, ALS), ``models.linear`` (EASE), ``sampling``
           (negative sampling)
05         ``metrics`` (rating and ranking metrics), ``models.base`` (the recommender
           interface), ``models.baselines`` (popularity, random), ``benchmark`` (the
           protocol), ``results`` (the README tables), ``stats`` (paired bootstrap intervals),
           ``compare`` (paired intervals of two saved benchmark runs)
06         ``models.deep`` (NeuMF, two towers), ``training`` (the one Keras training loop)
07, 08     ``attention`` (scaled dot-product and multi-head attention in NumPy)
09         ``models.transformer`` (positions, the causal Transformer block)
10         ``models.sasrec`` (the SASRec-style Transformer recommender)
           ``models.sequential`` (Markov chain and sequential kNN baselines),
           ``models.gru4rec`` (GRU4Rec, a recurrent sequence baseline)
12         ``serving`` (model bundles, the FastAPI service and its scorers, load tests,
           exact and FAISS retrieval)
13         ``models.sasrec`` (length buckets, token budgets), ``distributed`` (tf.distribute
           over worker processes), ``bigdata`` (large rating tables on one machine)
14         ``models.fusion`` (content + ID item vectors), ``semantic_ids`` and
           ``models.generative`` (generative retrieval), ``privacy`` (DP-SGD, the accountant,
           federated averaging), ``attribution`` (explanations and deletion curves),
           ``attacks`` (noise, duplicates, shilling, cleaning), ``compute`` (the compute bill)
exercises  ``exercises`` (checkers and the builder), ``grading`` (the teacher's grader)
all        ``checks`` (argument checks with clear messages)
=========  ===================================================================================

Every public function's docstring names the notebook that explains it. Importing the package
imports no TensorFlow: the Keras models live in their own modules.
"""
