"""What the demo runs on each dataset: the model, the domain shift and the step sizes.

One row per built-in dataset (a table, not branches): the zoo model that suits its samples,
the drift that makes the "new domain" the deployed model meets (rotated digits as in the
rotated-MNIST benchmarks; sensor gain/offset drift as TinyOL (Ren et al. 2021) adapts to),
and how much pre-training and adaptation to do. ``--quick`` shrinks the step sizes only.

>>> r = get("mnist")
>>> r.model, r.drift, r.transfer_layers
('mbednet', ('rotate:45',), 5)
>>> get("mnist", quick=True).adapt_samples < r.adapt_samples
True
>>> get("mnsit")
Traceback (most recent call last):
...
edgetrain.errors.EdgetrainError: unknown dataset 'mnsit' (did you mean 'mnist'?)
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

from edgetrain.errors import EdgetrainError, unknown


@dataclass(frozen=True)
class DemoRecipe:
    dataset: str
    model: str  # a zoo model built for the dataset's sample shape and classes
    drift: tuple[str, ...]  # data.drift specs: the new domain
    pretrain_epochs: int  # float32 pre-training on the original domain (model's recipe)
    pretrain_samples: int | None  # None: the whole training split
    adapt_samples: int  # labelled samples of the new domain seen on the device
    test_samples: int | None  # None: the whole test split
    epochs: int  # passes over the adaptation samples
    batch: int  # mini-batch of the on-device training (gradients accumulated)
    lr: float  # standardized-SGD learning rate (engine.int8)
    transfer_layers: int  # the planner may train at most the last N weight layers
    verify_steps: int  # training steps compared bit for bit, C vs Python
    lambda_min: float = 0.1  # dynamic partial updates: smallest kept fraction (the paper's)
    # The exported C keeps a whole mini-batch in its arena, so the demo trains with the
    # batch the device holds; the bench measures host speed with larger batches.
    bench_batch: int | None = None
    bench_lr: float | None = None

    def for_bench(self) -> DemoRecipe:
        """The recipe with the bench's batch and learning rate."""
        return replace(self, batch=self.bench_batch or self.batch,
                       lr=self.bench_lr or self.lr)

    def lambda_for(self, policy: str) -> float | None:
        """lambda_min for a partial-update policy, None for the others."""
        return self.lambda_min if policy.startswith("partial") else None

    def to_dict(self) -> dict:
        return {**asdict(self), "drift": list(self.drift)}


RECIPES: dict[str, DemoRecipe] = {r.dataset: r for r in (
    DemoRecipe("mnist", "mbednet", ("rotate:45",), pretrain_epochs=3, pretrain_samples=None,
               adapt_samples=1000, test_samples=None, epochs=3, batch=2, lr=0.002,
               transfer_layers=5, verify_steps=2, bench_batch=16, bench_lr=0.005),
    DemoRecipe("digits", "mnist-cnn", ("rotate:30",), pretrain_epochs=15,
               pretrain_samples=None, adapt_samples=500, test_samples=None, epochs=6,
               batch=16, lr=0.01, transfer_layers=2, verify_steps=3),
    DemoRecipe("basic-motions", "motion-cnn1d", ("gain:1.8@0", "offset:1.0@1"),
               pretrain_epochs=30, pretrain_samples=None, adapt_samples=40,
               test_samples=None, epochs=15, batch=4, lr=0.01, transfer_layers=2,
               verify_steps=3),
    DemoRecipe("mnist1d", "motion-cnn1d", ("gain:0.5", "offset:0.5"), pretrain_epochs=10,
               pretrain_samples=None, adapt_samples=1000, test_samples=None, epochs=5,
               batch=16, lr=0.01, transfer_layers=2, verify_steps=3),
)}

# --quick: the same pipeline on smaller step sizes (about a minute on 2 cores)
QUICK = {"pretrain_epochs": lambda r: max(1, r.pretrain_epochs // 3),
         "adapt_samples": lambda r: min(r.adapt_samples, 300),
         "test_samples": lambda r: 400,
         "epochs": lambda r: max(2, r.epochs // 2),
         "verify_steps": lambda r: 1}


def names() -> list[str]:
    return sorted(RECIPES)


def get(dataset: str, quick: bool = False) -> DemoRecipe:
    """The demo recipe of a built-in dataset (``quick``: the reduced step sizes)."""
    if dataset not in RECIPES:
        raise unknown("dataset", dataset, RECIPES)
    r = RECIPES[dataset]
    return replace(r, **{k: f(r) for k, f in QUICK.items()}) if quick else r


def check_budget(ram_budget: int | None) -> None:
    if ram_budget is not None and ram_budget <= 0:
        raise EdgetrainError(f"the RAM budget must be a positive number of bytes, got "
                             f"{ram_budget}")
