"""Training-step time of pruning callbacks vs dense training, in one process on the CPU.

Trains the default job's model, data and task (composed from ``conf/``: two-branch U-Net at its
default width, synthetic nuclei tiles, batch 8 of 96 px crops, Adam + cosine decay) for the same
number of optimizer steps three ways, with the same seed:

  dense      no pruning callback;
  medprune   ``GradualMagnitudePruning(scope="global")`` with conf's layer selection (first
             conv and heads dense) and ``min_density``: cubic schedule over the whole run
             (begin 0, end 1), a mask update every ``--frequency`` steps, gradients and
             weights multiplied by the masks at every optimizer step;
  lightning  ``lightning.pytorch.callbacks.ModelPruning("l1_unstructured",
             use_global_unstructured=True)`` on the same conv/transposed-conv weights, pruning
             at every epoch end along the same cubic curve (epochs are ``--epoch-steps`` long,
             by default ``--frequency``, so both prune at the same steps to the same targets;
             for channels-last weights, the default, via ``ChannelsLastModelPruning`` below).

Step time is wall time from one ``on_train_batch_start`` to the next (the last step ends at
``on_train_end``), taken by a callback placed first in the list: it includes data loading,
forward/backward/optimizer, every callback's batch hooks and the epoch-end hooks where
ModelPruning prunes. "in-batch" is ``on_train_batch_start`` (first callback) to
``on_train_batch_end`` (last callback): the same minus data loading and epoch-end work. The
first ``--warmup`` steps of every run are dropped; variants run interleaved, in the order
a,b,c then c,b,a, ... for ``--repeats``, so drift of the machine hits all of them alike.
Validation, checkpoints, loggers and progress bars are off. Extra ``key=value`` arguments are
Hydra overrides of ``conf/`` (e.g. ``model.base_channels=8``, ``task.channels_last=false``).
The defaults (300 steps x 3 variants x 2 repeats) take about 7 minutes on 2 idle CPU cores.

    python benchmarks/pruning_overhead.py [--steps 300] [--repeats 2] [--threads 2] [overrides]
    # smoke test: --steps 30 --repeats 1 --frequency 10 --warmup 5 model.base_channels=4
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
import time
import warnings
from functools import partial
from pathlib import Path

import lightning as L
import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from lightning.pytorch.callbacks import ModelPruning
from torch import nn
from torch.utils.data import DataLoader, RandomSampler

from medprune.pruning import GradualMagnitudePruning, cubic_sparsity, update_steps
from medprune.runs.config import register_configs

ROOT = Path(__file__).resolve().parents[1]
VARIANTS = {"dense": "dense", "medprune": "medprune GradualMagnitudePruning",
            "lightning": "Lightning ModelPruning"}  # fmt: skip


class StepClock(L.Callback):
    """First callback: stamps every batch start and the end of training."""

    def __init__(self) -> None:
        self.starts, self.ends, self.stop = [], [], 0.0

    def on_train_batch_start(self, *args) -> None:
        self.starts.append(time.perf_counter())

    def on_train_end(self, *args) -> None:  # before ModelPruning's make_pruning_permanent
        self.stop = time.perf_counter()


class BatchEndStamp(L.Callback):
    """Last callback: its on_train_batch_end runs after every other callback's."""

    def __init__(self, clock: StepClock) -> None:
        self.clock = clock

    def on_train_batch_end(self, *args) -> None:
        self.clock.ends.append(time.perf_counter())


class ChannelsLastModelPruning(ModelPruning):
    """ModelPruning for channels-last weights (the task's default layout): torch's
    ``global_unstructured`` flattens weights and masks with ``.view(-1)``, which raises "view
    size is not compatible with input tensor's size and stride" on them. So prune in NCHW and
    put weights and masks back in channels-last; only the epoch-end pruning differs."""

    def _apply_global_pruning(self, amount: float) -> None:
        self._layout(torch.contiguous_format)
        super()._apply_global_pruning(amount)
        self._layout(torch.channels_last)

    def _layout(self, fmt: torch.memory_format) -> None:
        for module, name in self._parameters_to_prune:
            for attr in (f"{name}_orig", f"{name}_mask", name):  # weight is orig * mask once pruned
                t = getattr(module, attr, None)
                if t is None or t.dim() != 4:
                    continue
                if isinstance(t, nn.Parameter):  # same object: the optimizer keeps its state
                    t.data = t.data.contiguous(memory_format=fmt)
                elif attr in module._buffers:
                    module._buffers[attr] = t.contiguous(memory_format=fmt)
                else:
                    setattr(module, attr, t.contiguous(memory_format=fmt))


class TimedPruning(GradualMagnitudePruning):
    """medprune's callback with a stopwatch around every hook it implements: its own cost per
    step, free of the machine's drift between runs (which the wall-time ratios are not)."""

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.self_time: list[float] = []  # seconds spent in the hooks, per optimizer step
        self._pending = 0.0

    def _timed(self, hook, *args) -> None:
        start = time.perf_counter()
        hook(*args)
        self._pending += time.perf_counter() - start

    def on_train_start(self, *args) -> None:
        self._timed(super().on_train_start, *args)

    def on_before_optimizer_step(self, *args) -> None:
        self._timed(super().on_before_optimizer_step, *args)

    def on_train_batch_end(self, *args) -> None:
        self._timed(super().on_train_batch_end, *args)
        self.self_time.append(self._pending)
        self._pending = 0.0


def cubic(step: int, args: argparse.Namespace) -> float:
    return cubic_sparsity(step, initial=0.0, final=args.sparsity, begin_step=0, end_step=args.steps)


def lightning_amount(epoch: int, args: argparse.Namespace) -> float:
    """ModelPruning's ``amount`` is a fraction of the weights that *remain* unpruned (torch's
    PruningContainer prunes among the unmasked ones), not of all weights: to reach the absolute
    target s_now from s_prev at the end of this epoch, prune 1 - (1 - s_now) / (1 - s_prev)."""
    s_prev = cubic(epoch * args.epoch_steps, args)
    s_now = cubic((epoch + 1) * args.epoch_steps, args)
    return 0.0 if s_now <= s_prev else 1.0 - (1.0 - s_now) / (1.0 - s_prev)


def run(variant: str, cfg, datamodule, args: argparse.Namespace) -> dict:
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    net = instantiate(cfg.model)
    task = instantiate(cfg.task, net=net, _convert_="all")
    # conv and transposed-conv layers of any dimension (the U-Nets have no linear layers)
    convs = [m for m in net.modules() if isinstance(m, nn.modules.conv._ConvNd)]
    pruners: list[L.Callback] = []
    if variant == "medprune":  # conf's selection and density floor; the schedule over the run
        p = cfg.pruning
        kw = {"include": list(p.include), "exclude": list(p.exclude)}
        kw |= {"min_density": p.min_density, "initial_sparsity": 0.0, "begin": 0.0, "end": 1.0}
        kw |= {"scope": "global", "target_sparsity": args.sparsity, "frequency": args.frequency}
        pruners = [TimedPruning(**kw)]
    elif variant == "lightning":
        pruning_cls = ChannelsLastModelPruning if cfg.task.channels_last else ModelPruning
        pruning = pruning_cls(
            "l1_unstructured",
            parameters_to_prune=[(m, "weight") for m in convs],
            use_global_unstructured=True,
            amount=partial(lightning_amount, args=args),
            # The default (True) rewinds the kept weights to their initial values after every
            # pruning (lottery ticket) and deep-copies every layer; medprune keeps training them.
            use_lottery_ticket_hypothesis=False,
        )
        pruners = [pruning]
    clock = StepClock()
    trainer = L.Trainer(
        accelerator="cpu",
        devices=1,
        max_epochs=args.steps // args.epoch_steps,
        max_steps=args.steps,
        limit_val_batches=0,
        num_sanity_val_steps=0,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[clock, *pruners, BatchEndStamp(clock)],
    )
    train = datamodule.splits["train"]
    batch = datamodule.hparams.batch_size
    # Epochs of --epoch-steps batches: several random-crop passes over the same training tiles.
    sampler = RandomSampler(train, num_samples=args.epoch_steps * batch)
    workers = datamodule.hparams.num_workers
    loader = DataLoader(train, batch, sampler=sampler, drop_last=True, num_workers=workers)
    trainer.fit(task, train_dataloaders=loader)
    if trainer.global_step != args.steps or len(clock.ends) != args.steps:
        raise RuntimeError(f"{variant}: ran {trainer.global_step} steps, expected {args.steps}")
    stamps = [*clock.starts, clock.stop]
    full = [b - a for a, b in zip(stamps, stamps[1:])][args.warmup :]
    inner = [e - s for s, e in zip(clock.starts, clock.ends)][args.warmup :]
    weights = [m.weight for m in convs]  # plain tensors again after make_pruning_permanent
    zeros = sum(int((w == 0).sum()) for w in weights)
    updates = update_steps(0, args.steps, args.frequency) if variant == "medprune" else []
    if variant == "lightning":
        epochs = range(args.steps // args.epoch_steps)
        updates = [(e + 1) * args.epoch_steps for e in epochs if lightning_amount(e, args) > 0]
    sparsity = zeros / sum(w.numel() for w in weights)
    own = pruners[0].self_time[args.warmup :] if variant == "medprune" else []
    return {"full": full, "inner": inner, "sparsity": sparsity, "updates": updates, "own": own}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300, help="optimizer steps per run")
    parser.add_argument("--repeats", type=int, default=2, help="runs of every variant")
    parser.add_argument("--warmup", type=int, default=20, help="steps dropped per run")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--sparsity", type=float, default=0.9375)
    parser.add_argument("--frequency", type=int, default=100, help="steps between mask updates")
    parser.add_argument("--epoch-steps", type=int, default=None, help="default: --frequency")
    parser.add_argument("--variants", default=",".join(VARIANTS), help="comma-separated")
    args, overrides = parser.parse_known_args()
    args.epoch_steps = args.epoch_steps or args.frequency
    if args.steps % args.epoch_steps or args.steps <= args.warmup:
        parser.error("--steps must be a multiple of --epoch-steps and larger than --warmup")
    args.variants = args.variants.split(",")
    if "dense" not in args.variants or not set(args.variants) <= set(VARIANTS):
        parser.error(f"--variants: a subset of {','.join(VARIANTS)} that includes dense")
    torch.set_num_threads(args.threads)
    logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)
    for message in ("does not have many workers", "no `val_dataloader`", "treespec"):
        warnings.filterwarnings("ignore", f".*{message}")

    register_configs()
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose("train", overrides=["logger=none", "callbacks=none", *overrides])
    print(f"command: {' '.join([Path(sys.argv[0]).name, *sys.argv[1:]])}")
    print(f"config: {vars(args)}, overrides: {overrides}")
    print(
        f"torch {torch.__version__}, lightning {L.__version__}, {torch.get_num_threads()} "
        f"threads; model {dict(cfg.model)}; batch {cfg.data.batch_size}, crop "
        f"{cfg.data.train_crop} px; seed {cfg.seed}"
    )
    datamodule = instantiate(cfg.data)
    datamodule.setup("fit")  # tiles generated once, shared by every run

    results: dict[str, list[dict]] = {v: [] for v in args.variants}
    for r in range(args.repeats):
        order = args.variants if r % 2 == 0 else args.variants[::-1]
        for variant in order:
            start, res = time.perf_counter(), run(variant, cfg, datamodule, args)
            results[variant].append(res)
            took, med = time.perf_counter() - start, statistics.median(res["full"]) * 1e3
            print(
                f"repeat {r + 1} {variant:<9} median {med:7.1f} ms/step, {took:6.1f} s", flush=True
            )

    def pooled(variant: str, key: str) -> list[float]:
        return [t for res in results[variant] for t in res[key]]

    dense_med = statistics.median(pooled("dense", "full"))
    dense_mean = statistics.mean(pooled("dense", "full"))
    print(f"\n{args.steps} steps per run, first {args.warmup} dropped, {args.repeats} repeat(s)\n")
    print(
        "| variant | median ms/step | mean ms/step | median vs dense | mean vs dense "
        "| median vs dense per repeat | in-batch median ms | mask updates at steps "
        "| achieved sparsity |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for variant in args.variants:
        full, runs = pooled(variant, "full"), results[variant]
        med, mean = statistics.median(full), statistics.mean(full)
        per_repeat = ", ".join(
            f"{statistics.median(a['full']) / statistics.median(d['full']):.3f}"
            for a, d in zip(runs, results["dense"])
        )
        cells = [VARIANTS[variant], f"{med * 1e3:.1f}", f"{mean * 1e3:.1f}"]
        cells += [f"{med / dense_med:.3f}", f"{mean / dense_mean:.3f}", per_repeat]
        cells += [f"{statistics.median(pooled(variant, 'inner')) * 1e3:.1f}"]
        cells += [", ".join(map(str, runs[0]["updates"])) or "-", f"{runs[-1]['sparsity']:.4f}"]
        print(f"| {' | '.join(cells)} |")
    if "medprune" in args.variants:
        own = pooled("medprune", "own")
        print(
            f"\nmedprune callback self-time (its hooks, timed inside the runs): mean "
            f"{statistics.mean(own) * 1e3:.2f} ms/step, median {statistics.median(own) * 1e3:.2f} "
            f"ms/step = {statistics.mean(own) / dense_med:.2%} of the dense median step"
        )


if __name__ == "__main__":
    main()
