"""Restarting background machinery in forked workers (gunicorn --preload), without keeping old objects alive."""

from __future__ import annotations

import os
import weakref
from typing import Any


def restart_after_fork(obj: Any, method: str = "_after_fork") -> None:
    """Call ``obj.<method>()`` in every forked child for as long as ``obj`` lives.

    ``os.register_at_fork`` cannot unregister, so the hook holds only a weak reference: an object that was shut down
    and dropped (an earlier ``init()`` cycle) is neither kept alive nor restarted. The method itself decides whether
    a closed object should restart.
    """
    ref = weakref.ref(obj)

    def hook() -> None:
        target = ref()
        if target is not None:
            getattr(target, method)()

    os.register_at_fork(after_in_child=hook)
