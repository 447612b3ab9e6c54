"""Processes that work for a sweep: they die with it and yield the CPU to it."""

from __future__ import annotations

import contextlib
import ctypes
import multiprocessing
import multiprocessing.forkserver
import os
import signal
import sys

from threadpoolctl import threadpool_limits

PR_SET_PDEATHSIG = 1
# Niceness of the processes that draw and log behind the trials. The main process fits the
# trials, the critical path: on 2 cores it would otherwise share a core with them whenever
# both are busy. Lowered, they use the time the fits leave idle.
BACKGROUND_NICENESS = 10
# Imported once by the artifact pool's fork server; every worker it forks starts with them
# (spawned workers would each import MLflow, scikit-learn and matplotlib again).
POOL_PRELOAD = [
    "segmentation.study.artifacts",
    "segmentation.study.insights",
    "segmentation.plots.trial",
    "segmentation.plots.eda",
    "segmentation.plots.study",
]


def pool_context() -> multiprocessing.context.BaseContext:
    """The artifact pool's start method: a fork server that imported ``POOL_PRELOAD``."""
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(POOL_PRELOAD)
    return context


def start_pool_server() -> None:
    """Start the artifact pool's fork server now, without waiting for it: its imports then run
    on the core this process leaves idle while it imports the sweep itself."""
    pool_context()
    multiprocessing.forkserver.ensure_running()


def die_with_parent(parent_pid: int) -> None:
    """Have the kernel kill this process when its parent dies (Linux; elsewhere a no-op)."""
    # A sweep killed with SIGKILL must not leave workers running trials nobody will count.
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent_pid:  # the parent died before prctl took effect
        os._exit(1)


def become_background(parent_pid: int, niceness: int = BACKGROUND_NICENESS) -> None:
    """Set up a process that works behind the sweep: it dies with ``parent_pid``, yields the
    CPU to the sweep's own processes (by ``niceness``) and uses one BLAS/OpenMP thread."""
    die_with_parent(parent_pid)
    with contextlib.suppress(OSError):  # not permitted here: stay at normal priority
        os.nice(niceness)
    # For the rest of the process: a second BLAS thread would only contend with the sweep.
    threadpool_limits(1)
