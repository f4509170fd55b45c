"""Deprecated alias of `gfsr_tf.metrics` (the pure metric functions; renamed so that it is not
confused with `gfsr_tf.evaluators`). `import gfsr_tf.evaluation` and its submodules keep working
for one release, with a DeprecationWarning; import `gfsr_tf.metrics` instead."""
import importlib
import sys
import warnings

from ..metrics import *  # noqa: F401,F403
from ..metrics import __all__  # noqa: F401

warnings.warn("gfsr_tf.evaluation was renamed gfsr_tf.metrics; the old name will be removed in "
              "the next release", DeprecationWarning, stacklevel=2)

for _name in ("auc_tables", "classification", "faithfulness", "heatmaps", "localization",
              "robustness", "segx"):
    sys.modules[f"{__name__}.{_name}"] = importlib.import_module(f"gfsr_tf.metrics.{_name}")
