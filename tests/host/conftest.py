"""Fixtures shared by the host tests: the bundled artifact and a few tokenized sentences."""

from __future__ import annotations

import pytest

from ttaccel.demo import BUNDLED_ARTIFACT
from ttaccel.host.tokenizer import tokenizer_from_artifact
from ttaccel.spec.artifact import load_artifact

SENTENCES = (
    "a gorgeous , witty , seductive movie .",
    "the plot is nothing but boilerplate clichés from start to finish .",
    "it 's a charming and often affecting journey .",
)


@pytest.fixture(scope="module")
def artifact():
    return load_artifact(BUNDLED_ARTIFACT)


@pytest.fixture(scope="module")
def ids(artifact):
    """Token ids of :data:`SENTENCES` by the artifact's own tokenizer."""
    tokenizer = tokenizer_from_artifact(artifact)
    return [list(tokenizer.encode(t).ids) for t in SENTENCES]
