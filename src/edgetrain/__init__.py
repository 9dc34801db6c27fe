"""edgetrain: train neural networks on microcontrollers.

Pipeline (DESIGN.md): model -> ir.Graph -> quantize -> plan -> train -> export -> verify.
"""

__version__ = "0.1.0"
