"""Worker for test_ddp.py: train a tiny TT student under torchrun (or alone) and save this
rank's final parameters. Usage: ddp_worker.py CHECKPOINT DATA OUT BATCH_PER_RANK."""

from __future__ import annotations

import sys
from pathlib import Path

import torch

from ttaccel.models.compress import build_student, calibrate, make_student_loss
from ttaccel.models.config import CompressionConfig, LayerRule
from ttaccel.models.data import batches, encode, infer_task, load_split, load_tokenizer
from ttaccel.models.teacher import load_bert_classifier
from ttaccel.models.train import LoopConfig, dist_info, train_loop


def main() -> None:
    checkpoint, data, out, batch = (
        Path(sys.argv[1]),
        Path(sys.argv[2]),
        Path(sys.argv[3]),
        int(sys.argv[4]),
    )
    torch.set_num_threads(1)
    rank, world = dist_info()
    task = infer_task(data)
    train = encode(load_split(data, "train", task), load_tokenizer(checkpoint), 32)
    cfg = CompressionConfig((LayerRule("encoder", 3),), weight_bits=8)
    student, _ = build_student(checkpoint, cfg, 2)
    calibrate(student, next(batches(train, batch * world, shuffle=True)))
    out.mkdir(parents=True, exist_ok=True)
    if rank == 0:
        torch.save(student.state_dict(), out / "start.pt")
    else:  # start the other replicas elsewhere on purpose: DDP must broadcast rank 0's start
        with torch.no_grad():
            for p in student.parameters():
                p.add_(0.01 * torch.randn_like(p))
    teacher = load_bert_classifier(checkpoint, 2)
    loss_fn = make_student_loss(teacher, "e2e", 2, 1)
    loop = LoopConfig(steps=4, batch_size=batch, lr=1e-3, warmup_ratio=0.0, save_every=100)
    train_loop(student, loss_fn, train, None, loop, out / "run", progress=False)
    out.mkdir(parents=True, exist_ok=True)
    torch.save(student.state_dict(), out / f"rank{rank}.pt")
    if world > 1:
        torch.distributed.destroy_process_group()


if __name__ == "__main__":
    main()
