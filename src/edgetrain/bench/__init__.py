"""``edgetrain bench``: the table a reviewer reads first. Datasets x precisions x policies
(accuracy, peak RAM, flash, MACs per phase, host samples/s, QEMU instructions), PyTorch
float32 side by side in the same run, the paper's numbers quoted (:mod:`.suite`,
:mod:`.markdown`)."""

from edgetrain.bench.markdown import section
from edgetrain.bench.suite import BenchConfig, run_bench

__all__ = ["BenchConfig", "run_bench", "section"]
