"""Op families. Importing this package registers every built-in op (float side).

One module per family; each op's forward and backward sit side by side.
"""

from edgetrain.ops import activation, linear, loss, shape  # noqa: F401
