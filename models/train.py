"""The training loop shared by the teacher and the students: seeds, DDP, checkpoint/resume, logs.

One loop (:func:`train_loop`) runs any model with any loss: it steps AdamW with a linear
warm-up/decay schedule, evaluates on the dev set every ``eval_every`` steps, appends metrics to
``metrics.csv`` and ``metrics.jsonl`` in the output folder, and writes ``state.pt`` (model,
optimizer, schedule, step) every ``save_every`` steps so that rerunning the same command
resumes where it stopped. Under ``torchrun`` (``WORLD_SIZE > 1``) it wraps the model in
DistributedDataParallel over gloo; every rank sees its share of the same global batches (see
:func:`ttaccel.models.data.batches`), only rank 0 writes files.
"""

from __future__ import annotations

import csv
import json
import math
import os
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from .data import Encoded, batches, num_batches

__all__ = [
    "LoopConfig",
    "dist_info",
    "evaluate_logits",
    "seed_everything",
    "task_metrics",
    "train_loop",
]


@dataclass(frozen=True)
class LoopConfig:
    """Optimisation settings of one training run (round-trips to JSON via ``asdict``)."""

    steps: int = 1000
    batch_size: int = 32
    lr: float = 5e-5
    weight_decay: float = 0.01
    warmup_ratio: float = 0.06
    eval_every: int = 250
    save_every: int = 100
    eval_batch_size: int = 128
    seed: int = 0
    grad_clip: float = 1.0
    #: Batch examples of similar length together (:func:`~.data.length_grouped_order`).
    group_by_length: bool = False

    def __post_init__(self) -> None:
        for f in ("steps", "batch_size", "eval_every", "save_every", "eval_batch_size"):
            value = getattr(self, f)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{f} must be a positive integer, not {value!r}")
        if not self.lr > 0:
            raise ValueError(f"lr must be positive, not {self.lr!r}")
        if not 0 <= self.warmup_ratio < 1:
            raise ValueError(f"warmup_ratio must be in [0, 1), not {self.warmup_ratio!r}")

    @classmethod
    def from_dict(cls, data: dict) -> LoopConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(
                f"unknown training settings {unknown}; expected some of {sorted(known)}"
            )
        return cls(**data)


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (CPU) for a reproducible run."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def dist_info() -> tuple[int, int]:
    """``(rank, world_size)``, initialising the gloo process group under torchrun."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("gloo")
    if world > 1:
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def task_metrics(preds: np.ndarray, labels: np.ndarray, regression: bool) -> dict[str, float]:
    """Accuracy (classification; plus Matthews correlation for two classes) or Pearson/Spearman
    correlation (regression), in percent."""
    if regression:
        p = float(np.corrcoef(preds, labels)[0, 1])
        rank = lambda v: np.argsort(np.argsort(v))  # noqa: E731
        s = float(np.corrcoef(rank(preds), rank(labels))[0, 1])
        return {"pearson": 100 * p, "spearman": 100 * s}
    acc = float((preds == labels).mean())
    out = {"accuracy": 100 * acc}
    if labels.max(initial=0) <= 1 and preds.max(initial=0) <= 1:
        tp = float(((preds == 1) & (labels == 1)).sum())
        tn = float(((preds == 0) & (labels == 0)).sum())
        fp = float(((preds == 1) & (labels == 0)).sum())
        fn = float(((preds == 0) & (labels == 1)).sum())
        denom = math.sqrt((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn))
        out["mcc"] = 100 * ((tp * tn - fp * fn) / denom if denom else 0.0)
    return out


@torch.no_grad()
def evaluate_logits(
    forward: Callable[[dict], torch.Tensor], data: Sequence[Encoded], batch_size: int
) -> tuple[np.ndarray, np.ndarray]:
    """Run ``forward(batch) -> logits (B, C)`` over ``data`` in order; returns (logits, labels)."""
    logits, labels = [], []
    for batch in batches(data, batch_size, shuffle=False):
        logits.append(forward(batch).float().cpu().numpy())
        labels.append(batch["labels"].numpy())
    return np.concatenate(logits), np.concatenate(labels)


def predictions(logits: np.ndarray, regression: bool) -> np.ndarray:
    """Class indices (argmax) or the regression score."""
    return logits[:, 0] if regression else logits.argmax(-1)


def _lr_lambda(steps: int, warmup_ratio: float) -> Callable[[int], float]:
    warmup = int(steps * warmup_ratio)

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return max(0.0, (steps - step) / max(1, steps - warmup))

    return factor


def _log(out_dir: Path, row: dict) -> None:
    with open(out_dir / "metrics.jsonl", "a") as f:
        f.write(json.dumps(row) + "\n")
    path = out_dir / "metrics.csv"
    new = not path.exists()
    with open(path, "a", newline="") as f:
        writer = csv.writer(f)
        if new:
            writer.writerow(["step", "time_s", "split", "name", "value"])
        for name, value in row.items():
            if name not in ("step", "time_s", "split"):
                writer.writerow([row["step"], row["time_s"], row["split"], name, value])


def train_loop(
    model: nn.Module,
    loss_fn: Callable[[nn.Module, dict, int], tuple[torch.Tensor, dict[str, float]]],
    train_data: Sequence[Encoded],
    eval_fn: Callable[[nn.Module], dict[str, float]] | None,
    cfg: LoopConfig,
    out_dir: str | Path,
    *,
    progress: bool = True,
    params: Sequence[nn.Parameter] | None = None,
    param_groups: list[dict] | None = None,
) -> dict[str, float]:
    """Train ``model`` for ``cfg.steps`` steps of ``loss_fn(model, batch, step) -> (loss, logs)``.

    ``model`` is the module whose ``state_dict`` is checkpointed (DDP wraps it internally: the
    loss function receives the wrapped module when distributed, so call it, don't reach into
    it). ``params`` (default: all parameters requiring grad) or explicit ``param_groups`` are
    optimised. ``eval_fn(model)`` returns dev metrics. Resumes from ``out_dir/state.pt`` when it
    exists. Returns the last dev metrics (empty without ``eval_fn``).
    """
    from tqdm import tqdm

    out_dir = Path(out_dir)
    rank, world = dist_info()
    if rank == 0:
        out_dir.mkdir(parents=True, exist_ok=True)
    seed_everything(cfg.seed)
    if param_groups is None:
        params = (
            list(params)
            if params is not None
            else [p for p in model.parameters() if p.requires_grad]
        )
        decay = [p for p in params if p.ndim >= 2]
        no_decay = [p for p in params if p.ndim < 2]
        param_groups = [
            {"params": decay, "weight_decay": cfg.weight_decay},
            {"params": no_decay, "weight_decay": 0.0},
        ]
    optimizer = torch.optim.AdamW(param_groups, lr=cfg.lr)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, _lr_lambda(cfg.steps, cfg.warmup_ratio))
    step = 0
    state_path = out_dir / "state.pt"
    if state_path.exists():
        state = torch.load(state_path, map_location="cpu", weights_only=False)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        schedule.load_state_dict(state["schedule"])
        step = int(state["step"])
        torch.set_rng_state(state["torch_rng"])
    net: nn.Module = model
    if world > 1:
        net = nn.parallel.DistributedDataParallel(model, find_unused_parameters=True)

    def save() -> None:
        if rank != 0:
            return
        tmp = out_dir / "state.pt.tmp"
        torch.save(
            {"model": model.state_dict(), "optimizer": optimizer.state_dict(),
             "schedule": schedule.state_dict(), "step": step, "torch_rng": torch.get_rng_state(),
             "config": asdict(cfg)},
            tmp,
        )  # fmt: skip
        os.replace(tmp, state_path)

    per_epoch = num_batches(len(train_data), cfg.batch_size, world)
    if per_epoch == 0:
        raise ValueError(
            f"{len(train_data)} training examples do not fill one batch of {cfg.batch_size * world}"
        )
    start = time.time()
    bar = tqdm(total=cfg.steps, initial=step, disable=not progress or rank != 0, dynamic_ncols=True)
    dev: dict[str, float] = {}
    model.train()
    while step < cfg.steps:
        epoch, skip = divmod(step, per_epoch)
        for batch in batches(
            train_data, cfg.batch_size, shuffle=True, seed=cfg.seed, epoch=epoch,
            rank=rank, world_size=world, skip=skip, group_by_length=cfg.group_by_length,
        ):  # fmt: skip
            loss, logs = loss_fn(net, batch, step)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            optimizer.step()
            schedule.step()
            step += 1
            bar.update(1)
            bar.set_postfix(loss=f"{loss.item():.4f}")
            if rank == 0 and (step % 10 == 0 or step == cfg.steps):
                _log(out_dir, {"step": step, "time_s": round(time.time() - start, 1),
                               "split": "train", "loss": loss.item(), **logs,
                               "lr": schedule.get_last_lr()[0]})  # fmt: skip
            last = step == cfg.steps
            if eval_fn is not None and (step % cfg.eval_every == 0 or last) and rank == 0:
                model.eval()
                dev = eval_fn(model)
                model.train()
                _log(out_dir, {"step": step, "time_s": round(time.time() - start, 1),
                               "split": "dev", **dev})  # fmt: skip
                bar.write(f"step {step}: dev {json.dumps(dev)}")
            if step % cfg.save_every == 0 or last:
                save()
            if last:
                break
    bar.close()
    if eval_fn is not None and not dev and rank == 0:
        model.eval()
        dev = eval_fn(model)
    model.eval()
    return dev
