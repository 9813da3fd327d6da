"""The largest single DMA transfers the host driver makes for the bundled artifact, which the
AXI DMA's length register (``c_sg_length_width``) must admit (docs/board.md).

    .venv/bin/python bench/bench_transfer_sizes.py [--data ../shared/data/SST-2] [--batch 32]

Classifies the first SST-2 dev sentence alone, then the first ``--batch`` sentences as one
batch, on the reference backend of the default configuration and of ``SQUARE_16X16``, and
prints the largest input (MM2S) and output (S2MM) transfer in bytes of each run (8 bytes per
64-bit beat). The sizes depend on the compiled programs only, not on timing.
"""

from __future__ import annotations

import argparse

from ttaccel.demo import BUNDLED_ARTIFACT
from ttaccel.host.classify import Classifier, read_dev_set
from ttaccel.host.driver import Accelerator
from ttaccel.host.reference import ReferenceDevice
from ttaccel.host.tokenizer import tokenizer_from_artifact
from ttaccel.spec.accel_config import NAMED_CONFIGS, AccelConfig
from ttaccel.spec.artifact import load_artifact


class RecordingDevice(ReferenceDevice):
    """The reference backend, remembering its largest transfer in each direction (bytes)."""

    def __init__(self, config: AccelConfig) -> None:
        super().__init__(config)
        self.largest_send = self.largest_receive = 0

    def start_transfers(self, send, receive_beats: int) -> None:
        self.largest_send = max(self.largest_send, send.nbytes)
        self.largest_receive = max(self.largest_receive, receive_beats * 8)
        super().start_transfers(send, receive_beats)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="../shared/data/SST-2")
    parser.add_argument("--batch", type=int, default=32)
    args = parser.parse_args()
    artifact = load_artifact(BUNDLED_ARTIFACT)
    sentences, _ = read_dev_set(args.data, limit=args.batch)
    tokens = len(tokenizer_from_artifact(artifact).encode(sentences[0]).ids)
    print(f"{'configuration':14} {'sentences':>9} {'largest in (B)':>15} {'largest out (B)':>16}")
    for name, config in NAMED_CONFIGS.items():
        for batch in (sentences[:1], sentences):
            device = RecordingDevice(config)
            Classifier(artifact, Accelerator(device), batch_size=len(batch)).classify(batch)
            print(f"{name:14} {len(batch):>9} {device.largest_send:>15,} "
                  f"{device.largest_receive:>16,}")  # fmt: skip
    print(f"(the single sentence has {tokens} tokens)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
