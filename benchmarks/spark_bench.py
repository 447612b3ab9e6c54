"""Benchmarks of the Spark engine against the local one (not tests): scoring rows/s and a
5-trial KMeans sweep, each in its own process, with the driver's peak memory (the Python driver
plus its JVM, read from /proc as VmHWM).

``python benchmarks/spark_bench.py --rows 1000000`` prints a Markdown table;
``benchmarks/bench.py`` calls :func:`section_spark` for its ``spark`` section.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

CHUNK = 1_000_000


def write_mall_parquet(folder: Path, rows: int, seed: int = 42) -> Path:
    """``rows`` generated Mall customers as Parquet parts of at most a million rows."""
    from segmentation.data.mall import generate

    folder.mkdir(parents=True, exist_ok=True)
    for part, start in enumerate(range(0, rows, CHUNK)):
        frame = generate(min(CHUNK, rows - start), seed=seed + part)
        frame["CustomerID"] += start
        frame.to_parquet(folder / f"part-{part:04d}.parquet", index=False)
    return folder


def _peak_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def driver_peak_mb() -> float:
    """Peak RSS of this process plus its child processes (the Spark JVM), in MB."""
    me = os.getpid()
    total = _peak_mb(me)
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == me:
            total += _peak_mb(int(entry.name))
    return total


def _cfg(store: Path, engine: str, data: Path, *extra: str) -> Any:
    from segmentation.config import compose

    engine_group = "engine" if "engine" in compose([]) else "+engine"
    return compose(
        [
            f"paths.mlruns_dir={store}",
            f"paths.reports_dir={store}/reports",
            f"dataset.path={data}",
            "sweep.progress=false",
            f"{engine_group}={engine}",
            *extra,
        ]
    )


def child(kind: str, engine: str, rows: int, work: Path) -> dict[str, Any]:
    """One measurement in this process: ``score`` (the champion scores the table) or
    ``sweep`` (5 KMeans trials)."""
    data = work / f"mall-{rows}"
    single = data / "part-0000.parquet"
    store = work / f"store-{engine}-{kind}"
    cfg = _cfg(store, engine, single if engine == "local" else data, "algorithm=kmeans")
    started = time.perf_counter()
    if kind == "sweep":
        from segmentation.spark import engine_name, run_spark_sweep
        from segmentation.study.sweep import run_sweep

        cfg = _cfg(
            store,
            engine,
            single if engine == "local" else data,
            "algorithm=kmeans",
            "sweep.n_trials=5",
            "tracking.log_plots=true",
        )
        (run_spark_sweep if engine_name(cfg) == "spark" else run_sweep)(cfg)
        scored = rows
    else:
        model = (work / "model.txt").read_text().strip()
        out = work / f"scored-{engine}-{rows}"
        if engine == "spark":
            from segmentation.spark import score_table

            scored = score_table(cfg, data, out, model).scored
        else:
            from segmentation.serving.predict import score_file

            scored = score_file(cfg, single, out.with_suffix(".csv"), model).scored
    wall = time.perf_counter() - started
    return {"wall": wall, "rows": scored, "peak_mb": driver_peak_mb()}


def _run_child(kind: str, engine: str, rows: int, work: Path) -> dict[str, Any]:
    out = subprocess.run(
        [
            sys.executable,
            str(Path(__file__).resolve()),
            "--child",
            kind,
            engine,
            str(rows),
            str(work),
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def _train_model(work: Path) -> None:
    """A small local sweep whose best model every scoring run uses (its URI in model.txt)."""
    from segmentation.data.mall import generate
    from segmentation.study.sweep import run_sweep

    folder = work / "train"
    folder.mkdir(exist_ok=True)
    generate(2000, seed=1).to_parquet(folder / "mall.parquet", index=False)
    cfg = _cfg(
        work / "store-model",
        "local",
        folder / "mall.parquet",
        "algorithm=kmeans",
        "sweep.n_trials=3",
        "tracking.log_plots=false",
    )
    result = run_sweep(cfg)
    uri = result.best_trial.user_attrs["model_uri"]
    (work / "model.txt").write_text(f"{uri}\n")
    os.environ["MLFLOW_TRACKING_URI"] = str(cfg.paths.tracking_uri)


def section_spark(
    scoring_rows: Sequence[int] = (1_000_000, 10_000_000),
    sweep_rows: Sequence[int] = (1_000_000, 10_000_000),
    local_sweep_max: int = 1_000_000,
    local_scoring_max: int = 10_000_000,
) -> str:
    """The ``spark`` section: scoring rows/s and peak driver memory on each engine, and the
    wall time and peak driver memory of a 5-trial KMeans sweep (local only up to
    ``local_sweep_max`` rows). Returns Markdown."""
    lines = [
        "| measurement | rows | engine | wall | rows/s | driver peak RSS |",
        "| --- | ---: | --- | ---: | ---: | ---: |",
    ]
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        _train_model(work)
        for rows in sorted(set(scoring_rows) | set(sweep_rows)):
            write_mall_parquet(work / f"mall-{rows}", rows)
        plan = [
            ("score", e, r)
            for r in scoring_rows
            for e in ("local", "spark")
            if e == "spark" or r <= local_scoring_max
        ]
        plan += [
            ("sweep", e, r)
            for r in sweep_rows
            for e in ("local", "spark")
            if e == "spark" or r <= local_sweep_max
        ]
        for kind, engine, rows in plan:
            figures = _run_child(kind, engine, rows, work)
            rate = figures["rows"] / figures["wall"] if kind == "score" else float("nan")
            lines.append(
                f"| {'scoring' if kind == 'score' else '5-trial KMeans sweep'} | {rows:,} | "
                f"{engine} | {figures['wall']:.1f} s | "
                f"{'' if kind == 'sweep' else f'{rate:,.0f}'} | {figures['peak_mb']:.0f} MB |"
            )
            print(lines[-1], flush=True)
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, nargs="+", default=[1_000_000])
    parser.add_argument("--child", nargs=4, metavar=("KIND", "ENGINE", "ROWS", "WORK"))
    args = parser.parse_args(argv)
    if args.child:
        kind, engine, rows, work = args.child
        print(json.dumps(child(kind, engine, int(rows), Path(work))), flush=True)
        return
    print(section_spark(args.rows, args.rows, max(args.rows), max(args.rows)))


if __name__ == "__main__":
    main()
