"""The mutation runner's catalogue (``tools/mutate.py``) still fits the hardware source.

Every mutant's anchor must match the current ``hw/`` source exactly once, so refactoring that
moves an anchor shows up here (update ``MUTANTS``) instead of when someone next runs the
mutation checks. Running the mutants themselves takes half an hour: ``tools/mutate.py``.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def _mutate_module():
    spec = importlib.util.spec_from_file_location("ttaccel_mutate", REPO / "tools" / "mutate.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


MUTATE = _mutate_module()


@pytest.mark.parametrize("mutant", MUTATE.MUTANTS, ids=[m.name for m in MUTATE.MUTANTS])
def test_anchor_matches_the_source_once(mutant):
    source = (REPO / mutant.path).read_text()
    mutated = mutant.apply(source)
    assert mutated != source
    assert len(mutated.splitlines()) == len(source.splitlines()), "a patch is one local edit"


def test_a_missing_anchor_is_an_error_not_a_silent_pass():
    mutant = MUTATE.MUTANTS[0]
    with pytest.raises(MUTATE.MutationError, match="mutation anchor not found: fence-ignored"):
        mutant.apply("# the source was refactored\n")
    twice = MUTATE.Mutant("twice", "hw/x.py", ((r"a \+ 1", "a + 2"),), "test")
    with pytest.raises(MUTATE.MutationError, match="mutation anchor ambiguous: twice"):
        twice.apply("a + 1\na + 1\n")


def test_names_are_unique_and_suites_exist():
    names = [m.name for m in MUTATE.MUTANTS]
    assert len(names) == len(set(names))
    for mutant in MUTATE.MUTANTS:
        assert set(mutant.suites) <= set(MUTATE.SUITES), mutant.name
        assert (REPO / mutant.path).is_file(), mutant.path
