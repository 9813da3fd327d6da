"""The kill-and-resume check shared by the schemes' training tests."""

from __future__ import annotations

import pytest
import torch


class Killed(Exception):
    """Raised inside a training step, as a kill would stop it."""


def kill_and_resume(monkeypatch, tmp_path, run, *, kill_at: int = 3, steps: int) -> dict:
    """Train ``run(out)`` once uninterrupted and once killed at training step ``kill_at`` (after
    the step ``kill_at - 1`` checkpoint: the loop must save every ``kill_at - 1`` steps) and
    resumed; assert both reach step ``steps`` with equal dev metrics and identical training
    states (every tensor of ``state.pt``'s model). Returns the uninterrupted ``state.pt``."""
    import ttaccel.models.compress as compress

    whole = run(tmp_path / "whole")
    real, calls = compress.logits_kd, []

    def dies(*args, **kwargs):
        calls.append(1)
        if len(calls) == kill_at:
            raise Killed
        return real(*args, **kwargs)

    monkeypatch.setattr(compress, "logits_kd", dies)
    with pytest.raises(Killed):
        run(tmp_path / "killed")
    killed = torch.load(tmp_path / "killed" / "state.pt", weights_only=False)
    assert killed["step"] == kill_at - 1
    monkeypatch.setattr(compress, "logits_kd", real)
    resumed = run(tmp_path / "killed")
    assert resumed["dev"] == whole["dev"]
    a = torch.load(tmp_path / "whole" / "state.pt", weights_only=False)
    b = torch.load(tmp_path / "killed" / "state.pt", weights_only=False)
    assert a["step"] == b["step"] == steps and a["model"].keys() == b["model"].keys()
    for name, tensor in a["model"].items():
        assert torch.equal(tensor, b["model"][name]), name
    return a
