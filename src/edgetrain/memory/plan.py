"""The training plan: does one training step of a model, under a policy, fit a device?

``plan()`` builds the step schedule (``schedule.py``), derives every buffer's lifetime,
places the transient buffers in one arena (``arena.py``), lays out the state that lives for
the whole run, and adds the cost model (``cost.py``). The exporter lays out its static
arena from the same Plan: ``Plan.arena`` holds each buffer's name, dtype, element count,
bytes, first/last step and offset.

Peak RAM = arena (activations, kept tensors, errors, per-layer gradients, scratch)
         + state (trained weights and biases, gradient accumulators when batch > 1,
           optimizer state, quantization parameters; with the engine's optimizer, in
           every precision, the exported C program's runtime RAM too: its descriptors and
           fixed statics, ``Plan.runtime_ram_bytes``, ``memory/runtime.py``), which is
           the .data + .bss of the exported model ELF (int8: ``et_engine.c``; mixed and
           float32: ``et_float.c``, planned by ``schedule_float.py``);
flash    = frozen weights + constants + initial images of the trained parameters (.data)
         + a code-size ESTIMATE (labelled as such).
The C stack is not included in the peak; at int8 the device check (``fits``,
``ram_over_bytes``) adds the exported program's stack reservation, as its linker does.

>>> from edgetrain.ir import GraphBuilder
>>> b = GraphBuilder("tiny", (16,), seed=0)
>>> g = b.build(b.add("linear", b.add("relu", b.add("linear", "input", out_features=8)),
...                   out_features=4))
>>> p = plan(g, "nrf52840", "full", "int8", batch=1)
>>> p.fits, p.arena_bytes, p.lower_bound_bytes, p.trainable_params
(True, 640, 640, 172)
>>> p.runtime_ram_bytes  # 7 et_tensor, 2 et_wlayer, 1 et_intop; C library and statics
689
>>> [(b.name, b.offset, b.first, b.last) for b in p.arena][:2]
[('scratch:acc:linear0', 0, 1, 1), ('scratch:acc:linear2', 0, 3, 3)]
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from edgetrain.errors import EdgetrainError, unknown
from edgetrain.ir.graph import Graph
from edgetrain.ir.policy import Policy, parse_policy
from edgetrain.memory import devices, runtime
from edgetrain.memory.arena import Layout, Request, align, get_planner, live_bytes, ranked
from edgetrain.memory.cost import Cost, estimate
from edgetrain.memory.schedule import ORDERS, Schedule, ScheduleConfig, build_schedule, op_memory

# code-size ESTIMATE (bytes of Thumb-2 code), per piece of the generated program
CODE_ESTIMATE = {"runtime": 6144, "forward_kernel": 768, "backward_kernel": 1024,
                 "per_node": 64, "per_update": 256}


@dataclass(frozen=True)
class PlanConfig:
    precision: str = "int8"
    batch: int = 1
    reorder: bool | None = None  # None: reorder at batch 1 or when batch-major
    optimizer: str = "sgd-std"  # optimizer state to plan (schedule.OPTIMIZERS)
    alignment: int = 8  # bytes; every buffer offset and size is a multiple
    planner: str = "greedy-best"
    order: str = "auto"  # backward order per layer (schedule.ORDERS); auto: smaller arena
    weight_channels: bool = True  # int8: per-channel weight scales (numerics.weight_channels)
    # each step on the whole batch (batch-major buffers) or one sample at a time with gradient
    # accumulators; None: as the exported C programs with sgd-std (batch-major), else per sample
    batch_major: bool | None = None

    def __post_init__(self):
        if not isinstance(self.alignment, int) or self.alignment < 1:
            raise EdgetrainError(f"alignment must be a positive integer, got {self.alignment}")
        if self.order != "auto" and self.order not in ORDERS:
            raise unknown("backward order", self.order, ("auto", *ORDERS))

    def schedule_configs(self) -> list[ScheduleConfig]:
        orders = ORDERS if self.order == "auto" else (self.order,)
        return [ScheduleConfig(self.precision, self.batch, self.reorder, self.optimizer, order,
                               self.weight_channels, self.is_batch_major) for order in orders]

    @property
    def is_batch_major(self) -> bool:
        if self.batch_major is not None:
            return self.batch_major
        return self.optimizer == "sgd-std"  # the exported C programs' (every precision)


@dataclass(frozen=True)
class Buffer:
    name: str  # e.g. "act:conv1", "err:conv1", "grad:fc.weight", "scratch:topk:fc"
    kind: str
    dtype: str
    elements: int
    bytes: int  # exact; the space reserved is bytes rounded up to the alignment
    region: str  # arena, state or flash
    node: str
    first: int  # first step using it (arena); state/flash buffers live for the whole run
    last: int
    offset: int  # from the start of its region


@dataclass(frozen=True)
class LayerRow:
    """What one node costs and where its buffers live."""

    node: str
    op: str
    role: str  # trained, backprop, forward, view or folded
    forward_macs: int
    backward_error_macs: int
    backward_weight_macs: int
    act_bytes: int  # its output in the arena
    kept_bytes: int  # of that output, bytes kept alive for the backward pass
    err_bytes: int
    grad_bytes: int
    ram_bytes: int  # state: trained parameters, accumulators, optimizer state, qparams
    flash_bytes: int
    peak_live_bytes: int  # arena bytes live during this node's steps (max)


@dataclass(frozen=True)
class Plan:
    graph: str
    device: devices.Device
    policy: Policy
    config: PlanConfig
    schedule: Schedule
    arena: tuple[Buffer, ...]  # by offset
    state: tuple[Buffer, ...]
    flash: tuple[Buffer, ...]
    arena_bytes: int
    lower_bound_bytes: int
    state_bytes: int
    flash_data_bytes: int
    code_bytes_estimate: int
    cost: Cost
    layers: tuple[LayerRow, ...]
    trainable_params: int
    planner: str

    @property
    def peak_ram_bytes(self) -> int:
        return self.arena_bytes + self.state_bytes

    @property
    def runtime_ram_bytes(self) -> int:
        """Of the state, the C program's own RAM beside the model's buffers (plans with
        sgd-std, every precision): descriptors of tensors, layers and ops, and the fixed C
        library/runtime statics."""
        return sum(b.bytes for b in self.state if b.kind == "runtime")

    @property
    def flash_bytes(self) -> int:
        return self.flash_data_bytes + self.code_bytes_estimate

    @property
    def stack_reserved_bytes(self) -> int:
        """Plans of an exported C program (any precision): the stack its linker script
        reserves beside .data + .bss (not part of the peak RAM; the link needs it)."""
        return runtime.STACK_RESERVE_BYTES if self.schedule.config.c_program else 0

    @property
    def ram_over_bytes(self) -> int:
        """Bytes by which peak RAM and the stack reservation exceed the device's SRAM."""
        return max(0, self.peak_ram_bytes + self.stack_reserved_bytes - self.device.sram_bytes)

    @property
    def flash_over_bytes(self) -> int:
        return max(0, self.flash_bytes - self.device.flash_bytes)

    @property
    def fits(self) -> bool:
        return self.ram_over_bytes == 0 and self.flash_over_bytes == 0

    @property
    def notes(self) -> tuple[str, ...]:
        return self.schedule.notes

    def buffer(self, name: str) -> Buffer:
        """A buffer by name; a view's name ("act:flatten") gives the buffer it shares."""
        name = self.schedule.storage(name)
        for b in self.arena + self.state + self.flash:
            if b.name == name:
                return b
        raise KeyError(name)

    def live_at(self, step: int) -> list[Buffer]:
        """Arena buffers live during ``step``, largest first."""
        live = [b for b in self.arena if b.first <= step <= b.last]
        return sorted(live, key=lambda b: (-b.bytes, b.name))

    @property
    def peak_step(self) -> int:
        """The first step at which the most arena bytes are live (what to shrink first)."""
        live = [sum(align(b.bytes, self.config.alignment) for b in self.live_at(i))
                for i in range(len(self.schedule.steps))]
        return live.index(max(live)) if live else 0

    def peak_summary(self, top: int = 5) -> dict:
        """The peak step and its largest live buffers."""
        step = self.schedule.steps[self.peak_step]
        return {"index": step.index, "phase": step.phase, "node": step.node,
                "largest_live": [{"name": b.name, "bytes": b.bytes}
                                 for b in self.live_at(step.index)[:top]]}

    def to_dict(self, detail: bool = True) -> dict:
        """JSON-ready summary (the keys of ``edgetrain plan --json``)."""
        out = {"device": self.device.name, "model": self.graph, "policy": self.policy.name,
               "precision": self.config.precision, "batch": self.config.batch,
               "reorder": self.schedule.config.reordered,
               "backward_order": self.schedule.config.order, "fits": self.fits,
               "peak_ram_bytes": self.peak_ram_bytes, "arena_bytes": self.arena_bytes,
               "lower_bound_bytes": self.lower_bound_bytes, "state_bytes": self.state_bytes,
               "runtime_ram_bytes": self.runtime_ram_bytes,
               "stack_reserved_bytes": self.stack_reserved_bytes,
               "sram_bytes": self.device.sram_bytes, "ram_over_bytes": self.ram_over_bytes,
               "flash_bytes": self.flash_bytes, "flash_data_bytes": self.flash_data_bytes,
               "code_bytes_estimate": self.code_bytes_estimate,
               "device_flash_bytes": self.device.flash_bytes,
               "flash_over_bytes": self.flash_over_bytes,
               "trainable_params": self.trainable_params, "planner": self.planner,
               **self.cost.to_dict(), "notes": list(self.notes),
               "peak_step": self.peak_summary()}
        if detail:
            out["layers"] = [asdict(r) for r in self.layers]
            out["buffers"] = [asdict(b) for b in self.arena + self.state + self.flash]
            out["steps"] = [asdict(s) for s in self.schedule.steps]
            out["aliases"] = dict(self.schedule.aliases)
        return out


def lifetimes(schedule: Schedule) -> dict[str, tuple[int, int]]:
    """First and last step of every arena buffer."""
    spans: dict[str, tuple[int, int]] = {}
    for step in schedule.steps:
        for name in step.reads + step.writes:
            if schedule.buffers[name].region != "arena":
                continue
            first, _ = spans.get(name, (step.index, step.index))
            spans[name] = (first, step.index)
    return spans


def arena_requests(schedule: Schedule, alignment: int) -> list[Request]:
    """One placement request per arena buffer: aligned size and lifetime."""
    return [Request(name, align(schedule.buffers[name].bytes, alignment), first, last)
            for name, (first, last) in lifetimes(schedule).items()]


def _buffer(schedule: Schedule, name: str, first: int, last: int, offset: int) -> Buffer:
    spec = schedule.buffers[name]
    return Buffer(spec.name, spec.kind, spec.dtype, spec.elements, spec.bytes, spec.region,
                  spec.node, first, last, offset)


def sequential(schedule: Schedule, region: str, alignment: int) -> tuple[tuple[Buffer, ...], int]:
    """Buffers of a whole-run region laid out one after another: (buffers, region bytes)."""
    out, offset = [], 0
    last = len(schedule.steps) - 1
    for spec in schedule.region(region):
        out.append(_buffer(schedule, spec.name, 0, last, offset))
        offset += align(spec.bytes, alignment)
    return tuple(out), offset


def fixed_runtime(schedule: Schedule, device: devices.Device, alignment: int,
                  offset: int) -> tuple[tuple[Buffer, ...], int]:
    """The exported C program's fixed RAM (``runtime.fixed_ram`` of the device's core
    architecture) as one state buffer placed at ``offset``: (buffers, aligned bytes). Only
    plans with sgd-std model a C program."""
    if not schedule.config.c_program:
        return (), 0
    n = runtime.fixed_ram(device.core.arch).total
    last = len(schedule.steps) - 1
    return (Buffer("runtime:fixed", "runtime", "uint8", n, n, "state", "runtime", 0, last,
                   offset),), align(n, alignment)


def code_estimate(schedule: Schedule, graph: Graph) -> int:
    """Code-size ESTIMATE: runtime, one kernel per op (and per backward op), glue per node."""
    e = CODE_ESTIMATE
    forward_ops = {n.op for n in graph.nodes}
    backward_ops = {graph.node(s.node).op for s in schedule.steps
                    if s.phase in ("backward_error", "backward_weight")}
    updates = sum(s.phase == "update" for s in schedule.steps)
    return (e["runtime"] + e["forward_kernel"] * len(forward_ops)
            + e["backward_kernel"] * len(backward_ops) + e["per_node"] * len(graph.nodes)
            + e["per_update"] * updates)


BACKWARD_PHASES = ("backward_weight", "backward_error", "update")


def _node_role(schedule: Schedule, node) -> str:
    """trained, backprop (the error passes through), forward (no backward), view, folded."""
    phases = {s.phase for s in schedule.steps if s.node == node.name}
    if node.name in schedule.trained:
        return "trained"
    if op_memory(node.op).view:
        return "view"
    if not phases:
        return "folded"
    return "backprop" if phases & set(BACKWARD_PHASES) else "forward"


def layer_row(schedule: Schedule, node, arena: dict[str, Buffer], live: list[int],
              regions: dict[str, list[Buffer]]) -> LayerRow:
    steps = [s for s in schedule.steps if s.node == node.name]
    macs = {p: sum(s.macs for s in steps if s.phase == p)
            for p in ("forward", "backward_error", "backward_weight")}
    act = arena.get(f"act:{node.name}")
    kept_for_backward = act is not None and any(
        act.name in s.reads for s in schedule.steps if s.phase in BACKWARD_PHASES)
    kept = act.bytes if kept_for_backward else 0
    err = arena.get(f"err:{node.name}")
    grads = sum(b.bytes for b in list(arena.values()) + regions["state"]
                if b.kind == "grad" and b.node == node.name)
    ram = sum(b.bytes for b in regions["state"] if b.node == node.name)
    flash = sum(b.bytes for b in regions["flash"] if b.node == node.name)
    peak = max((live[s.index] for s in steps), default=0)
    return LayerRow(node.name, node.op, _node_role(schedule, node), macs["forward"],
                    macs["backward_error"], macs["backward_weight"],
                    act.bytes if act else 0, kept, err.bytes if err else 0, grads, ram, flash,
                    peak)


def placement_requests(schedule: Schedule, requests: list[Request]) -> list[Request]:
    """What the planner places: the requests themselves, or for a float C program their
    lifetimes in C calls, ranked (``arena.ranked``), as its emitter places its arena."""
    if not schedule.config.float_c:
        return requests
    return ranked([Request(r.name, r.size, schedule.call_of(r.first), schedule.call_of(r.last))
                   for r in requests])


def placed(schedule: Schedule, config: PlanConfig) -> tuple[Schedule, list[Request], Layout]:
    """The schedule, its arena requests and their placement."""
    requests = arena_requests(schedule, config.alignment)
    layout = get_planner(config.planner).place(placement_requests(schedule, requests))
    return schedule, requests, layout


def _as_policy(policy: str | Policy | None, lambda_min: float | None) -> Policy:
    if isinstance(policy, Policy):
        return policy
    return parse_policy(policy or "full", lambda_min=lambda_min)


def plan(graph: Graph, device: str | devices.Device, policy: str | Policy | None = "full",
         precision: str = "int8", batch: int = 1, *, lambda_min: float | None = None,
         config: PlanConfig | None = None) -> Plan:
    """Plan one training step of ``graph`` under ``policy`` on ``device``.

    ``config`` (a PlanConfig) overrides ``precision`` and ``batch`` when given."""
    device = devices.get(device)
    policy = _as_policy(policy, lambda_min)
    config = config or PlanConfig(precision=precision, batch=batch)
    schedule, requests, layout = min(
        (placed(build_schedule(graph, policy, c), config) for c in config.schedule_configs()),
        key=lambda placement: placement[2].size)
    arena = sorted((_buffer(schedule, r.name, r.first, r.last, layout.offsets[r.name])
                    for r in requests), key=lambda b: (b.offset, b.first, b.name))
    state, state_bytes = sequential(schedule, "state", config.alignment)
    fixed, fixed_bytes = fixed_runtime(schedule, device, config.alignment, state_bytes)
    state, state_bytes = state + fixed, state_bytes + fixed_bytes
    flash, flash_bytes = sequential(schedule, "flash", config.alignment)
    live = live_bytes(requests, len(schedule.steps))
    by_name = {b.name: b for b in arena}
    regions = {"state": list(state), "flash": list(flash)}
    rows = tuple(layer_row(schedule, n, by_name, live, regions) for n in graph.nodes)
    return Plan(graph.name, device, policy, config, schedule, tuple(arena), state, flash,
                layout.size, max(live, default=0), state_bytes, flash_bytes,
                code_estimate(schedule, graph), estimate(schedule, device), rows,
                schedule.trainable_param_count(), config.planner)
