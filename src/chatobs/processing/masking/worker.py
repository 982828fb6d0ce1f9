"""Presidio in a separate process, so its CPU-heavy Python never holds the app's GIL.

The parent (the redaction stage, on the pipeline thread) sends one request per batch -- the texts that missed the cache
-- as a JSON line on the child's stdin and waits for the JSON-line answer, with a timeout. At most ``max_inflight``
requests are outstanding (the bounded queue); past that a batch fails closed with ``queue_full``. The child is a plain
``python -m chatobs.processing.masking.worker`` (not ``multiprocessing``, which would re-import the app's ``__main__``)
and exits when its stdin closes (parent gone). A dead child is restarted, at most every few
seconds; meanwhile content fails closed with ``worker_unavailable``.
"""

from __future__ import annotations

import atexit
import itertools
import json
import logging
import os
import queue
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from ...core.fork import restart_after_fork
from ...core.guard import log_limited
from ..pii.engine import PiiConfig
from .masker import MaskingFailed

__all__ = ["ProcessBackend", "main", "shared_backend"]

logger = logging.getLogger("chatobs")

_STARTUP_TIMEOUT_S = 60.0  # importing Presidio and spaCy takes seconds on a busy machine
_RESTART_INTERVAL_S = 5.0


class ProcessBackend:
    def __init__(self, cfg: PiiConfig, *, max_inflight: int = 2) -> None:
        self.cfg = cfg
        self.max_inflight = max_inflight
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._pending: dict[int, tuple[threading.Event, list[Any]]] = {}
        self._proc: subprocess.Popen[bytes] | None = None
        self._ready = threading.Event()
        self._error: str | None = None
        self._last_start = 0.0
        self._closed = False
        self.restarts = 0
        self.spacy_loaded: bool | None = None  # as the worker reports it (pattern mode runs without spaCy)
        restart_after_fork(self)

    # --- lifecycle ----------------------------------------------------------------------------------------------------
    def _start(self) -> None:
        self._last_start = time.monotonic()
        self._ready = threading.Event()
        self._error = None
        self._pending = {}
        env = dict(os.environ)
        # The child must import this very chatobs (a worktree, an unpacked app), not whatever else is on the path.
        pkg_root = str(Path(__file__).resolve().parents[len(__name__.split(".")) - 1])
        env["PYTHONPATH"] = os.pathsep.join([pkg_root] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
        proc = subprocess.Popen(
            [sys.executable, "-m", "chatobs.processing.masking.worker"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=env,
            close_fds=True,
        )
        self._proc = proc
        assert proc.stdin is not None
        # The configuration (with the hash key) goes over the pipe, never through argv or the environment.
        proc.stdin.write((self.cfg.to_json() + "\n").encode())
        proc.stdin.flush()
        threading.Thread(
            target=self._read, args=(proc, self._ready, self._pending), name="chatobs-masking-reader", daemon=True
        ).start()

    def _read(
        self,
        proc: subprocess.Popen[bytes],
        ready: threading.Event,
        pending: dict[int, tuple[threading.Event, list[Any]]],
    ) -> None:
        # ``pending`` is this process's own table: after a restart, a late EOF of the old process must not touch the
        # new one's requests.
        assert proc.stdout is not None
        for line in proc.stdout:
            try:
                msg = json.loads(line)
            except ValueError:
                continue
            if "ready" in msg:
                self.spacy_loaded = msg.get("spacy")
                ready.set()
            elif "error" in msg and "id" not in msg:
                self._error = str(msg["error"])
                ready.set()
            else:
                with self._lock:
                    waiter = pending.pop(int(msg.get("id", -1)), None)
                if waiter is not None:
                    waiter[1].append(msg)
                    waiter[0].set()
        # EOF: the child is gone; wake everyone waiting on it.
        with self._lock:
            waiters = list(pending.values())
            pending.clear()
        for event, _ in waiters:
            event.set()
        ready.set()

    def _alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def _ensure(self) -> None:
        if self._closed:
            raise MaskingFailed("worker_unavailable", "masking worker closed")
        if self._proc is None:
            self._start()
        elif not self._alive():
            if time.monotonic() - self._last_start < _RESTART_INTERVAL_S:
                raise MaskingFailed("worker_unavailable", "masking worker exited; restarting shortly")
            log_limited(
                "masking-worker",
                "chatobs: masking worker process exited (code %s); restarting it",
                self._proc.returncode if self._proc else None,
            )
            self.restarts += 1
            self._start()
        if not self._ready.wait(_STARTUP_TIMEOUT_S):
            raise MaskingFailed("worker_unavailable", "masking worker did not start in time")
        if self._error is not None:
            raise MaskingFailed("error", f"masking worker failed to start: {self._error}")
        if not self._alive():
            raise MaskingFailed("worker_unavailable", "masking worker exited")

    def wait_ready(self, timeout_s: float = _STARTUP_TIMEOUT_S) -> bool:
        if self._proc is None:
            self._start()
        return self._ready.wait(timeout_s) and self._error is None and self._alive()

    def _after_fork(self) -> None:
        # A forked child (gunicorn worker) must not share the parent's pipes: start its own worker on first use.
        self._lock = threading.Lock()
        self._pending = {}
        self._proc = None
        self._last_start = 0.0

    # --- requests -----------------------------------------------------------------------------------------------------
    def mask_many(self, items: list[tuple[str, str | None]], timeout_s: float) -> list[str | bool | None]:
        self._ensure()
        with self._lock:
            if len(self._pending) >= self.max_inflight:
                raise MaskingFailed("queue_full", f"{len(self._pending)} masking requests outstanding")
            req_id = next(self._ids)
            event: threading.Event = threading.Event()
            box: list[Any] = []
            self._pending[req_id] = (event, box)
        line = json.dumps({"id": req_id, "items": items, "timeout_s": timeout_s}) + "\n"
        try:
            assert self._proc is not None and self._proc.stdin is not None
            self._proc.stdin.write(line.encode("utf-8", "surrogatepass"))
            self._proc.stdin.flush()
        except (OSError, ValueError) as exc:
            with self._lock:
                self._pending.pop(req_id, None)
            raise MaskingFailed("worker_unavailable", str(exc)) from None
        if not event.wait(timeout_s) or not box:
            # The request stays counted as outstanding until the child answers (or dies): a stuck worker fills the
            # bounded queue and later batches fail fast with queue_full instead of each waiting for the timeout.
            if not self._alive():
                raise MaskingFailed("worker_unavailable", "masking worker exited")
            raise MaskingFailed("timeout", f"no answer from the masking worker within {timeout_s}s")
        msg = box[0]
        if "error" in msg:
            raise MaskingFailed("error", str(msg["error"]))
        out = msg.get("out")
        if not isinstance(out, list) or len(out) != len(items):
            raise MaskingFailed("error", "malformed answer from the masking worker")
        return out

    def close(self) -> None:
        """Shared workers outlive one ``init()``/``shutdown()`` cycle; they stop at exit (or when the parent dies,
        which closes their stdin)."""

    def stop(self) -> None:
        self._closed = True
        proc = self._proc
        if proc is None:
            return
        try:
            if proc.stdin:
                proc.stdin.close()
            proc.wait(timeout=3)
        except Exception:  # noqa: BLE001
            proc.kill()
            try:
                proc.wait(timeout=2)
            except Exception:  # noqa: BLE001
                pass


_SHARED: dict[str, ProcessBackend] = {}
_SHARED_LOCK = threading.Lock()


def shared_backend(cfg: PiiConfig) -> ProcessBackend:
    """One worker per masking configuration per process, started on first use and reused across re-``init()``s
    (starting one costs seconds of CPU: Presidio and spaCy imports)."""
    key = cfg.fingerprint()
    with _SHARED_LOCK:
        backend = _SHARED.get(key)
        if backend is None or backend._closed:
            backend = _SHARED[key] = ProcessBackend(cfg)
            if len(_SHARED) == 1:
                atexit.register(_stop_all)
        return backend


def _stop_all() -> None:
    with _SHARED_LOCK:
        backends = list(_SHARED.values())
        _SHARED.clear()
    for b in backends:
        b.stop()


# --- the child process --------------------------------------------------------------------------------------------------


def _write(msg: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(msg) + "\n")
    sys.stdout.flush()


_WARM_UP = "warm up: call 555-123-4567 or mail a@example.com"


def build_engine(cfg: PiiConfig) -> tuple[Any, bool]:
    """The engine (cached by ``pii.get_engine``), and whether spaCy had to be imported. Pattern mode is built without spaCy (``nospacy.py``: ~80 MB
    less); if this Presidio needs more of spaCy than the placeholders give, it is built again with the real one."""
    from ..pii import engine as pii
    from ..pii import nospacy

    if cfg.mode != "ner" and cfg.nlp != "spacy":
        with nospacy.absent() as active:
            if active:
                try:
                    engine = pii.get_engine(cfg)
                    engine.mask(_WARM_UP)
                    return engine, False
                except (ImportError, nospacy.SpacyAbsent) as exc:
                    print(f"chatobs masking worker: Presidio needs spaCy here ({exc}); importing it", file=sys.stderr)
                    pii.forget_engines()
        nospacy.purge()
    engine = pii.get_engine(cfg)
    engine.mask(_WARM_UP)
    return engine, True


def main() -> None:
    first = sys.stdin.readline()
    if not first:
        return
    try:
        cfg = PiiConfig.from_json(first)
        engine, spacy_loaded = build_engine(cfg)
    except Exception as exc:  # noqa: BLE001
        _write({"error": f"{type(exc).__name__}: {exc}"})
        return
    _write({"ready": True, "spacy": spacy_loaded})

    # Read stdin on a thread so the parent's writes never block while a request is being masked.
    requests: queue.Queue[str | None] = queue.Queue(maxsize=64)

    def reader() -> None:
        for line in sys.stdin:
            requests.put(line)
        requests.put(None)

    threading.Thread(target=reader, daemon=True).start()
    while True:
        line = requests.get()
        if line is None:
            return
        received = time.monotonic()
        req: Any = None
        try:
            req = json.loads(line)
            items = [(str(t), c) for t, c in req["items"]]
            out = engine.mask_many(items, deadline=received + float(req.get("timeout_s", 10.0)))
            _write({"id": req["id"], "out": out})
        except Exception as exc:  # noqa: BLE001
            _write({"id": req.get("id") if isinstance(req, dict) else None, "error": f"{type(exc).__name__}: {exc}"})


if __name__ == "__main__":
    main()
