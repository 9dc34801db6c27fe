"""Graph IR: Graph, Node, GraphBuilder, the op registry, and update policies (as data)."""

from edgetrain.ir.graph import INPUT, Graph, GraphBuilder, Node, validate
from edgetrain.ir.policy import Policy, parse_policy
from edgetrain.ir.registry import OpDef, Want, get_op, op_names, register

__all__ = [
           "INPUT",
           "Graph",
           "GraphBuilder",
           "Node",
           "OpDef",
           "Policy",
           "Want",
           "get_op",
           "op_names",
           "parse_policy",
           "register",
           "validate",
]
