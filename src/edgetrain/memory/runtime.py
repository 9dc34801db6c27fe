"""The buffers of the int8 C runtime (``export/runtime/et_engine.c``), by the one rule both the
planner (``schedule.py``, int8 precision) and the C emitter (``export/emit.py``) use, so
that the planner's peak RAM is what the exported program declares.

The runtime translates the int8 engine (Deutel et al. 2024, "Fully Quantized Training ...
with Dynamic Partial Gradient Updates", IEEE TCAD 2024); beside activations, errors and
gradients it keeps, per weight layer, int32 accumulators, int16 centred errors and, for the
gathered (im2col-style) convolutions, operand columns and transposed weights; its state is
range trackers (``et_range``: lo, hi, seen = 12 bytes) and gradient statistics of the same
shape, and a queue of deferred observations (``et_observation``, 16 bytes).

Beside the model's buffers the C program holds **runtime RAM**: a descriptor per tensor,
weight layer and integer op (``et_tensor``, ``et_wlayer``, ``et_intop``: structs in .data,
:data:`STRUCT_BYTES`) and a fixed part that does not depend on the model
(:func:`fixed_ram`: the C library's, the runtime's and model.c's own statics). Both are
measured from the toolchain's ELF by ``tests/cross/test_deploy_ram.py``.

The float programs (``et_float.c``, precisions mixed and float32; planned by
``schedule_float.py``) keep per weight layer the buffers of :func:`float_layer_arena`, also
the float emitter's rule, and the descriptors ``et_ftensor`` and ``et_flayer``.

>>> geo = layer_geometry("conv2d", {"out_channels": 8, "kernel": 3, "padding": 1}, (4, 6, 6))
>>> geo
(4, 6, 6, 8, 6, 6, 3, 3, 1, 1, 1, 1, 1)
>>> sorted((k, c, n) for k, (c, n) in conv_scratch("conv2d", geo).items())
[('colb', 'int16_t', 72), ('colf', 'int16_t', 36), ('kb', 'int32_t', 8), ('wt', 'int8_t', 288)]
>>> weight_layer_arena(geo, 1, True, True, False, False)["gw"]
('int32_t', 288, True)
>>> float_layer_arena(geo, 2, True, False, True)["kept"]
('uint8_t', 16, True)
>>> fixed_ram("armv7e-m").total, fixed_ram("armv8-m.main").total
(129, 129)
"""

from __future__ import annotations

from dataclasses import dataclass

from edgetrain.ops.conv import geometry_1d, geometry_2d

# bytes of one C element, by C type (the planner's dtypes in CTYPE_DTYPE)
CTYPE_BYTES = {"int8_t": 1, "uint8_t": 1, "int16_t": 2, "int32_t": 4, "int64_t": 8, "float": 4}
CTYPE_DTYPE = {"int8_t": "int8", "uint8_t": "uint8", "int16_t": "int16", "int32_t": "int32",
               "int64_t": "int64", "float": "float32"}
RANGE_BYTES = 12  # et_range: float lo, float hi, int32 seen
OBSERVATION_BYTES = 16  # et_observation of the deferred queue
WEIGHT_OPS = ("linear", "conv1d", "conv2d")
# Sizes of the runtime's descriptors (et_engine.h) on every Cortex-M (AAPCS: 32-bit pointers,
# 4-byte int32/float): one et_tensor per activation, input error and merged error, one
# et_wlayer per linear/conv layer, one et_intop per other op except add. They are mutable
# (scales, zero points), so they live in .data: RAM, with a load image in flash.
# The float runtime (et_float.h, precisions mixed and float32) adds one et_ftensor per float
# tensor and one et_flayer per weight layer with a float side.
STRUCT_BYTES = {"et_tensor": 20, "et_wlayer": 184, "et_intop": 52, "et_ftensor": 12,
                "et_flayer": 100}
FLOAT_PRECISIONS = ("mixed", "float32")  # the exported C programs with float errors


@dataclass(frozen=True)
class FixedRam:
    """RAM of the deployed C program that does not depend on the model, in bytes (.data +
    .bss of ``et_deploy`` built with ``ET_SEMIHOSTING=0``, linked with newlib-nano, no
    rdimon, ``--gc-sections``)."""

    c_library: int  # newlib-nano: errno's reentrancy struct (impure_data 96 B, _impure_ptr
    #                 4 B) reached from libm's sqrtf wrapper, and libm's __fdlib_version (1 B)
    runtime: int  # et_engine.c: et_error and the deferred-observation queue's pointer/counters
    model: int  # model.c: the random stream (et_stream, 4 B) and the step's loss (int64)

    @property
    def total(self) -> int:
        return self.c_library + self.runtime + self.model


# The stack the exported program's linker script reserves (export.sources.DEFAULT_STACK_BYTES
# renders it into et_cortexm.ld): not .data/.bss, but the link fails unless .data + .bss +
# stack fit the device's RAM, so an int8 plan that fits is one that links.
STACK_RESERVE_BYTES = 8 * 1024

# per core architecture (devices.toml `arch`); the same newlib-nano objects on both today
FIXED_RAM = {"armv6-m": FixedRam(101, 16, 12), "armv7e-m": FixedRam(101, 16, 12)}


def fixed_ram(arch: str) -> FixedRam:
    """The fixed runtime RAM of a core architecture; an architecture not measured yet (a
    user's core) is planned with the largest measured one."""
    return FIXED_RAM.get(arch, max(FIXED_RAM.values(), key=lambda f: f.total))


def layer_geometry(op: str, attrs, in_shape: tuple[int, ...]) -> tuple[int, ...]:
    """The et_wlayer geometry of a weight layer: (c_in, h, w, c_out, ho, wo, kh, kw, sh, sw,
    ph, pw, groups); a linear layer is a 1x1 convolution of a 1x1 input."""
    if op == "linear":
        return (in_shape[0], 1, 1, int(attrs["out_features"]), 1, 1, 1, 1, 1, 1, 0, 0, 1)
    geo = geometry_2d(attrs, in_shape) if op == "conv2d" else geometry_1d(attrs, in_shape)
    return (geo.c_in, *geo.in_hw, geo.c_out, *geo.out_hw, *geo.kernel, *geo.stride,
            *geo.padding, geo.groups)


def fan_in(geo: tuple[int, ...]) -> int:
    """Inputs of one output value (a weight row's length): c_in / groups x kh x kw."""
    return geo[0] // geo[-1] * geo[6] * geo[7]


def weight_layer_arena(geo: tuple[int, ...], batch: int, train_w: bool, train_b: bool,
                       partial: bool, per_channel: bool) -> dict[str, tuple[str, int, bool]]:
    """member -> (C type, elements, wanted) of a weight layer's arena buffers: int32 output
    sums (acc), int32 input-error sums (dxacc), int16 centred errors (ec), gradients (gw, gb),
    the partial update's kept rows, and the update's float row scratch (wrow, s_g)."""
    c_in, h, w, c_out, ho, wo = geo[:6]
    k = fan_in(geo)
    return {"acc": ("int32_t", batch * c_out * ho * wo, True),
            "dxacc": ("int32_t", batch * max(c_in * h * w, c_out), True),
            "ec": ("int16_t", batch * c_out * ho * wo, True),
            "gw": ("int32_t", c_out * k, train_w), "gb": ("int32_t", c_out, train_b),
            "kept": ("uint8_t", batch * c_out, partial),
            "wrow": ("float", k, train_w and per_channel), "s_g": ("float", c_out, train_w)}


def float_layer_arena(geo: tuple[int, ...], batch: int, train_w: bool, train_b: bool,
                      partial: bool) -> dict[str, tuple[str, int, bool]]:
    """member -> (C type, elements, wanted) of the arena buffers of a float weight layer
    (``et_flayer`` of ``et_float.c``, precisions mixed and float32): float gradients summed
    over the batch (gw, gb) and, for a partial update of its weights, the error magnitude per
    output channel (mags) and the kept channels per sample (kept)."""
    c_out, k = geo[3], fan_in(geo)
    partial = partial and train_w
    return {"gw": ("float", c_out * k, train_w), "gb": ("float", c_out, train_b),
            "mags": ("float", c_out, partial), "kept": ("uint8_t", batch * c_out, partial)}


def conv_scratch(op: str, geo: tuple[int, ...]) -> dict[str, tuple[str, int]]:
    """Scratch of a gathered convolution (et_conv_scratch): forward operand column (colf),
    backward column (colb), transposed weights (wt), kept rows (kb). Linear layers and
    depthwise convolutions (direct loops) have none."""
    c_in, _, _, c_out, ho, wo, kh, kw = geo[:8]
    cg, og = c_in // geo[-1], c_out // geo[-1]
    if op == "linear" or (cg == 1 and og == 1):
        return {}
    return {"colf": ("int16_t", cg * kh * kw), "colb": ("int16_t", max(og * kh * kw, ho * wo)),
            "wt": ("int8_t", c_out * cg * kh * kw), "kb": ("int32_t", c_out)}


def queue_entries(deferrable: int) -> int:
    """Entries of the deferred-observation queue: two per activation/error tracker (merges)
    and one spare."""
    return 2 * deferrable + 1
