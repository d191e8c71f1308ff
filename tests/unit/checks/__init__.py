"""Fast unit tests of the bundle checks: each check function called directly with values built here.

A check is a plain function of its fixture values; a failing check raises ``pytest.fail.Exception`` and a skip
``pytest.skip.Exception``, whose messages are part of the contract (they name the file, output or property at
fault), so the tests assert them whole.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest


def fails(check: Callable[..., Any], *args: Any, **kwargs: Any) -> str:
    """The message of the failure that ``check(*args, **kwargs)`` reports; the test fails if it passes."""
    with pytest.raises(pytest.fail.Exception) as info:
        check(*args, **kwargs)
    return str(info.value.msg)


def skips(check: Callable[..., Any], *args: Any, **kwargs: Any) -> str:
    """The reason ``check(*args, **kwargs)`` gives for skipping."""
    with pytest.raises(pytest.skip.Exception) as info:
        check(*args, **kwargs)
    return str(info.value.msg)
