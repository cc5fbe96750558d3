"""What a test process keeps between tests (renderings, boot scripts, the boot files' payload),
and when it keeps nothing."""

from __future__ import annotations

import functools
import os
from typing import Callable, TypeVar

R = TypeVar("R")


def memo(function: Callable[..., R]) -> Callable[..., R]:
    """``functools.cache``, except while mutmut runs the tests (it sets MUTANT_UNDER_TEST for
    its stats, its clean run and each mutant). Its trampolines choose the code, the original
    or a mutant, at each call: a result kept from an earlier call would hide the mutant, and
    mutmut's record of which tests reach a function would hold only the first test that
    called it, so no later test would run against its mutants."""
    cached = functools.cache(function)

    @functools.wraps(function)
    def call(*args):
        if "MUTANT_UNDER_TEST" in os.environ:
            return function(*args)
        return cached(*args)

    return call
