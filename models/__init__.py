"""Keras/TFRS models of the two-stage recommender, and their explanations: pure computation.

TensorFlow Recommenders needs Keras 2 (``tf-keras``), which TensorFlow picks only when
``TF_USE_LEGACY_KERAS=1`` is set before its first import. Every use of TensorFlow in the product
goes through this package, so this is the one place that sets it.
"""

import os
import sys

if "tensorflow" in sys.modules and os.environ.get("TF_USE_LEGACY_KERAS") != "1":
    raise ImportError(
        "TensorFlow was imported before shoprec's models without TF_USE_LEGACY_KERAS=1, so it "
        "uses Keras 3, which TensorFlow Recommenders cannot use: import models first or set "
        "TF_USE_LEGACY_KERAS=1"
    )
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
