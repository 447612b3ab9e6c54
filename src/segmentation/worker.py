"""``python -m segmentation.worker``: one worker process of a sweep (started by the sweep).

The parent has created the tracking schema, the experiment, the study and the parent run; it
passes the run ids as arguments and the resolved config on standard input.
"""

from __future__ import annotations

import argparse
import ctypes
import os
import signal
import sys

from omegaconf import OmegaConf

from segmentation.errors import InputError, TrackingError
from segmentation.interrupts import raise_once

PR_SET_PDEATHSIG = 1


def die_with_parent(parent_pid: int) -> None:
    """Have the kernel kill this process when its parent dies (Linux; elsewhere a no-op)."""
    # A sweep killed with SIGKILL must not leave workers running trials nobody will count.
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent_pid:  # the parent died before prctl took effect
        os._exit(1)


def main(argv: list[str] | None = None) -> int:
    """Run one worker; return its exit code."""
    parser = argparse.ArgumentParser(prog="python -m segmentation.worker")
    parser.add_argument("--index", type=int, required=True)
    parser.add_argument("--experiment-id", required=True)
    parser.add_argument("--parent-run-id", required=True)
    parser.add_argument("--parent-pid", type=int, required=True)
    args = parser.parse_args(argv)
    die_with_parent(args.parent_pid)
    raise_once()
    from threadpoolctl import threadpool_limits

    from segmentation.tracking import quiet_console
    from segmentation.workers import run_worker

    quiet_console()

    cfg = OmegaConf.create(sys.stdin.read())
    try:
        with threadpool_limits(1):
            run_worker(cfg, args.index, args.experiment_id, args.parent_run_id)
    except (InputError, TrackingError) as exc:
        print(f"error: worker {args.index}: {exc}", file=sys.stderr, flush=True)
        return 2
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
