"""Ctrl-C during a sweep stops it at a safe point, never inside a store write.

Python raises ``KeyboardInterrupt`` wherever the main thread happens to be. Raised inside an
MLflow query, it would leave that query's SQLite read lock held while the clean-up waits for
the artifact workers, whose commits wait for the lock until MLflow's busy timeout ("database
is locked": exit code 1 instead of 130). Inside :func:`deferred`, a Ctrl-C is raised at once
only where the sweep computes or waits (:func:`allowed`, :func:`wait`: fits, metrics,
waiting for workers), and otherwise at the next of those, at the next trial
(:func:`checkpoint`) or when the block ends. The first Ctrl-C is the one that counts: the
clean-up it starts (closing runs, failing the trial) is not cut by a second one.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import dataclass


@dataclass
class _State:
    active: bool = False  # inside deferred(), in the main thread
    allowed: int = 0  # depth of allowed() sections
    pending: bool = False  # a Ctrl-C waits for a safe point
    raised: bool = False  # the Ctrl-C was raised; later ones are ignored


_state = _State()


def _handler(signum: int, frame: object) -> None:
    if _state.raised:
        return
    if _state.allowed:
        _raise()
    else:
        _state.pending = True


def _raise() -> None:
    _state.pending = False
    _state.raised = True
    raise KeyboardInterrupt


def _raise_once(signum: int, frame: object) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    raise KeyboardInterrupt


def raise_once() -> None:
    """From now on the first Ctrl-C raises ``KeyboardInterrupt`` and later ones are ignored:
    a sweep's worker gets one Ctrl-C twice (from the terminal and from its parent), and the
    second must not cut the clean-up the first started."""
    signal.signal(signal.SIGINT, _raise_once)


def checkpoint() -> None:
    """Raise the Ctrl-C that waited for a safe point, if any."""
    if _state.pending and not _state.raised:
        _raise()


@contextmanager
def deferred() -> Iterator[None]:
    """Hold back Ctrl-C outside :func:`allowed` sections for the duration of the block.

    Only the main thread receives signals; elsewhere, or when SIGINT is ignored (a process
    started in the background), this changes nothing.
    """
    previous = signal.getsignal(signal.SIGINT)
    if (
        _state.active
        or threading.current_thread() is not threading.main_thread()
        or previous is signal.SIG_IGN
    ):
        yield
        return
    _state.active, _state.allowed, _state.pending, _state.raised = True, 0, False, False
    signal.signal(signal.SIGINT, _handler)
    try:
        yield
        checkpoint()  # a Ctrl-C during the last writes still stops what comes next
    finally:
        once_spent = previous is _raise_once and _state.raised
        signal.signal(signal.SIGINT, signal.SIG_IGN if once_spent else previous)
        _state.active, _state.allowed, _state.pending = False, 0, False


@contextmanager
def allowed() -> Iterator[None]:
    """A section a Ctrl-C may cut: it computes or waits, and holds no lock or connection."""
    if not _state.active:
        yield
        return
    checkpoint()
    _state.allowed += 1
    try:
        yield
    finally:
        _state.allowed -= 1


def wait(future: Future) -> None:
    """Wait until ``future`` is done, in a section a Ctrl-C may cut (its result or error is
    left to the caller: ``exception()`` waits without raising)."""
    with allowed():
        future.exception()
