"""Fast unit tests of the bundle checks: each check function called directly with values built here.

A check is a plain function of its fixture values; a failing check raises ``pytest.fail.Exception`` and a skip
``pytest.skip.Exception``, whose messages are part of the contract (they name the file, output or property at
fault), so the tests assert them whole.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest


def passes(check: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
    """``check(*args, **kwargs)``, which must pass: a skip fails the test here (called bare, a check that skips
    leaves the test skipped, and a skipped test is not a failed one)."""
    try:
        check(*args, **kwargs)
    except pytest.skip.Exception as exc:
        pytest.fail(f"the check skipped instead of passing: {exc.msg}")


def fails(check: Callable[..., Any], *args: Any, **kwargs: Any) -> str:
    """The message of the failure that ``check(*args, **kwargs)`` reports; the test fails if it passes or
    skips."""
    try:
        check(*args, **kwargs)
    except pytest.fail.Exception as exc:
        return str(exc.msg)
    except pytest.skip.Exception as exc:
        pytest.fail(f"the check skipped instead of failing: {exc.msg}")
    pytest.fail("the check passed instead of failing")


def skips(check: Callable[..., Any], *args: Any, **kwargs: Any) -> str:
    """The reason ``check(*args, **kwargs)`` gives for skipping."""
    with pytest.raises(pytest.skip.Exception) as info:
        check(*args, **kwargs)
    return str(info.value.msg)
