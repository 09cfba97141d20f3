"""A real-time recommendation service for the course's SASRec model (notebook 12).

* :mod:`~recsys_lib.serving.bundle`: export a trained model as a *bundle* (the ``.keras``
  model, the item table, popularity counts, a manifest with SHA-256 checksums) and load one
  back, refusing a damaged bundle;
* :mod:`~recsys_lib.serving.export`: ``python -m recsys_lib.serving.export`` trains and exports;
* :mod:`~recsys_lib.serving.scoring`: the compiled, naive and batching scorers;
* :mod:`~recsys_lib.serving.app`: the FastAPI application (``python -m recsys_lib.serving``);
* :mod:`~recsys_lib.serving.process`: start and stop the server as a subprocess;
* :mod:`~recsys_lib.serving.loadtest`: a bounded async load generator and latency summaries;
* :mod:`~recsys_lib.serving.retrieval`: exact top-k against FAISS indexes;
* :mod:`~recsys_lib.serving.bench`: ``python -m recsys_lib.serving.bench`` measures it all.

Importing this package imports neither TensorFlow nor FastAPI: each module imports what it
needs when it is used.
"""
