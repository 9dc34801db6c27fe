"""The training-step schedule of the exported float C programs (precisions ``mixed`` and
``float32`` of ``export/emit_float.py`` and ``runtime/et_float.c``; the mixed and float32
baselines of Deutel et al. 2024, "On-Device Training of Fully Quantized Deep Neural Networks
on Cortex-M Microcontrollers").

The schedule follows the emitter's calls one for one, so that the plan's arena and state are
what the exported program declares:

* forward: ``float32`` float activations ``[B*n]``; ``mixed`` the int8 forward of the int8
  runtime (int8 activations, int32 sums, operand columns, add sums);
* loss: the float error of the logits ``[B*K]`` (``mixed``: the int8 logits dequantized into
  a float ``[B*K]`` first);
* backward, in reverse: every input error a node makes is a new float buffer ``[B*n]`` (an
  add passes its error on to both inputs, a flatten or folded BatchNorm to its input); the
  errors of a tensor read by several nodes are summed into a new buffer (``et_f_merge``); a
  weight layer's input error and gradients are one call (``et_*_bwd_weight``) over the
  buffers of ``runtime.float_layer_arena``, its update follows at once; any other op reads
  its input and output activations;
* state: trained parameters, gradient statistics, ``mixed``'s int8 layer state and range
  trackers (as the int8 runtime's), the deferred-observation queue and the descriptors
  (``et_ftensor``, ``et_flayer``, ``et_tensor``, ``et_wlayer``, ``et_intop``).

>>> from edgetrain.ir import GraphBuilder, Policy
>>> from edgetrain.memory.schedule import ScheduleConfig, build_schedule
>>> b = GraphBuilder("tiny", (4,), seed=0)
>>> g = b.build(b.add("linear", b.add("relu", b.add("linear", "input", out_features=8)),
...                   out_features=3))
>>> s = build_schedule(g, Policy(), ScheduleConfig(precision="float32", batch_major=True))
>>> [(st.phase, st.node) for st in s.steps][5:9]
[('backward_error', 'linear2'), ('backward_weight', 'linear2'), ('update', 'linear2'), ('backward_error', 'relu1')]
>>> s.buffers["err:relu1>linear0"].dtype, s.buffers["runtime:et_ftensor"].elements
('float32', 7)
"""

from __future__ import annotations

from edgetrain.ir.graph import INPUT, Node
from edgetrain.memory import runtime
from edgetrain.memory.schedule import _Builder


class FloatCBuilder(_Builder):
    """Builds the Schedule of an exported float C program (``ScheduleConfig.float_c``)."""

    def __init__(self, graph, policy, config):
        super().__init__(graph, policy, config)
        self.mixed = config.precision == "mixed"
        self.parts: dict[str, list[str]] = {}  # tensor -> error buffers to sum
        self.counts = {"dx": 0, "merges": 0}

    # --- the int8 pieces of mixed: its forward layers' buffers and state ------------------
    def c_layer_buffers(self, node: Node, members: tuple[str, ...]) -> list[str]:
        """mixed: the int8 forward's operand column (colf); nothing else of the int8 layer."""
        if not (self.mixed and self.is_weight_layer(node) and "colf" in members):
            return []
        sizes = runtime.conv_scratch(node.op, self.geometry(node))
        if "colf" not in sizes:
            return []
        ctype, count = sizes["colf"]
        return [self.buffer(f"scratch:colf:{node.name}", "scratch", runtime.CTYPE_DTYPE[ctype],
                            count, node.name, "arena")]

    def add_params(self, node: Node) -> None:
        """Parameters (RAM when trained); mixed: every weight layer's int8 state as the int8
        runtime keeps it (scales, range trackers)."""
        if node.name in self.folded:
            return
        roles = self.trained.get(node.name, frozenset())
        for role, key in node.params.items():
            dtype = "float32" if not self.mixed else {"weight": "int8", "bias": "int32"}[role]
            size = self.graph.params[key].size
            self.buffer(f"param:{key}", "param", dtype, size, node.name,
                        "state" if role in roles else "flash")
            if role in roles:
                self.buffer(f"init:{key}", "init", dtype, size, node.name, "flash")
        if self.mixed and self.is_weight_layer(node):
            self.add_c_layer_state(node, roles)

    def add_optimizer_state(self, node: Node) -> None:
        self.add_c_gradient_statistics(node)

    # --- loss --------------------------------------------------------------------------
    def loss(self) -> None:
        out = self.graph.output
        k = self.samples(self.graph.shapes[out])
        err = self.buffer(f"err:{out}", "err", "float32", k, out, "arena")
        self.err[out] = err
        source = self.act[out]
        if self.mixed:  # et_m_logits: the int8 logits dequantized
            logits = self.buffer("scratch:logits", "scratch", "float32", k, self.graph.loss,
                                 "arena")
            self.step("loss", self.graph.loss, [source], [logits])
            source = logits
        self.step("loss", self.graph.loss, [source], [err])
        self.parts[out] = [err]

    # --- backward ----------------------------------------------------------------------
    def dx_name(self, node: Node, tensor: str) -> str:
        """The name of the input error ``node`` makes: after the tensor that holds it (a
        folded BatchNorm's output is its conv's)."""
        while tensor in self.folded:
            tensor = self.graph.node(tensor).inputs[0]
        return f"err:{node.name}>{tensor}"

    def float_error(self, name: str, tensor: str) -> str:
        """A new float error buffer of the whole batch with the shape of ``tensor``."""
        return self.buffer(name, "err", "float32", self.samples(self.graph.shapes[tensor]),
                           tensor, "arena")

    def merged(self, node: Node) -> str:
        """The error of ``node``'s output: its one part, or the sum of its parts (a new
        buffer, et_f_merge)."""
        parts = self.parts.pop(node.name)
        if len(parts) == 1:
            self.err[node.name] = parts[0]
            return parts[0]
        err = self.float_error(f"err:{node.name}", node.name)
        self.step("merge", node.name, parts, [err])
        self.counts["merges"] += 1
        self.err[node.name] = err
        return err

    def wants(self, tensor: str) -> bool:
        return tensor != INPUT and tensor in self.needed

    def pass_on(self, tensor: str, err: str) -> None:
        if self.wants(tensor):
            self.parts.setdefault(tensor, []).append(err)

    def backward(self) -> list[Node]:
        """Backward calls in reverse graph order, as the emitter walks them; returns the
        trained nodes in that order."""
        order = []
        for node in reversed(self.graph.nodes):
            if node.name not in self.needed or node.name not in self.parts:
                continue
            err = self.merged(node)
            if self.is_view(node) or node.op == "add":  # the error passes on, no call
                for t in node.inputs:
                    self.pass_on(t, err)
            elif self.is_weight_layer(node):
                self.weight_backward(node, err)
            else:
                self.op_backward(node, err)
            if node.name in self.trained:
                self.add_optimizer_state(node)
                if self.config.reordered:  # as the C program (reorder=False: at the end)
                    self.update(node)
                order.append(node)
        return order

    def op_backward(self, node: Node, err: str) -> None:
        """et_*_bwd_int: reads the error and the op's input and output activations."""
        t = node.inputs[0]
        if not self.wants(t):
            return
        dx = self.float_error(self.dx_name(node, t), t)
        self.counts["dx"] += 1
        self.step("backward_error", node.name, [err, self.act[t], self.act[node.name]], [dx])
        self.pass_on(t, dx)

    def weight_backward(self, node: Node, err: str) -> None:
        """et_*_bwd_weight: input error and gradients in one call (both steps hold all its
        buffers)."""
        t, roles = node.inputs[0], self.trained.get(node.name, frozenset())
        train_w = "weight" in roles
        reads = [err] + ([self.act[t]] if train_w else [])
        writes = self.float_layer_buffers(node, roles)
        dx = None
        if self.wants(t):
            dx = self.float_error(self.dx_name(node, t), t)
            self.counts["dx"] += 1
            writes.append(dx)
            self.step("backward_error", node.name, reads + [f"param:{node.params['weight']}"],
                      writes, self.forward_macs(node))
        if roles:
            if dx:
                self.joined.add(len(self.steps))  # the same C call as the error's step
            self.step("backward_weight", node.name, reads, writes,
                      self.forward_macs(node) if train_w else 0)
        if dx:
            self.pass_on(t, dx)

    def float_layer_buffers(self, node: Node, roles: frozenset[str]) -> list[str]:
        """The layer's arena buffers by ``runtime.float_layer_arena``: gradients (named after
        their parameters) and, for a partial update, error magnitudes and kept channels."""
        names = {"gw": f"grad:{node.params['weight']}", "gb": f"grad:{node.params['bias']}",
                 "mags": f"scratch:mags:{node.name}", "kept": f"scratch:kept:{node.name}"}
        kinds = {"gw": "grad", "gb": "grad", "mags": "scratch", "kept": "scratch"}
        rule = runtime.float_layer_arena(self.geometry(node), self.config.step_samples,
                                         "weight" in roles, "bias" in roles,
                                         self.policy.partial)
        return [self.buffer(names[m], kinds[m], runtime.CTYPE_DTYPE[ctype], count, node.name,
                            "arena") for m, (ctype, count, wanted) in rule.items() if wanted]

    # --- state of the whole program ----------------------------------------------------
    def add_tensor_qparams(self) -> None:
        """Trackers (mixed: the input's and the adds'), the deferred-observation queue and
        the descriptors."""
        nodes = [n for n in self.graph.nodes if n.name not in self.folded]
        layers = [n for n in nodes if self.is_weight_layer(n)]
        adds = sum(n.op == "add" for n in nodes)
        deferrable = 0
        if self.mixed:  # the int8 forward's trackers: input, adds, each layer's output and dx
            self.buffer("qparams:tensors", "qparams", "et_range", 1 + adds, "input", "state")
            deferrable = 1 + adds + len(layers) + sum(self.wants_dx(n) for n in layers)
        self.buffer("queue:observations", "queue", "et_observation",
                    runtime.queue_entries(deferrable), "input", "state")
        self.add_float_descriptors(nodes, layers)

    def add_float_descriptors(self, nodes: list[Node], layers: list[Node]) -> None:
        """Descriptors (.data, with a flash image): an et_ftensor per float tensor (float32:
        the input and every node's output too), an et_tensor per int8 tensor (mixed), an
        et_flayer per weight layer with a float side, an et_wlayer per int8 layer (mixed),
        an et_intop per other op except add."""
        float_errors = 1 + self.counts["dx"] + self.counts["merges"]
        flayers = sum(n.name in self.needed for n in layers) if self.mixed else len(layers)
        self.add_descriptor_buffers({
            "et_tensor": (1 + len(nodes)) * self.mixed,
            "et_ftensor": float_errors + (0 if self.mixed else 1 + len(nodes)),
            "et_wlayer": len(layers) * self.mixed, "et_flayer": flayers,
            "et_intop": sum(not self.is_weight_layer(n) and n.op != "add" for n in nodes)})

