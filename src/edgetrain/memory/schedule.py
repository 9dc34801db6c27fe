"""The training-step schedule: which buffers one training sample reads and writes, in order.

One step of on-device training processes one sample (Deutel et al. 2024, "Fully Quantized
Training ... with Dynamic Partial Gradient Updates", IEEE TCAD 2024: gradients accumulated
per sample, mini-batch SGD). The schedule is the forward ops in graph order, the loss, then
the backward in reverse: per layer its error propagation and its weight gradient (both from
the old weights, in the order ``ScheduleConfig.order``; ``plan()`` keeps the order with the
smaller arena) and, with *operator reordering* (Lin et al. 2022, "On-Device Training Under
256KB Memory"), its update right away, so that layer's gradient buffer dies before the next
layer's is made. With a
batch > 1 either each step holds the whole batch (``batch_major``, as the exported C
runtime: batch-major buffers, a layer's gradient summed over the batch and applied at once)
or samples go one at a time and gradient accumulators persist in the state region until the
update after the last sample; with ``reorder=False`` (batch 1) all gradients of the step live
together until the end.

What is kept for the backward pass is exactly what the policy needs (``OP_MEMORY``): a linear
or conv layer keeps its input only when its *weight* gradient is wanted, so bias-only
(Cai et al. 2020, TinyTL) keeps no inputs; a ReLU keeps its output (the mask), max-pooling
its input; nodes upstream of every trained parameter run no backward and keep nothing.
``partial`` (dynamic partial updates) is planned for its worst case, k = N structures in
every layer, and the schedule says so in ``notes``.

Buffer names say what they hold: ``act:<tensor>``, ``err:<tensor>``, ``grad:<param key>``,
``param:<param key>``, ``init:<param key>`` (flash image of a trained parameter; of other
state: ``init:qparams:<node>``...), ``qparams:<node>``, ``optim:<param key>``,
``scratch:<what>:<node>``. Regions: ``arena``
(planned, lifetimes), ``state`` (RAM for the whole run), ``flash``.

>>> from edgetrain.ir import GraphBuilder, Policy
>>> b = GraphBuilder("tiny", (4,), seed=0)
>>> g = b.build(b.add("linear", b.add("relu", b.add("linear", "input", out_features=8)),
...                   out_features=3))
>>> s = build_schedule(g, Policy(), ScheduleConfig(precision="int8"))
>>> [(st.phase, st.node) for st in s.steps][:4]
[('input', 'input'), ('forward', 'linear0'), ('forward', 'relu1'), ('forward', 'linear2')]
>>> [(st.phase, st.node) for st in s.steps][5:8]
[('backward_error', 'linear2'), ('backward_weight', 'linear2'), ('update', 'linear2')]
>>> s.buffers["act:relu1"].bytes, s.buffers["err:relu1"].dtype, s.buffers["grad:linear0.weight"].dtype
(8, 'int8', 'int32')
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

from edgetrain.errors import EdgetrainError, unknown
from edgetrain.ir.graph import INPUT, Graph, Node
from edgetrain.ir.policy import Policy
from edgetrain.ir.registry import get_op
from edgetrain.memory import runtime

DTYPE_BYTES = {"int8": 1, "uint8": 1, "int16": 2, "int32": 4, "int64": 8, "float32": 4,
               "et_range": runtime.RANGE_BYTES, "et_observation": runtime.OBSERVATION_BYTES,
               **runtime.STRUCT_BYTES}
ORDERS = ("error-first", "weight-first")
PHASES = ("input", "forward", "loss", "merge", "backward_weight", "backward_error", "update")


@dataclass(frozen=True)
class Precision:
    """Storage types of one precision mode (as the engines keep them)."""

    name: str
    act: str
    err: str
    grad: str  # gradient accumulators ("int64": int32 where the sum provably fits)
    weight: str
    bias: str
    quantized: bool  # int8 weights with qparams; forward accumulates in int32 scratch


PRECISIONS = {
    "int8": Precision("int8", "int8", "int8", "int64", "int8", "int32", True),
    "mixed": Precision("mixed", "int8", "float32", "float32", "int8", "int32", True),
    "float32": Precision("float32", "float32", "float32", "float32", "float32", "float32",
                         False),
}

# optimizer -> (float32 slots per parameter, float32 slots per output structure)
OPTIMIZERS = {
    "sgd": (0, 0),
    "sgd-std": (0, 2),  # the engine's gradient standardization: moving mean, variance per row
    "momentum": (1, 0),
    "adam": (2, 0),
}


@dataclass(frozen=True)
class OpMemory:
    """What an op's backward needs, for the planner. Tensors are named symbolically:
    ``"inputs"`` (all inputs) or ``"output"``."""

    view: bool = False  # the output is the input reinterpreted: no copy, no step
    error_keeps: tuple[str, ...] = ()  # kept to propagate the error to the inputs
    param_keeps: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # role -> kept
    transposed: bool = False  # error and weight gradient are the forward's MACs again
    accumulates: bool = False  # quantized forward sums into an int32 scratch, then requantizes
    int_error_scratch: tuple[str, ...] = ()  # int8 backward: int32 centred errors of these
    folds: bool = False  # BatchNorm: folded into the conv/linear before it
    known: bool = True


_WEIGHTED = OpMemory(param_keeps={"weight": ("inputs",)}, transposed=True, accumulates=True,
                     int_error_scratch=("inputs",))
_INT_POOL = ("inputs", "output")  # the C pool backward: int32 errors in and out
OP_MEMORY: dict[str, OpMemory] = {
    "linear": _WEIGHTED,
    "conv1d": _WEIGHTED,
    "conv2d": _WEIGHTED,
    "relu": OpMemory(error_keeps=("output",)),
    "relu6": OpMemory(error_keeps=("output",)),
    "maxpool1d": OpMemory(error_keeps=("inputs", "output"), int_error_scratch=_INT_POOL),
    "maxpool2d": OpMemory(error_keeps=("inputs", "output"), int_error_scratch=_INT_POOL),
    "avgpool1d": OpMemory(int_error_scratch=_INT_POOL),
    "avgpool2d": OpMemory(int_error_scratch=_INT_POOL),
    "global_avg_pool": OpMemory(int_error_scratch=_INT_POOL),
    "flatten": OpMemory(view=True),
    "add": OpMemory(accumulates=True),  # quantized: both inputs rescaled and summed in int32
    "batchnorm": OpMemory(param_keeps={"gamma": ("inputs",)}, folds=True),
}
# an op without a rule is planned conservatively: it keeps its inputs and output
CONSERVATIVE = OpMemory(error_keeps=("inputs", "output"), transposed=True, known=False)


def op_memory(op: str) -> OpMemory:
    return OP_MEMORY.get(op, CONSERVATIVE)


@dataclass(frozen=True)
class ScheduleConfig:
    precision: str = "int8"
    batch: int = 1  # samples whose gradients are accumulated before one update
    reorder: bool | None = None  # apply each update as soon as its gradient exists; None: batch==1
    optimizer: str = "sgd-std"  # the engine's: SGD with gradient standardization
    order: str = "error-first"  # per trained layer: error then weight gradient, or the reverse
    weight_channels: bool = True  # int8: per-channel weight scales (as numerics "default")
    batch_major: bool = False  # each step on the whole batch (the C runtime); else per sample

    def __post_init__(self):
        if self.precision not in PRECISIONS:
            raise unknown("precision", self.precision, PRECISIONS)
        if not isinstance(self.batch, int) or self.batch < 1:
            raise EdgetrainError(f"batch must be a positive integer, got {self.batch!r}")
        if self.reorder and self.batch > 1 and not self.batch_major:
            raise EdgetrainError("operator reordering applies each update per sample: it "
                                 f"needs batch 1, got batch {self.batch}")
        if self.optimizer not in OPTIMIZERS:
            raise unknown("optimizer", self.optimizer, OPTIMIZERS)
        if self.order not in ORDERS:
            raise unknown("backward order", self.order, ORDERS)

    @property
    def reordered(self) -> bool:
        """Each layer's update right after its gradient: by default at batch 1, and at any
        batch when each step covers the whole batch (``batch_major``)."""
        if self.reorder is None:
            return self.batch == 1 or self.batch_major
        return self.reorder

    @property
    def step_samples(self) -> int:
        """Samples one step's buffers hold: the whole batch when ``batch_major`` (as the C
        runtime: batch-major activations, errors and accumulators, a layer's gradient summed
        over the batch); otherwise one sample at a time, with gradient accumulators."""
        return self.batch if self.batch_major else 1

    @property
    def accumulates(self) -> bool:
        """Gradients persist across the samples of a batch (state accumulators)."""
        return self.step_samples < self.batch

    @property
    def c_runtime(self) -> bool:
        """int8 with the engine's optimizer: plan the exported C runtime's own buffers
        (``memory.runtime``, the sizes the C emitter declares)."""
        return self.precision == "int8" and self.optimizer == "sgd-std"

    @property
    def float_c(self) -> bool:
        """mixed or float32 with the engine's optimizer, each step on the whole batch (as
        ``PlanConfig`` sets it): plan the exported float C program's buffers
        (``schedule_float.py``, ``runtime.float_layer_arena``); a per-sample schedule is the
        engine's memory."""
        return (self.precision in runtime.FLOAT_PRECISIONS and self.optimizer == "sgd-std"
                and self.batch_major)

    @property
    def c_program(self) -> bool:
        """The plan is the exported C program's, in any precision (its runtime RAM, its
        stack reservation)."""
        return self.c_runtime or self.float_c


@dataclass(frozen=True)
class BufferSpec:
    name: str
    kind: str  # act, err, grad, scratch, param, init, qparams, optim
    dtype: str
    elements: int
    node: str  # the layer it belongs to ("input" for the sample)
    region: str  # arena, state, flash

    @property
    def bytes(self) -> int:
        return self.elements * DTYPE_BYTES[self.dtype]


@dataclass(frozen=True)
class Step:
    index: int
    phase: str  # one of PHASES
    node: str
    reads: tuple[str, ...]  # buffer names
    writes: tuple[str, ...]
    macs: int


@dataclass(frozen=True)
class Schedule:
    graph: str
    policy: Policy
    config: ScheduleConfig
    steps: tuple[Step, ...]
    buffers: Mapping[str, BufferSpec]  # every buffer of every region, by name
    trained: Mapping[str, frozenset[str]]  # node -> trained roles (after BN folding)
    notes: tuple[str, ...]
    aliases: Mapping[str, str] = field(default_factory=dict)  # "act:flatten" -> "act:pool2"
    # step index -> the C call it is part of (float C programs: a weight layer's error and
    # weight gradient are one call); empty: one call per step
    calls: tuple[int, ...] = ()

    def call_of(self, step: int) -> int:
        """The C call a step is part of (its own index unless ``calls`` joins steps)."""
        return self.calls[step] if self.calls else step

    def storage(self, name: str) -> str:
        """The buffer that holds ``name`` ("act:<tensor>", "err:<tensor>"): views (flatten)
        and folded BatchNorm share their input's buffer."""
        return self.aliases.get(name, name)

    def region(self, region: str) -> list[BufferSpec]:
        """The buffers of one region, in the order they were made."""
        return [b for b in self.buffers.values() if b.region == region]

    def trainable_param_count(self) -> int:
        """Number of parameter values this schedule updates."""
        return sum(b.elements for b in self.buffers.values()
                   if b.kind == "param" and b.region == "state")


def elements(shape: tuple[int, ...]) -> int:
    return math.prod(shape)


def folded_nodes(graph: Graph) -> frozenset[str]:
    """BatchNorm nodes folded into the conv/linear feeding them: the on-device engine trains
    the folded graph in every precision (``numerics.quantize.fold_batchnorm``). A BatchNorm
    that cannot fold (no weight layer of its own before it) stays a layer."""
    consumers = graph.consumers()
    producers = {n.name: n for n in graph.nodes}
    return frozenset(
        n.name for n in graph.nodes
        if op_memory(n.op).folds and n.inputs[0] in producers
        and "weight" in producers[n.inputs[0]].params and len(consumers[n.inputs[0]]) == 1)


def trained_roles(graph: Graph, policy: Policy, folded: frozenset[str]) -> dict:
    """node -> trained roles, without folded nodes (their parameters live in the conv)."""
    return {k: v for k, v in policy.trainable_params(graph).items() if k not in folded}


def error_needed(graph: Graph, trained: Mapping[str, frozenset[str]]) -> set[str]:
    """Tensors whose error must be computed: those downstream of a trained parameter."""
    needed: set[str] = set()
    for node in graph.nodes:
        if node.name in trained or any(t in needed for t in node.inputs):
            needed.add(node.name)
    return needed


def param_dtype(precision: Precision, role: str) -> str:
    """Storage type of a parameter role: int8 weights and int32 biases when quantized."""
    return {"weight": precision.weight, "bias": precision.bias}.get(role, "float32")


class _Builder:
    """Builds one Schedule; mutable only while building."""

    def __init__(self, graph: Graph, policy: Policy, config: ScheduleConfig):
        self.graph, self.policy, self.config = graph, policy, config
        self.prec = PRECISIONS[config.precision]
        self.folded = folded_nodes(graph)
        self.trained = trained_roles(graph, policy, self.folded)
        self.needed = error_needed(graph, self.trained)
        self.steps: list[Step] = []
        self.buffers: dict[str, BufferSpec] = {}
        self.act: dict[str, str] = {INPUT: "act:" + INPUT}  # tensor -> buffer of its value
        self.err: dict[str, str] = {}  # tensor -> buffer of its error
        self.err_made: set[str] = set()
        self.pending: dict[str, list[str]] = {}  # int8 error buffer -> contributions to merge
        self.notes: list[str] = []
        self.joined: set[int] = set()  # steps that are part of the previous step's C call

    def calls(self) -> tuple[int, ...]:
        """Step index -> C call index (() when every step is its own call)."""
        if not self.joined:
            return ()
        out, call = [], -1
        for step in self.steps:
            call += step.index not in self.joined
            out.append(call)
        return tuple(out)

    def aliases(self) -> dict[str, str]:
        """Tensor names whose value or error lives in another tensor's buffer."""
        out = {f"act:{t}": b for t, b in self.act.items() if b != f"act:{t}"}
        out.update({f"err:{t}": b for t, b in self.err.items() if b != f"err:{t}"})
        return out

    def is_view(self, node: Node) -> bool:
        return node.name in self.folded or op_memory(node.op).view

    def buffer(self, name: str, kind: str, dtype: str, count: int, node: str,
               region: str) -> str:
        if name not in self.buffers:
            self.buffers[name] = BufferSpec(name, kind, dtype, int(count), node, region)
        return name

    def step(self, phase: str, node: str, reads, writes, macs: int = 0) -> None:
        self.steps.append(Step(len(self.steps), phase, node, tuple(dict.fromkeys(reads)),
                               tuple(dict.fromkeys(writes)), int(macs)))

    def forward_macs(self, node: Node) -> int:
        if node.name in self.folded:
            return 0
        return get_op(node.op).macs(node.attrs, self.graph.in_shapes(node),
                                    self.graph.shapes[node.name])

    def resolve(self, node: Node, symbols: tuple[str, ...]) -> list[str]:
        """Buffers named by 'inputs'/'output' for this node."""
        table = {"inputs": [self.act[t] for t in node.inputs], "output": [self.act[node.name]]}
        return [b for s in symbols for b in table[s]]

    def param_buffers(self, node: Node) -> list[str]:
        if node.name in self.folded:
            return []
        names = [f"param:{key}" for key in node.params.values()]
        qp = f"qparams:{node.name}"
        return names + ([qp] if qp in self.buffers else [])

    # --- parameters, quantization state, optimizer state -------------------------------
    def add_params(self, node: Node) -> None:
        """Trained parameters (and state such as BN statistics) go to RAM with an initial
        image in flash; frozen ones stay in flash."""
        if node.name in self.folded:
            return
        roles = self.trained.get(node.name, frozenset())
        for role, key in node.params.items():
            value = self.graph.params[key]
            in_ram = role in roles or (role in get_op(node.op).buffers and bool(roles))
            dtype = param_dtype(self.prec, role)
            region = "state" if in_ram else "flash"
            self.buffer(f"param:{key}", "param", dtype, value.size, node.name, region)
            if in_ram:
                self.buffer(f"init:{key}", "init", dtype, value.size, node.name, "flash")
        if self.config.c_runtime and self.is_weight_layer(node):
            self.add_c_layer_state(node, roles)
        elif self.prec.quantized and "weight" in node.params:
            rows = self.graph.params[node.params["weight"]].shape[0]
            # weight range tracker lo/hi per channel and the bias scale per channel (float32),
            # plus the tracker's seen flag and the output's scale and zero point
            self.buffer(f"qparams:{node.name}", "qparams", "int32", 3 * rows + 3, node.name,
                        "state" if roles else "flash")

    def add_c_layer_state(self, node: Node, roles: frozenset[str]) -> None:
        """The C runtime's state of a weight layer: weight scales (RAM when its weights are
        trained, else constants in flash), range trackers of its weights (when trained),
        output and input error (when propagated); the bias scales are constants."""
        c_out, train_w = self.geometry(node)[3], "weight" in roles
        w_ranges = c_out if self.config.weight_channels else 1
        region = "state" if train_w else "flash"
        self.buffer(f"qparams:{node.name}", "qparams", "float32", c_out, node.name, region)
        self.buffer(f"qparams:bias_scale:{node.name}", "qparams", "float32", c_out, node.name,
                    "flash")
        count = 1 + self.wants_dx(node) + (w_ranges if train_w else 0)
        self.buffer(f"ranges:{node.name}", "qparams", "et_range", count, node.name, "state")
        if not train_w:
            self.buffer(f"ranges:w:{node.name}", "qparams", "et_range", w_ranges, node.name,
                        "flash")

    def wants_dx(self, node: Node) -> bool:
        """The layer propagates an error to its input (a tensor that needs one)."""
        return node.inputs[0] != INPUT and node.inputs[0] in self.needed

    def is_weight_layer(self, node: Node) -> bool:
        return node.op in runtime.WEIGHT_OPS and node.name not in self.folded

    def geometry(self, node: Node) -> tuple[int, ...]:
        return runtime.layer_geometry(node.op, node.attrs, self.graph.shapes[node.inputs[0]])

    def c_layer_buffers(self, node: Node, members: tuple[str, ...]) -> list[str]:
        """int8 C runtime: the named arena buffers of a weight layer (its conv scratch and
        per-layer buffers, ``runtime.conv_scratch`` / ``runtime.weight_layer_arena``)."""
        if not (self.config.c_runtime and self.is_weight_layer(node)):
            return []
        geo, roles = self.geometry(node), self.trained.get(node.name, frozenset())
        sizes = dict(runtime.conv_scratch(node.op, geo))
        sizes.update({m: (ct, n) for m, (ct, n, wanted) in runtime.weight_layer_arena(
            geo, self.config.step_samples, "weight" in roles, "bias" in roles,
            self.policy.partial, self.config.weight_channels).items() if wanted})
        return [self.buffer(f"scratch:{m}:{node.name}", "scratch",
                            runtime.CTYPE_DTYPE[sizes[m][0]], sizes[m][1], node.name, "arena")
                for m in members if m in sizes]

    def add_optimizer_state(self, node: Node) -> None:
        if self.config.c_runtime:
            return self.add_c_gradient_statistics(node)
        per_param, per_row = OPTIMIZERS[self.config.optimizer]
        for role in sorted(self.trained.get(node.name, ())):
            value = self.graph.params[node.params[role]]
            rows = value.shape[0] if role == "weight" else 1  # a bias is one row
            count = per_param * value.size + per_row * rows
            if count:
                self.buffer(f"optim:{node.params[role]}", "optim", "float32", count, node.name,
                            "state")

    def add_c_gradient_statistics(self, node: Node) -> None:
        """The C runtime's gradient standardization: one statistic (mean, variance, seen) per
        weight row, one for the bias, and the partial update's error maximum."""
        roles = self.trained.get(node.name, ())
        rows = self.graph.params[node.params["weight"]].shape[0] if "weight" in roles else 0
        count = {"weight": rows + bool(self.policy.partial), "bias": 1}
        for role in sorted(roles):
            self.buffer(f"optim:{node.params[role]}", "optim", "et_range", count[role],
                        node.name, "state")

    def add_c_tensor_state(self) -> None:
        """The C runtime's range trackers of the input, adds, error merges and the loss
        error, and its queue of deferred observations (every activation/error tracker)."""
        nodes = [n for n in self.graph.nodes if n.name not in self.folded]
        adds = sum(n.op == "add" for n in nodes)
        merges = sum(name.startswith("scratch:merge:") for name in self.buffers)
        layers = [n for n in nodes if self.is_weight_layer(n)]
        trackers = 2 + adds + merges
        deferrable = trackers + len(layers) + sum(self.wants_dx(n) for n in layers)
        self.buffer("qparams:tensors", "qparams", "et_range", trackers, "input", "state")
        self.buffer("queue:observations", "queue", "et_observation",
                    runtime.queue_entries(deferrable), "input", "state")
        self.add_c_descriptors(nodes)

    def add_c_descriptors(self, nodes: list[Node]) -> None:
        """The C runtime's descriptors (``runtime.STRUCT_BYTES``), in RAM with a flash image:
        an et_tensor for the input, every node's output, the loss error, every input error a
        backward step makes (an add passes its error on) and every merged error; an et_wlayer
        per weight layer; an et_intop per other op except add."""
        dx = sum(s.phase == "backward_error" and self.graph.node(s.node).op != "add"
                 for s in self.steps)
        merges = sum(s.phase == "merge" for s in self.steps)
        layers = sum(self.is_weight_layer(n) for n in nodes)
        self.add_descriptor_buffers({
            "et_tensor": 2 + len(nodes) + dx + merges, "et_wlayer": layers,
            "et_intop": sum(not self.is_weight_layer(n) and n.op != "add" for n in nodes)})

    def add_descriptor_buffers(self, counts: dict[str, int]) -> None:
        """``count`` C structs of each kind in RAM (state), with their flash init image."""
        for struct, count in counts.items():
            if count:
                name = self.buffer(f"runtime:{struct}", "runtime", struct, count, "runtime",
                                   "state")
                self.buffer(f"init:{name}", "init", struct, count, "runtime", "flash")

    def add_tensor_qparams(self) -> None:
        """Per-tensor scale, zero point and tracked range (lo, hi) of every int8 act/err."""
        if self.config.c_runtime:
            return self.add_c_tensor_state()
        tensors = [b for b in self.buffers.values() if b.kind in ("act", "err")]
        if self.prec.quantized and tensors:
            self.buffer("qparams:tensors", "qparams", "int32", 4 * len(tensors), "input",
                        "state")

    def add_state_images(self) -> None:
        """Range trackers, scales and optimizer statistics start from values stored in flash
        (copied at boot, like trained parameters); accumulators start at zero."""
        for spec in [b for b in self.buffers.values() if b.region == "state"]:
            if spec.kind in ("qparams", "optim"):
                self.buffer(f"init:{spec.name}", "init", spec.dtype, spec.elements, spec.node,
                            "flash")

    # --- forward and loss --------------------------------------------------------------
    def samples(self, shape: tuple[int, ...]) -> int:
        """Elements of a per-sample tensor of ``shape`` in one step's buffer."""
        return self.config.step_samples * elements(shape)

    def forward(self) -> None:
        self.buffer(self.act[INPUT], "act", self.prec.act, self.samples(self.graph.input_shape),
                    INPUT, "arena")
        self.step("input", INPUT, [], [self.act[INPUT]])
        for node in self.graph.nodes:
            self.add_params(node)
            if self.is_view(node):
                self.act[node.name] = self.act[node.inputs[0]]
                continue
            out = self.buffer(f"act:{node.name}", "act", self.prec.act,
                              self.samples(self.graph.shapes[node.name]), node.name, "arena")
            self.act[node.name] = out
            reads = [self.act[t] for t in node.inputs] + self.param_buffers(node)
            scratch = [*self.acc_scratch(node), *self.c_layer_buffers(node, ("colf",))]
            self.step("forward", node.name, reads, [*scratch, out], self.forward_macs(node))

    def acc_scratch(self, node: Node) -> list[str]:
        """Quantized weight layers and adds sum into int32, then requantize: int32[output]."""
        if not (self.prec.quantized and op_memory(node.op).accumulates):
            return []
        return [self.buffer(f"scratch:acc:{node.name}", "scratch", "int32",
                            self.samples(self.graph.shapes[node.name]), node.name, "arena")]

    def error_buffer(self, tensor: str) -> str:
        """The buffer of a tensor's error; a view shares its input's."""
        if tensor not in self.err:
            node = next((n for n in self.graph.nodes if n.name == tensor), None)
            if node is not None and self.is_view(node):
                self.err[tensor] = self.error_buffer(node.inputs[0])
            else:
                self.err[tensor] = self.buffer(f"err:{tensor}", "err", self.prec.err,
                                               self.samples(self.graph.shapes[tensor]), tensor,
                                               "arena")
        return self.err[tensor]

    def loss(self) -> None:
        """int8: fixed-point softmax-CE gradient (int64[samples, K]) and exponentials
        (int64[K]); otherwise float32 probabilities [K]."""
        out = self.graph.output
        k = elements(self.graph.shapes[out])
        dtype, count = (("int64", (self.config.step_samples + 1) * k) if self.prec.err == "int8"
                        else ("float32", k))
        scratch = self.buffer("scratch:loss", "scratch", dtype, count, self.graph.loss, "arena")
        err = self.error_buffer(out)
        self.err_made.add(err)
        self.step("loss", self.graph.loss, [self.act[out]], [scratch, err])

    # --- backward and updates ----------------------------------------------------------
    def grad_dtype(self, node: Node, role: str) -> str:
        """int8: a weight-gradient sum of batch x positions products of centred int8 values
        (|.| <= 255 each) fits int32 below 2^31, as the C runtime checks; else int64. Bias
        gradients sum centred errors only: int32."""
        if self.prec.grad != "int64":
            return self.prec.grad
        shape = self.graph.shapes[node.name]
        positions = elements(shape) // shape[0]
        fits = role != "weight" or self.config.batch * positions * 255 * 255 < 2**31
        return "int32" if fits else "int64"

    def grad_buffers(self, node: Node) -> list[str]:
        region = "state" if self.config.accumulates else "arena"
        return [self.buffer(f"grad:{node.params[role]}", "grad", self.grad_dtype(node, role),
                            self.graph.params[node.params[role]].size, node.name, region)
                for role in sorted(self.trained.get(node.name, ()))]

    def keeps_for_params(self, node: Node) -> list[str]:
        mem = op_memory(node.op)
        default = () if mem.known else ("inputs",)
        roles = sorted(self.trained[node.name])
        return self.resolve(node, tuple(s for r in roles for s in mem.param_keeps.get(r, default)))

    def topk_scratch(self, node: Node) -> list[str]:
        """Dynamic partial updates rank the N filters/rows by error: index + magnitude each."""
        if self.config.c_runtime and self.policy.partial:  # uint8 kept flags, every layer
            return self.c_layer_buffers(node, ("kept",))
        if not self.policy.partial or "weight" not in self.trained[node.name]:
            return []
        rows = self.graph.params[node.params["weight"]].shape[0]
        return [self.buffer(f"scratch:topk:{node.name}", "scratch", "int32", 2 * rows,
                            node.name, "arena")]

    def backward_weight(self, node: Node) -> list[str]:
        mem = op_memory(node.op)
        grads = self.grad_buffers(node)
        accumulate = grads if self.config.accumulates else []
        costly = any(r in mem.param_keeps or not mem.known for r in self.trained[node.name])
        scratch = self.topk_scratch(node)  # filled, then read, by this step
        scratch += self.c_layer_buffers(node, ("colb", "wt", "kb"))
        if self.policy.partial and "weight" in self.trained[node.name]:
            scratch += self.c_layer_buffers(node, ("dxacc",))  # error magnitudes per row
        ec_reads, ec_writes = self.centred_errors(node)
        reads = [self.err[node.name], *ec_reads, *self.keeps_for_params(node), *scratch]
        self.step("backward_weight", node.name, reads + accumulate, ec_writes + scratch + grads,
                  self.forward_macs(node) if costly else 0)
        return grads

    def error_target(self, node: Node, tensor: str) -> tuple[str, list[str]]:
        """(buffer this node writes the error of ``tensor`` to, buffers it must read).
        Fan-out: float errors are summed in place; int8 errors stay apart (each has its own
        scale) until the merge step before ``tensor``'s backward."""
        buf = self.error_buffer(tensor)
        if buf not in self.err_made:
            self.err_made.add(buf)
            return buf, []
        if self.prec.err != "int8":
            return buf, [buf]
        spec = self.buffers[buf]
        part = self.buffer(f"{buf}@{node.name}", "err", spec.dtype, spec.elements, spec.node,
                           "arena")
        self.pending.setdefault(buf, []).append(part)
        return part, []

    def int_error_scratch(self, node: Node) -> list[str]:
        """int8: the input error is summed in int32 (pools: from int32 centred output errors),
        then requantized."""
        symbols = op_memory(node.op).int_error_scratch
        if self.prec.err != "int8" or not symbols:
            return []
        if self.config.c_runtime and self.is_weight_layer(node):
            return self.c_layer_buffers(node, ("dxacc", "colb", "wt", "kb", "kept"))
        shapes = {"inputs": [self.graph.shapes[t] for t in node.inputs],
                  "output": [self.graph.shapes[node.name]]}
        count = sum(elements(shape) for sym in symbols for shape in shapes[sym])
        return [self.buffer(f"scratch:dx:{node.name}", "scratch", "int32", count, node.name,
                            "arena")]

    def centred_errors(self, node: Node) -> tuple[list[str], list[str]]:
        """int8 weight layers: the output errors centred (and rescaled per weight channel),
        int16[output], made by the node's first backward step, read by its second:
        (reads, writes) for the step asking."""
        if self.prec.err != "int8" or not op_memory(node.op).transposed:
            return [], []
        name = f"scratch:ec:{node.name}"
        if name in self.buffers:
            return [name], []
        self.buffer(name, "scratch", "int16", self.samples(self.graph.shapes[node.name]),
                    node.name, "arena")
        return [], [name]

    def backward_error(self, node: Node) -> None:
        mem = op_memory(node.op)
        targets = [t for t in node.inputs if t in self.needed]
        if not targets:
            return
        outs, accumulate = [], []
        for t in targets:
            buf, reads = self.error_target(node, t)
            outs.append(buf)
            accumulate += reads
        weight = [f"param:{node.params['weight']}"] if "weight" in node.params else []
        ec_reads, ec_writes = self.centred_errors(node)
        reads = [self.err[node.name], *ec_reads, *self.resolve(node, mem.error_keeps), *weight,
                 *accumulate]
        writes = [*ec_writes, *self.int_error_scratch(node), *outs]
        self.step("backward_error", node.name, reads, writes,
                  self.forward_macs(node) if mem.transposed else 0)

    def one_call(self, first: int) -> None:
        """The C runtime computes a weight layer's input error and weight gradient in one
        call (et_bwd_weight): every buffer of either step is live during both."""
        steps = self.steps[first:]
        if len(steps) != 2:
            return
        a, b = steps
        self.steps[first:] = [
            Step(a.index, a.phase, a.node, tuple(dict.fromkeys(a.reads + b.reads)),
                 tuple(dict.fromkeys(a.writes + b.writes)), a.macs),
            Step(b.index, b.phase, b.node, tuple(dict.fromkeys(b.reads + a.reads + a.writes)),
                 b.writes, b.macs)]

    def merge(self, node: Node) -> None:
        """Sum the int8 error contributions of a fan-out tensor into its error buffer."""
        buf = self.err[node.name]
        parts = self.pending.pop(buf, [])
        if parts:  # each part rescaled to the merge scale and summed in int32
            scratch = self.buffer(f"scratch:merge:{node.name}", "scratch", "int32",
                                  self.buffers[buf].elements, node.name, "arena")
            self.step("merge", node.name, [buf, *parts], [scratch, buf])

    def update(self, node: Node) -> None:
        grads = [f"grad:{node.params[r]}" for r in sorted(self.trained[node.name])]
        params = [f"param:{node.params[r]}" for r in sorted(self.trained[node.name])]
        state = [b for b in (f"optim:{node.params[r]}" for r in sorted(self.trained[node.name]))
                 if b in self.buffers]
        qp = [f"qparams:{node.name}"] if f"qparams:{node.name}" in self.buffers else []
        kept = [b for b in (f"scratch:kept:{node.name}",) if b in self.buffers]
        scratch = self.c_layer_buffers(node, ("wrow", "s_g"))  # per-row scales of the update
        self.step("update", node.name, grads + params + state + qp + kept,
                  params + state + qp + scratch)

    def layer_phases(self, node: Node) -> list:
        """The backward steps of one node in the configured order (both use the old weights;
        the update, if reordered, follows them)."""
        if node.name not in self.trained:
            return [self.backward_error]
        if self.config.order == "error-first":
            return [self.backward_error, self.backward_weight]
        return [self.backward_weight, self.backward_error]

    def backward(self) -> list[Node]:
        """Backward steps in reverse order; returns the trained nodes in that order."""
        order = []
        for node in reversed(self.graph.nodes):
            if self.is_view(node) or node.name not in self.needed:
                continue
            if self.error_buffer(node.name) not in self.err_made:
                continue  # its output reaches no loss: no error arrives
            self.merge(node)
            if node.name in self.trained:
                self.add_optimizer_state(node)
                order.append(node)
            first = len(self.steps)
            for phase in self.layer_phases(node):
                phase(node)
            if self.config.c_runtime and self.is_weight_layer(node):
                self.one_call(first)
            if node.name in self.trained and self.config.reordered:
                self.update(node)
        return order

    def describe(self) -> None:
        if self.policy.partial:
            self.notes.append(
                f"{self.policy.name}: planned for its worst case, k = N filters/rows in every "
                "trained layer (lambda = lambda_max); top-k scratch included")
        if self.folded:
            self.notes.append(f"{len(self.folded)} BatchNorm layer(s) folded into the conv "
                              f"before them ({self.prec.name} precision)")
        for op in sorted({n.op for n in self.graph.nodes if not op_memory(n.op).known}):
            self.notes.append(f"op '{op}' has no memory rule: planned conservatively "
                              "(keeps its inputs and output for backward)")
        if self.config.batch > 1 and not self.config.accumulates:
            self.notes.append(f"batch {self.config.batch}: as the C runtime, each step runs on "
                              "the whole batch (activations, errors and accumulators for "
                              f"{self.config.batch} samples); a layer's gradient sums the "
                              "batch and its update follows at once")
        elif self.config.batch > 1:
            self.notes.append(f"batch {self.config.batch}: gradient accumulators persist "
                              "across the batch; the update runs after the last sample")
        elif not self.config.reordered:
            self.notes.append("no operator reordering: all gradients live until the updates "
                              "at the end of the step")


def build_schedule(graph: Graph, policy: Policy, config: ScheduleConfig) -> Schedule:
    """The schedule of one training sample for ``graph`` trained under ``policy``."""
    from edgetrain.memory.schedule_float import FloatCBuilder  # it extends _Builder

    b = (FloatCBuilder if config.float_c else _Builder)(graph, policy, config)
    if not b.trained:
        raise EdgetrainError(f"policy '{policy.name}' trains no parameter of model "
                             f"'{graph.name}' at {config.precision} precision")
    b.forward()
    b.loss()
    trained_order = b.backward()
    if not config.reordered:
        for node in trained_order:
            b.update(node)
    b.add_tensor_qparams()
    b.add_state_images()
    b.describe()
    return Schedule(graph.name, policy, config, tuple(b.steps), dict(b.buffers),
                    dict(b.trained), tuple(b.notes), b.aliases(), b.calls())
