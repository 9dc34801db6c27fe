"""Op families. Importing this package registers every built-in op (float side).

One module per family; each op's forward and backward sit side by side.
"""

from edgetrain.ops import activation, conv, linear, loss, norm, pool, shape  # noqa: F401
