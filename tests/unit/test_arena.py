"""Arena planning properties on random lifetimes and on random graphs and policies: no two
buffers overlap while both live, every buffer lies inside the arena, arena >= lower bound."""

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edgetrain.errors import EdgetrainError
from edgetrain.ir import GraphBuilder, Policy
from edgetrain.memory.arena import (
    GreedyBest,
    GreedyBySize,
    Request,
    first_fit,
    get_planner,
    lower_bound,
)
from edgetrain.memory.plan import PlanConfig, plan


@st.composite
def requests(draw):
    n = draw(st.integers(1, 25))
    out = []
    for i in range(n):
        first = draw(st.integers(0, 30))
        out.append(Request(f"b{i}", 8 * draw(st.integers(0, 64)), first,
                           first + draw(st.integers(0, 10))))
    return out


def assert_no_overlap(offsets, reqs):
    for i, a in enumerate(reqs):
        for b in reqs[i + 1:]:
            live_together = a.first <= b.last and b.first <= a.last
            if live_together and a.size and b.size:
                oa, ob = offsets[a.name], offsets[b.name]
                assert oa + a.size <= ob or ob + b.size <= oa, (a, b, oa, ob)


@settings(max_examples=150, deadline=None)
@given(requests())
def test_planners_never_overlap_live_buffers(reqs):
    sizes = []
    for planner in (GreedyBySize(), GreedyBest()):
        layout = planner.place(reqs)
        assert_no_overlap(layout.offsets, reqs)
        assert all(0 <= layout.offsets[r.name] and layout.offsets[r.name] + r.size <= layout.size
                   for r in reqs)
        assert layout.size >= lower_bound(reqs)
        sizes.append(layout.size)
    assert sizes[1] <= sizes[0]  # best-of-orders includes the size order


def test_first_fit_uses_the_lowest_gap():
    assert first_fit(16, []) == 0
    assert first_fit(16, [(0, 8), (32, 64)]) == 8
    assert first_fit(32, [(0, 8), (32, 64)]) == 64
    assert first_fit(8, [(8, 16), (0, 8)]) == 16


def test_lower_bound_is_the_largest_live_sum():
    reqs = [Request("a", 10, 0, 2), Request("b", 20, 2, 3), Request("c", 40, 4, 4)]
    assert lower_bound(reqs) == 40
    assert lower_bound(reqs[:2]) == 30


def test_unknown_planner_is_a_clear_error():
    with pytest.raises(EdgetrainError, match="unknown planner 'gredy'"):
        get_planner("gredy")


# --- random graphs and policies -------------------------------------------------------------
BLOCKS = ("conv_relu", "conv_bn_relu6", "depthwise", "maxpool", "residual")


def add_block(b, h, kind, draw):
    channels = b.shapes[h][0]
    if kind == "conv_relu":
        h = b.add("conv2d", h, out_channels=draw(st.integers(1, 6)), kernel=3, padding=1)
        return b.add("relu", h)
    if kind == "conv_bn_relu6":
        h = b.add("conv2d", h, out_channels=draw(st.integers(1, 6)), kernel=1)
        return b.add("relu6", b.add("batchnorm", h))
    if kind == "depthwise":
        return b.add("conv2d", h, out_channels=channels, kernel=3, padding=1, groups=channels)
    if kind == "maxpool" and min(b.shapes[h][1:]) >= 2:
        return b.add("maxpool2d", h, kernel=2)
    if kind == "residual":
        inner = b.add("relu", b.add("conv2d", h, out_channels=channels, kernel=3, padding=1))
        return b.add("add", h, inner)
    return h


@st.composite
def graphs(draw):
    size = draw(st.integers(4, 8))
    b = GraphBuilder("random", (draw(st.integers(1, 3)), size, size), seed=0)
    h = b.add("conv2d", "input", out_channels=draw(st.integers(1, 4)), kernel=3, padding=1)
    for kind in draw(st.lists(st.sampled_from(BLOCKS), max_size=5)):
        h = add_block(b, h, kind, draw)
    if draw(st.booleans()):
        h = b.add("global_avg_pool", h)
    else:
        h = b.add("flatten", h)
    if draw(st.booleans()):
        h = b.add("relu", b.add("linear", h, out_features=draw(st.integers(2, 12))))
    return b.build(b.add("linear", h, out_features=3))


@st.composite
def policies(draw, graph):
    layers = [n.name for n in graph.weight_nodes()]
    kind = draw(st.sampled_from(("full", "last", "bias", "names")))
    lam = draw(st.sampled_from((None, 0.1, 0.5)))
    if kind == "last":
        return Policy(last_n=draw(st.integers(1, len(layers))), lambda_min=lam)
    if kind == "bias":
        return Policy(bias_only=True, lambda_min=lam)
    if kind == "names":
        picked = draw(st.lists(st.sampled_from(layers), min_size=1, unique=True))
        return Policy(names=tuple(picked), lambda_min=lam)
    return Policy(lambda_min=lam)


def check_plan(p):
    arena = p.arena
    live = [0] * len(p.schedule.steps)
    for buf in arena:
        assert buf.offset % p.config.alignment == 0
        assert 0 <= buf.offset and buf.offset + buf.bytes <= p.arena_bytes, buf
        reserved = -(-buf.bytes // p.config.alignment) * p.config.alignment
        for s in range(buf.first, buf.last + 1):
            live[s] += reserved
    for i, a in enumerate(arena):
        for b in arena[i + 1:]:
            if a.first <= b.last and b.first <= a.last and a.bytes and b.bytes:
                assert a.offset + a.bytes <= b.offset or b.offset + b.bytes <= a.offset, (a, b)
    assert p.lower_bound_bytes == max(live)
    assert p.arena_bytes >= p.lower_bound_bytes
    assert p.peak_ram_bytes == p.arena_bytes + p.state_bytes


def check_written_before_read(p):
    """Every arena buffer is first written, and read only while it is live."""
    by_name = {b.name: b for b in p.arena}
    for step in p.schedule.steps:
        for name in step.reads:
            if name in by_name:
                buf = by_name[name]
                assert buf.first < step.index <= buf.last or (
                    buf.first == step.index and name in step.writes), (name, step)
    for buf in p.arena:
        assert buf.name in p.schedule.steps[buf.first].writes, buf


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_random_graphs_and_policies_plan_soundly(data):
    g = data.draw(graphs())
    policy = data.draw(policies(g))
    config = PlanConfig(precision=data.draw(st.sampled_from(("int8", "mixed", "float32"))),
                        batch=data.draw(st.sampled_from((1, 4))),
                        planner=data.draw(st.sampled_from(("greedy", "greedy-best"))),
                        alignment=data.draw(st.sampled_from((4, 8, 16))))
    p = plan(g, "imxrt1062", policy, config=config)
    check_plan(p)
    check_written_before_read(p)
    check_backward_follows_policy(p, policy, g)


def check_backward_follows_policy(p, policy, graph):
    """Weight gradients exactly for the trained layers; bias-only reads no activation for
    them; nothing runs backward upstream of the first trained parameter."""
    steps = p.schedule.steps
    trained = set(p.schedule.trained)
    assert {s.node for s in steps if s.phase == "backward_weight"} == trained
    if policy.bias_only:
        assert not [b for s in steps if s.phase == "backward_weight" for b in s.reads
                    if b.startswith("act:")]
    order = [n.name for n in graph.nodes]
    first = min(order.index(n) for n in trained)
    backward = {s.node for s in steps if s.phase in ("backward_weight", "backward_error")}
    assert all(order.index(n) >= first for n in backward)
