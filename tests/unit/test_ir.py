import numpy as np
import pytest

from edgetrain.errors import EdgetrainError
from edgetrain.ir import GraphBuilder, Policy, parse_policy, register
from edgetrain.ir.registry import get_op


def tiny():
    b = GraphBuilder("tiny", (4,), seed=0)
    h = b.add("linear", "input", out_features=5, name="fc1")
    h = b.add("relu", h)
    return b.build(b.add("linear", h, out_features=3, name="fc2"), num_classes=3)


def test_registry_rejects_duplicates():
    with pytest.raises(ValueError, match="already registered"):
        register(get_op("relu"))


def test_unknown_op_suggests_closest():
    with pytest.raises(EdgetrainError, match="did you mean 'relu'"):
        get_op("rellu")


def test_builder_infers_shapes_and_params():
    g = tiny()
    assert g.shapes["fc1"] == (5,) and g.shapes["fc2"] == (3,)
    assert g.params["fc1.weight"].shape == (5, 4)
    assert g.num_params() == 5 * 4 + 5 + 3 * 5 + 3


def test_builder_rejects_unknown_input():
    b = GraphBuilder("bad", (4,))
    with pytest.raises(EdgetrainError, match="no earlier node"):
        b.add("relu", "nope")


def test_policy_last_n_and_bias_only():
    g = tiny()
    assert parse_policy("last-1").trainable_params(g) == {"fc2": {"weight", "bias"}}
    assert parse_policy("bias-only").trainable_params(g) == {"fc1": {"bias"}, "fc2": {"bias"}}
    with pytest.raises(EdgetrainError, match="only 2 weight layers"):
        parse_policy("last-3").trainable_params(g)
    with pytest.raises(EdgetrainError, match="did you mean 'fc2'"):
        parse_policy("layers:fc3").trainable_params(g)


@pytest.mark.parametrize("lam", [-0.1, 1.5])
def test_policy_lambda_range(lam):
    with pytest.raises(EdgetrainError, match=r"in \[0, 1\]"):
        Policy(lambda_min=lam)


def test_graph_copy_is_deep():
    g = tiny()
    h = g.copy()
    h.params["fc1.weight"][:] = 0
    assert np.any(g.params["fc1.weight"] != 0)
