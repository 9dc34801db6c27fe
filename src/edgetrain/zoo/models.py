"""Zoo model bodies: each takes a GraphBuilder (input shape set) and the number of classes
and returns the output tensor name. Layer names are stable, so policies can name layers."""

from __future__ import annotations

from edgetrain.ir.graph import INPUT, GraphBuilder

# MobileNetV2-style inverted residual blocks: (expansion t, output channels c, stride s)
MBEDNET_STEM = 16
MBEDNET_BLOCKS = ((2, 16, 1), (4, 24, 2), (4, 24, 1), (4, 32, 2), (4, 32, 1))
MBEDNET_HEAD = 96


def mlp(b: GraphBuilder, num_classes: int, hidden: tuple[int, ...] = (128, 64)) -> str:
    h = b.add("flatten", INPUT, name="flatten") if len(b.input_shape) > 1 else INPUT
    for i, width in enumerate(hidden):
        h = b.add("relu", b.add("linear", h, name=f"fc{i + 1}", out_features=width),
                  name=f"relu{i + 1}")
    return b.add("linear", h, name=f"fc{len(hidden) + 1}", out_features=num_classes)


def mnist_cnn(b: GraphBuilder, num_classes: int) -> str:
    """conv3x3(8)-relu-maxpool2, conv3x3(16)-relu-maxpool2, fc(64)-relu, fc: 4 weight layers."""
    h = INPUT
    for i, channels in enumerate((8, 16), start=1):
        h = b.add("conv2d", h, name=f"conv{i}", out_channels=channels, kernel=3, padding=1)
        h = b.add("relu", h, name=f"relu{i}")
        h = b.add("maxpool2d", h, name=f"pool{i}", kernel=2)
    h = b.add("flatten", h, name="flatten")
    h = b.add("relu", b.add("linear", h, name="fc1", out_features=64), name="relu3")
    return b.add("linear", h, name="fc2", out_features=num_classes)


def _conv_bn(b: GraphBuilder, x: str, name: str, channels: int, kernel: int, stride: int = 1,
             groups: int = 1, act: str | None = "relu6") -> str:
    h = b.add("conv2d", x, name=name, out_channels=channels, kernel=kernel, stride=stride,
              padding=kernel // 2, groups=groups)
    h = b.add("batchnorm", h, name=f"{name}_bn")
    return b.add(act, h, name=f"{name}_{act}") if act else h


def _inverted_residual(b: GraphBuilder, x: str, name: str, t: int, c: int, s: int) -> str:
    c_in = b.shapes[x][0]
    hidden = c_in * t
    h = _conv_bn(b, x, f"{name}_expand", hidden, 1)
    h = _conv_bn(b, h, f"{name}_dw", hidden, 3, stride=s, groups=hidden)
    h = _conv_bn(b, h, f"{name}_project", c, 1, act=None)
    return b.add("add", x, h, name=f"{name}_add") if s == 1 and c_in == c else h


def mbednet(b: GraphBuilder, num_classes: int) -> str:
    """Stem conv3x3/2-BN-ReLU6, 5 inverted residual blocks, conv1x1-BN-ReLU6, GAP, fc."""
    h = _conv_bn(b, INPUT, "stem", MBEDNET_STEM, 3, stride=2)
    for i, (t, c, s) in enumerate(MBEDNET_BLOCKS, start=1):
        h = _inverted_residual(b, h, f"block{i}", t, c, s)
    h = _conv_bn(b, h, "head", MBEDNET_HEAD, 1)
    h = b.add("global_avg_pool", h, name="gap")
    return b.add("linear", h, name="fc", out_features=num_classes)


def motion_cnn1d(b: GraphBuilder, num_classes: int) -> str:
    """conv1d(16,k5,s2)-BN-ReLU, conv1d(32,k5,s2)-BN-ReLU, conv1d(32,k3)-BN-ReLU, GAP, fc."""
    h = INPUT
    for i, (channels, kernel, stride) in enumerate(((16, 5, 2), (32, 5, 2), (32, 3, 1)), 1):
        h = b.add("conv1d", h, name=f"conv{i}", out_channels=channels, kernel=kernel,
                  stride=stride, padding=kernel // 2)
        h = b.add("batchnorm", h, name=f"conv{i}_bn")
        h = b.add("relu", h, name=f"relu{i}")
    h = b.add("global_avg_pool", h, name="gap")
    return b.add("linear", h, name="fc", out_features=num_classes)
