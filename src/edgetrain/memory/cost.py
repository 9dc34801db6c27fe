"""Cost model of one training sample: MACs per phase, bytes moved, and a latency estimate
from a cycles-per-MAC table per core (``devices.toml``). The latency is always an ESTIMATE:
plain-C loop costs, no caches or wait states modelled; instruction counts measured in QEMU
calibrate it later.

MACs are counted as the engines count them: the forward MACs of each op (``OpDef.macs``);
the error propagation of a conv/linear layer (transposed op) and its weight gradient cost
the forward MACs again; bias gradients, ReLU masks and pooling cost no MACs (their bytes
are counted as moved). Dynamic partial updates (Deutel et al. 2024) do the full backward
work in the worst case (k = N); their best case (k = lambda_min N) is reported beside it.

>>> from edgetrain.ir import GraphBuilder, Policy
>>> from edgetrain.memory.schedule import ScheduleConfig, build_schedule
>>> from edgetrain.memory.devices import get
>>> b = GraphBuilder("tiny", (16,), seed=0)
>>> g = b.build(b.add("linear", b.add("relu", b.add("linear", "input", out_features=8)),
...                   out_features=4))
>>> s = build_schedule(g, Policy(), ScheduleConfig(precision="int8"))
>>> c = estimate(s, get("nrf52840"))
>>> c.macs
{'forward': 160, 'backward_error': 32, 'backward_weight': 160}
"""

from __future__ import annotations

from dataclasses import dataclass

from edgetrain.memory.devices import Device
from edgetrain.memory.schedule import Schedule

MAC_PHASES = ("forward", "backward_error", "backward_weight")
# precision -> phase -> the type a MAC is computed in
MAC_DTYPE = {
    "int8": {"forward": "int8", "backward_error": "int8", "backward_weight": "int8"},
    "mixed": {"forward": "int8", "backward_error": "float32", "backward_weight": "float32"},
    "float32": {"forward": "float32", "backward_error": "float32", "backward_weight": "float32"},
}


@dataclass(frozen=True)
class Cost:
    macs: dict[str, int]  # per sample, worst case: forward, backward_error, backward_weight
    bytes_moved: int  # per sample: every buffer read or written (updates shared by the batch)
    cycles_estimate: int
    latency_ms_estimate: float  # per sample, worst case
    latency_ms_estimate_by_phase: dict[str, float]
    latency_ms_estimate_best: float  # partial updates at lambda_min (= worst otherwise)

    def to_dict(self) -> dict:
        return {"macs_per_sample": dict(self.macs), "bytes_moved_per_sample": self.bytes_moved,
                "cycles_estimate": self.cycles_estimate,
                "latency_ms_estimate": round(self.latency_ms_estimate, 3),
                "latency_ms_estimate_by_phase": {k: round(v, 3) for k, v in
                                                 self.latency_ms_estimate_by_phase.items()},
                "latency_ms_estimate_best_case": round(self.latency_ms_estimate_best, 3)}


def macs_per_phase(schedule: Schedule) -> dict[str, int]:
    """MACs of one sample per phase (worst case for partial updates)."""
    out = dict.fromkeys(MAC_PHASES, 0)
    for step in schedule.steps:
        if step.phase in out:
            out[step.phase] += step.macs
    return out


def bytes_moved_by_phase(schedule: Schedule) -> dict[str, float]:
    """Bytes read + written per phase and sample; updates run once per batch, and a step
    whose buffers hold the whole batch (the C runtime's) runs once per batch too."""
    out: dict[str, float] = {}
    config = schedule.config
    share = {"update": 1.0 / config.batch}
    for step in schedule.steps:
        moved = sum(schedule.buffers[b].bytes for b in step.reads + step.writes)
        per_sample = share.get(step.phase, 1.0 / config.step_samples)
        out[step.phase] = out.get(step.phase, 0.0) + moved * per_sample
    return out


def phase_cycles(schedule: Schedule, device: Device, backward_fraction: float) -> dict:
    """Estimated cycles per phase; backward MACs scaled by ``backward_fraction``."""
    dtypes = MAC_DTYPE[schedule.config.precision]
    macs = macs_per_phase(schedule)
    cycles = {p: b * device.core.cycles_per_byte for p, b in bytes_moved_by_phase(schedule).items()}
    for phase, count in macs.items():
        scale = 1.0 if phase == "forward" else backward_fraction
        cycles[phase] = cycles.get(phase, 0.0) + (
            count * scale * device.core.cycles_per_mac(dtypes[phase]))
    return cycles


def estimate(schedule: Schedule, device: Device) -> Cost:
    """MACs, bytes moved and the latency estimate of one sample on ``device``."""
    worst = phase_cycles(schedule, device, 1.0)
    lam = schedule.policy.lambda_min
    best = phase_cycles(schedule, device, lam) if lam is not None else worst
    to_ms = 1000.0 / device.clock_hz
    total = sum(worst.values())
    return Cost(macs_per_phase(schedule), round(sum(bytes_moved_by_phase(schedule).values())),
                round(total), total * to_ms, {p: c * to_ms for p, c in worst.items()},
                sum(best.values()) * to_ms)
