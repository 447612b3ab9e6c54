"""``python -m segmentation.study.worker``: one worker process of a sweep (started by the sweep).

The parent has created the tracking schema, the experiment, the study and the parent run; it
passes the run ids as arguments and the resolved config on standard input.
"""

from __future__ import annotations

import argparse
import sys

import optuna
from omegaconf import DictConfig, OmegaConf

from segmentation.algorithms import one_thread
from segmentation.errors import InputError, TrackingError
from segmentation.features.space import prepare_space
from segmentation.study.artifacts import ArtifactWriter
from segmentation.study.budget import run_budget
from segmentation.study.console import Progress
from segmentation.study.definition import make_sampler
from segmentation.study.interrupts import raise_once
from segmentation.study.objective import SweepContext, SweepGroups, TrialRunner
from segmentation.study.processes import die_with_parent
from segmentation.study.run_logging import copy_repeated_plots, dataset_input
from segmentation.study.storage import study_storage
from segmentation.study.workers import StudyLock
from segmentation.tracking.console import quiet_console
from segmentation.tracking.store import connect


def run_worker(cfg: DictConfig, index: int, experiment_id: str, parent_run_id: str) -> None:
    """One worker: join the prepared study and parent run, run trials while budget remains.

    A composition root (the config crossed a process boundary whole): it gives each stage the
    groups it reads."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    groups = SweepGroups.of(cfg)
    space = prepare_space(groups.space_config)
    writer = ArtifactWriter(int(cfg.tracking.artifact_workers))
    writer.start()
    client = connect(str(cfg.paths.tracking_uri))
    lock = StudyLock.for_config(cfg.storage, cfg.paths, groups.experiment_name)
    lock.claim()
    try:
        study = optuna.load_study(
            study_name=groups.study_name(space.dataset_hash),
            storage=study_storage(cfg.storage, cfg.sweep, cfg.paths, groups.experiment_name),
            sampler=make_sampler(cfg.sampler, cfg.sweep.seed, worker=index),
        )
        ctx = SweepContext(
            groups,
            space,
            experiment_id,
            parent_run_id,
            dataset_input(space.data),
            writer,
            client,
        )
        n_trials = int(cfg.sweep.n_trials)
        runner = TrialRunner(ctx)
        run_budget(study, runner, n_trials, [Progress(n_trials, bool(cfg.sweep.progress))])
        writer.close()  # this worker's plots and models are all logged
        copy_repeated_plots(client, runner.plot_copies)
    finally:
        writer.close()
        lock.release()


def main(argv: list[str] | None = None) -> int:
    """Run one worker; return its exit code."""
    parser = argparse.ArgumentParser(prog="python -m segmentation.study.worker")
    parser.add_argument("--index", type=int, required=True)
    parser.add_argument("--experiment-id", required=True)
    parser.add_argument("--parent-run-id", required=True)
    parser.add_argument("--parent-pid", type=int, required=True)
    args = parser.parse_args(argv)
    die_with_parent(args.parent_pid)
    raise_once()
    quiet_console()
    cfg = OmegaConf.create(sys.stdin.read())
    try:
        with one_thread():
            run_worker(cfg, args.index, args.experiment_id, args.parent_run_id)
    except (InputError, TrackingError) as exc:
        print(f"error: worker {args.index}: {exc}", file=sys.stderr, flush=True)
        return 2
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
