"""The integer and fixed-point primitives every int8 kernel is built from (the specification
the C runtime copies; docs/numerics.md describes each one), and post-training quantization
(``edgetrain.numerics.quantize``; tensor quantization is ``numerics.qparams.quantize``).

>>> from edgetrain.numerics import QParams, requantize
>>> requantize(np.array([1000, -1000]), np.float32(0.05), 3, "floor").tolist()
[53, -48]
"""

import numpy as np  # noqa: F401  (doctest namespace)

from edgetrain.numerics.config import Numerics
from edgetrain.numerics.config import get as get_numerics
from edgetrain.numerics.fixedpoint import exp_q30, log2_q30, softmax_ce_q30
from edgetrain.numerics.qparams import QParams, dequantize, from_range, saturate
from edgetrain.numerics.requant import multiplier, requantize
from edgetrain.numerics.rounding import Stream, round_f32, round_shift
from edgetrain.numerics.tracker import GradStats, RangeTracker

__all__ = [
           "GradStats",
           "Numerics",
           "QParams",
           "RangeTracker",
           "Stream",
           "dequantize",
           "exp_q30",
           "from_range",
           "get_numerics",
           "log2_q30",
           "multiplier",
                  "requantize",
           "round_f32",
           "round_shift",
           "saturate",
           "softmax_ce_q30",
]
