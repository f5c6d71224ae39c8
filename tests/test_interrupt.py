"""Ctrl-C at a random early moment of any command: exit 130 (or the command's own code if it had finished), at
most one line, never a traceback (issue 17, item 4). Real processes, real signals."""

from __future__ import annotations

import random

import pytest
from conftest import add_secret
from signals import interrupt_at

COMMANDS = [("secret", "ls"), ("--help",), ("templates", "ls"), ("secret", "show", "k"), ("run", "--image", "")]


@pytest.mark.slow
def test_sigint_at_random_early_moments_exits_130_with_one_line():
    add_secret("k", "v")
    rng = random.Random()
    seed = rng.randrange(1 << 30)
    rng.seed(seed)
    landed = 0
    for i in range(50):
        args = rng.choice(COMMANDS)
        outcome = interrupt_at(args, rng.uniform(0, 0.3), entry=i)
        if outcome.before_our_code:
            continue  # Python's own start-up, before launcher/__init__.py: see tests/signals.py
        landed += 1
        problem = outcome.problem(finished_codes=(0, 2))  # `run --image ''` ends with a usage error
        assert problem is None, f"iteration {i} (seed {seed}): {problem}: {outcome.describe()}"
    assert landed >= 15, f"only {landed} of 50 signals landed after Python's start-up (seed {seed})"
