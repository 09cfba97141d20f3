"""Run every notebook in quick mode during the tests (see recsys_lib.config.is_quick_mode).

Notebook kernels started by nbval inherit this environment. Set RECSYS_QUICK=0 yourself to
execute the notebooks in full mode under the test runner instead.
"""

import os

os.environ.setdefault("RECSYS_QUICK", "1")
os.environ.setdefault("MPLBACKEND", "Agg")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("RECSYS_PLAIN_PROGRESS", "1")  # progress as plain lines (recsys_lib.progress)
