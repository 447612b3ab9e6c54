"""Benchmarks of the Spark engine against the local one (not tests): scoring rows/s and a
5-trial KMeans sweep, each in its own process, with the driver's peak memory (the Python driver
plus its JVM, read from /proc as VmHWM).

``python benchmarks/spark_bench.py --sweep-rows 10000000 --scoring-rows`` prints a Markdown
table;
``benchmarks/bench.py`` calls :func:`section_spark` for its ``spark`` section.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from segmentation.promotion.aliases import ModelRef

CHUNK = 1_000_000


# dataset: the experiment preset the benchmark runs.
PRESETS = {"mall": "mall_income_spending", "retail": "retail_rfm"}


def _generated(dataset: str) -> tuple[Any, str]:
    """The dataset's ``generate`` and id column, from its config."""
    from segmentation.config import compose
    from segmentation.data import dataset_module

    config = compose([f"experiments={PRESETS[dataset]}"]).dataset
    return dataset_module(config).generate, str(config.id_column)


def write_parquet(dataset: str, folder: Path, rows: int, seed: int = 42) -> Path:
    """``rows`` generated customers of ``dataset`` as Parquet parts of at most a million
    rows (ids unique across parts)."""
    generate, id_column = _generated(dataset)
    folder.mkdir(parents=True, exist_ok=True)
    for part, start in enumerate(range(0, rows, CHUNK)):
        frame = generate(min(CHUNK, rows - start), seed=seed + part)
        frame[id_column] += start
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


def _cfg(store: Path, engine: str, data: Path, dataset: str, *extra: str) -> Any:
    from segmentation.config import compose

    return compose(
        [
            f"experiments={PRESETS[dataset]}",
            f"paths.mlruns_dir={store}",
            f"paths.reports_dir={store}/reports",
            f"dataset.path={data}",
            "sweep.progress=false",
            f"engine={engine}",
            "algorithm=kmeans",
            *extra,
        ]
    )


def child(kind: str, engine: str, rows: int, work: Path, dataset: str) -> dict[str, Any]:
    """One measurement in this process: ``score`` (the trained model scores the table) or
    ``sweep`` (5 KMeans trials; on Spark, its best model is then promoted and the champion,
    loaded as the local engine loads it, scores a thousand generated rows)."""
    data = work / f"{dataset}-{rows}"
    single = data / "part-0000.parquet"
    store = work / f"store-{engine}-{kind}-{rows}"
    table = single if engine == "local" else data
    started = time.perf_counter()
    extra: dict[str, Any] = {}
    if kind == "prepare":
        return _prepare(store, table, dataset)
    if kind == "sweep":
        from segmentation.spark import run_spark_sweep
        from segmentation.study.sweep import run_sweep

        cfg = _cfg(store, engine, table, dataset, "sweep.n_trials=5")
        result = (run_spark_sweep if engine == "spark" else run_sweep)(cfg)
        wall = time.perf_counter() - started
        scored = rows
        extra["best"] = f"k={result.best_trial.params.get('kmeans.n_clusters')}"
        if engine == "spark":
            extra["champion_rows"] = _promote_and_score(cfg, dataset)
    else:
        cfg = _cfg(store, engine, table, dataset)
        model = (work / "model.txt").read_text().strip()
        out = work / f"scored-{engine}-{rows}"
        if engine == "spark":
            from segmentation.spark import score_table

            scored = score_table(
                cfg.dataset, cfg.engine, ModelRef.of(cfg.tracking, cfg.paths, model), data, out
            ).scored
        else:
            from segmentation.serving.predict import score_file

            scored = score_file(
                cfg.dataset,
                ModelRef.of(cfg.tracking, cfg.paths, model),
                single,
                out.with_suffix(".csv"),
            ).scored
        wall = time.perf_counter() - started
    return {"wall": wall, "rows": scored, "peak_mb": driver_peak_mb(), **extra}


def _prepare(store: Path, table: Path, dataset: str) -> dict[str, Any]:
    """The Spark preparation alone (read, clean, learn the table figures, engineer, scale,
    collect the sample), after the session has started: its wall time and rows."""
    from segmentation.features.space import SpaceConfig
    from segmentation.spark.session import get_session
    from segmentation.spark.space import prepare_spark_space

    cfg = _cfg(store, "spark", table, dataset)
    spark = get_session(cfg.engine)
    started = time.perf_counter()
    space, tables = prepare_spark_space(SpaceConfig.of(cfg), cfg.engine, spark)
    wall = time.perf_counter() - started
    return {
        "wall": wall,
        "rows": tables.rows,
        "peak_mb": driver_peak_mb(),
        "X_raw_sum": float(space.X_raw.sum()),
        "figures": space.data.detected.get("table_figures"),
    }


def section_prepare(
    rows: int, before_root: Path | None, repeats: int = 1, dataset: str = "retail"
) -> str:
    """The Spark preparation of ``rows`` generated ``dataset`` customers, this tree against the
    tree at ``before_root`` (its ``src`` first on the path), alternating, each in a fresh
    process; medians of ``repeats``. Returns Markdown."""
    runs: dict[str, list[dict[str, Any]]] = {"after": [], "before": []}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        write_parquet(dataset, work / f"{dataset}-{rows}", rows)
        for i in range(repeats):
            for label in ("before", "after") if before_root else ("after",):
                env = None
                if label == "before":
                    env = {
                        **os.environ,
                        "PYTHONPATH": str(before_root / "src"),
                        "SEGMENTATION_ROOT": str(before_root),
                    }
                figures = _run_child("prepare", "spark", rows, work, dataset, env)
                runs[label].append(figures)
                print(
                    f"  prepare {rows:,} rows, {label} {i + 1}: {figures['wall']:.1f} s", flush=True
                )
    after = statistics.median(r["wall"] for r in runs["after"])
    lines = [
        f"Spark preparation of {rows:,} generated {dataset} customers (Parquet parts of "
        f"{CHUNK:,} rows, local[*]; session start excluded), median of {repeats}:",
        "",
        "| tree | preparation | rows kept | driver peak RSS |",
        "| --- | ---: | ---: | ---: |",
        f"| after (one pass) | {after:.1f} s | {runs['after'][0]['rows']:,} | "
        f"{statistics.median(r['peak_mb'] for r in runs['after']):.0f} MB |",
    ]
    if runs["before"]:
        before = statistics.median(r["wall"] for r in runs["before"])
        same = all(
            r["figures"] == runs["after"][0]["figures"]
            and r["rows"] == runs["after"][0]["rows"]
            and abs(r["X_raw_sum"] - runs["after"][0]["X_raw_sum"]) <= 1e-6 * abs(r["X_raw_sum"])
            for r in runs["before"]
        )
        lines.insert(
            5,
            f"| before | {before:.1f} s | {runs['before'][0]['rows']:,} | "
            f"{statistics.median(r['peak_mb'] for r in runs['before']):.0f} MB |",
        )
        lines += [
            "",
            f"after / before: {after / before:.2f}x; same rows, table figures and sampled "
            f"features: {'yes' if same else 'no'}. Runs (s): before "
            + ", ".join(f"{r['wall']:.1f}" for r in runs["before"])
            + "; after "
            + ", ".join(f"{r['wall']:.1f}" for r in runs["after"])
            + ".",
        ]
    return "\n".join(lines)


def _promote_and_score(cfg: Any, dataset: str) -> int:
    """`make promote` of the sweep's best, then the champion scores generated rows (pyfunc,
    no Spark): the rows it returned."""
    from segmentation.promotion.promote import promote
    from segmentation.tracking.model import load_pyfunc

    generate, id_column = _generated(dataset)
    promote(cfg)
    name = str(cfg.tracking.registered_model_name)
    model = load_pyfunc(f"models:/{name}@champion", str(cfg.paths.tracking_uri))
    rows = generate(1000, seed=99).drop(columns=[id_column])
    rows = rows.dropna().astype({c: str for c in rows.select_dtypes("category").columns})
    return int(len(model.predict(rows)))


def _run_child(
    kind: str, engine: str, rows: int, work: Path, dataset: str, env: dict | None = None
) -> dict[str, Any]:
    out = subprocess.run(
        [
            sys.executable,
            str(Path(__file__).resolve()),
            "--child",
            kind,
            engine,
            str(rows),
            str(work),
            dataset,
        ],
        capture_output=True,
        text=True,
        env=env,
    )
    if out.returncode:
        sys.exit(f"{kind} on {engine} ({rows:,} rows) failed:\n{out.stderr[-4000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def _train_model(work: Path, dataset: str) -> None:
    """A small local sweep whose best model every scoring run uses (its URI in model.txt)."""
    from segmentation.study.sweep import run_sweep

    folder = write_parquet(dataset, work / "train", 2000, seed=1)
    cfg = _cfg(
        work / "store-model",
        "local",
        folder / "part-0000.parquet",
        dataset,
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
    dataset: str = "retail",
) -> str:
    """The ``spark`` section: scoring rows/s and peak driver memory on each engine, and the
    wall time and peak driver memory of a 5-trial KMeans sweep (local only up to
    ``local_sweep_max`` rows), on generated ``dataset`` customers. Returns Markdown."""
    lines = [
        f"Generated {dataset} customers (preset {PRESETS[dataset]}), Parquet parts of "
        f"{CHUNK:,} rows; Spark on local[*].",
        "",
        "| measurement | rows | engine | wall | rows/s | driver peak RSS | notes |",
        "| --- | ---: | --- | ---: | ---: | ---: | --- |",
    ]
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        if scoring_rows:
            _train_model(work, dataset)
        for rows in sorted(set(scoring_rows) | set(sweep_rows)):
            write_parquet(dataset, work / f"{dataset}-{rows}", rows)
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
            figures = _run_child(kind, engine, rows, work, dataset)
            rate = f"{figures['rows'] / figures['wall']:,.0f}" if kind == "score" else ""
            notes = ", ".join(
                f"{key} {figures[key]}" for key in ("best", "champion_rows") if key in figures
            )
            lines.append(
                f"| {'scoring' if kind == 'score' else '5-trial KMeans sweep'} | {rows:,} | "
                f"{engine} | {figures['wall']:.1f} s | {rate} | {figures['peak_mb']:.0f} MB | "
                f"{notes} |"
            )
            print(lines[-1], flush=True)
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dataset", choices=sorted(PRESETS), default="retail")
    parser.add_argument("--scoring-rows", type=int, nargs="*", default=[1_000_000])
    parser.add_argument("--sweep-rows", type=int, nargs="*", default=[1_000_000])
    parser.add_argument("--local-max", type=int, default=1_000_000, help="largest local run")
    parser.add_argument("--prepare-rows", type=int, default=0, help="time the preparation only")
    parser.add_argument("--before", type=Path, help="with --prepare-rows: the tree to compare")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--child", nargs=5, metavar=("KIND", "ENGINE", "ROWS", "WORK", "DATA"))
    args = parser.parse_args(argv)
    if args.child:
        kind, engine, rows, work, dataset = args.child
        print(json.dumps(child(kind, engine, int(rows), Path(work), dataset)), flush=True)
        return
    if args.prepare_rows:
        print(section_prepare(args.prepare_rows, args.before, args.repeats, args.dataset))
        return
    print(
        section_spark(
            args.scoring_rows,
            args.sweep_rows,
            args.local_max,
            args.local_max,
            args.dataset,
        )
    )


if __name__ == "__main__":
    main()
