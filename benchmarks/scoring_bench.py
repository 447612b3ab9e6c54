"""``make bench ARGS="--only scoring"`` (issue 23): local batch scoring against its floor, memory
on a file ten times larger, and how quickly the commands start.

Every figure is measured in one run, the new code beside the code of ``--before-src`` (a
checkout of the commit before, e.g. ``git archive 232af3b | tar -x -C /tmp/before``) where one
is given, alternating repeats so a drift of the machine's load hits both alike:

- scoring ``--scoring-rows`` generated retail rows CSV to CSV with ``segmentation-predict`` (a
  fresh process: start to exit), rows per second and peak RSS, against the floor: pandas'
  read (pyarrow engine) + the model's own predict + pandas' ``to_csv`` of the same rows, in one
  process already started (``--scoring-repeats`` times);
- the code before against after on ``--before-rows`` rows;
- scoring ten times as many rows (the million rows repeated; after only: the code before
  holds the whole file in memory);
- a 10-row ``make predict`` against ``python -c "import mlflow"`` and against the start-up
  floor of scoring through MLflow: a fresh process importing MLflow and scikit-learn, opening
  the store and loading the champion with ``mlflow.pyfunc`` (``STARTUP``), which a local
  store's champion no longer needs (``tracking/local_registry.py``);
- a wrong option (``segmentation-sweep algorithm=foo``) refused, and a missing ``INPUT`` file.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pandas as pd

from segmentation.config import project_root
from segmentation.data.retail_marketing import generate
from segmentation.promotion.aliases import ModelRef

BIN = Path(sys.executable).parent
SWEEP = (
    "experiments=retail_rfm",
    "sweep.n_trials=2",
    "algorithm=kmeans",
    "tracking.log_plots=false",
    "sweep.progress=false",
)
GENERATE_ROWS = 1_000_000  # rows generated per pass: a larger file is written in parts


def write_retail(path: Path, rows: int, seed: int = 42) -> Path:
    """``rows`` seeded synthetic retail customers as the real file comes (tab-separated)."""
    done = 0
    while done < rows:
        part = generate(min(GENERATE_ROWS, rows - done), seed + done)
        part["ID"] += done
        part.to_csv(path, sep="\t", index=False, header=done == 0, mode="w" if not done else "a")
        done += len(part)
    return path


def repeat_rows(source: Path, path: Path, times: int) -> Path:
    """``source``'s rows ``times`` over under its header: a large file in the time of a copy
    (ids repeat; scoring does not read them)."""
    with source.open("rb") as fh:
        header = fh.readline()
        body = fh.read()
    with path.open("wb") as out:
        out.write(header)
        for _ in range(times):
            out.write(body)
    return path


def child_env(root: Path, src: Path | None = None) -> dict[str, str]:
    """The environment of a measured command: the tree at ``root`` (its ``src`` on the path
    when given), its own temporary store, no progress bars, and Python's default bytecode cache
    as a user's shell has it (a shell that exports PYTHONDONTWRITEBYTECODE, as this machine's
    does, makes every command compile the project's modules again)."""
    env = dict(os.environ)
    env["SEGMENTATION_ROOT"] = str(root)
    env["MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"] = "false"
    env.setdefault("MPLBACKEND", "Agg")
    env.pop("MLFLOW_TRACKING_URI", None)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    if src is not None:
        env["PYTHONPATH"] = str(src)
    return env


# Starts a command and reports when it started, its wall time and its peak RSS. A child
# started straight from a benchmark would report at least the benchmark's own peak (Linux keeps
# the peak of the memory a process had before exec, and subprocess starts children with vfork):
# after the floor has held a million rows, every later figure would be the benchmark's.
_LAUNCH = """
import json, resource, subprocess, sys, time
started_at, start = time.time(), time.perf_counter()
code = subprocess.call(sys.argv[1:], stdout=subprocess.DEVNULL)
wall = time.perf_counter() - start
peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
print(json.dumps({"wall": wall, "started_at": started_at, "code": code, "peak_kb": peak}))
"""


def launch(args: list[str], env: dict[str, str]) -> dict[str, Any]:
    """Run a command to its end from a small launcher (``_LAUNCH``): its exit code, when it
    started (epoch seconds), its wall time, its peak RSS (MB) and its stderr."""
    proc = subprocess.run(
        [sys.executable, "-c", _LAUNCH, *args], env=env, capture_output=True, check=False
    )
    stderr = proc.stderr.decode(errors="replace")
    try:
        done = json.loads(proc.stdout.decode().strip().splitlines()[-1])
    except (IndexError, ValueError):
        raise RuntimeError(
            f"{' '.join(args)}: no report ({proc.returncode}):\n{stderr[-3000:]}"
        ) from None
    return {
        "code": done["code"],
        "started_at": done["started_at"],
        "wall": done["wall"],
        "peak_rss_mb": done["peak_kb"] / 1024,
        "stderr": stderr,
    }


def run_command(args: list[str], env: dict[str, str], expect: int = 0) -> dict[str, float]:
    """Wall time, start (epoch seconds) and peak RSS (MB) of a command run to its end (see
    :func:`launch`); a command that exits other than ``expect`` raises, with its stderr's end."""
    done = launch(args, env)
    if done["code"] != expect:
        raise RuntimeError(f"{' '.join(args)} exited {done['code']}:\n{done['stderr'][-3000:]}")
    return {key: done[key] for key in ("wall", "started_at", "peak_rss_mb")}


def _command(name: str) -> list[str]:
    """A console script run by this interpreter (so PYTHONPATH picks the code)."""
    return [sys.executable, "-c", f"from segmentation.cli import {name}; {name}()"]


def predict(store: Path, src: Path | None, root: Path, source: Path, out: Path) -> dict:
    args = [
        *_command("predict_main"),
        "experiments=retail_rfm",
        f"paths.mlruns_dir={store}",
        f"hydra.run.dir={store.parent / 'hydra'}",
        f"+input={source}",
        f"+output={out}",
    ]
    return run_command(args, child_env(root, src))


def quick_table(
    commands: dict[str, dict[str, list[dict]]], mlflow_s: float, startup_s: float
) -> list[str]:
    """The quick commands' Markdown table: each command's ``after`` runs (and ``before`` runs,
    whose columns appear only when the code before was measured) as medians and ratios."""
    with_before = any(runs["before"] for runs in commands.values())
    # (heading, whether it shows the code before, cell of the medians after and before).
    columns = [
        ("before", True, lambda after, before: f"{before:.2f} s"),
        ("after", False, lambda after, before: f"{after:.2f} s"),
        ("before / after", True, lambda after, before: f"{before / after:.2f}x"),
        ("after / `import mlflow`", False, lambda after, before: f"{after / mlflow_s:.2f}x"),
        ("after / start-up floor", False, lambda after, before: f"{after / startup_s:.2f}x"),
    ]
    shown = [
        (heading, cell) for heading, of_before, cell in columns if with_before or not of_before
    ]
    lines = [
        _row(["command", *(heading for heading, _ in shown)]),
        "|---" * (len(shown) + 1) + "|",
    ]
    for name, runs in commands.items():
        after = _median(runs["after"], "wall")
        before = _median(runs["before"], "wall") if with_before else None
        lines.append(_row([name, *(cell(after, before) for _, cell in shown)]))
    return lines


def _row(cells: list[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def floor(cfg: Any, source: Path, out: Path) -> dict[str, float]:
    """pandas read (pyarrow engine) + the model's own predict + ``to_csv``, seconds each."""
    from segmentation.serving.predict import load_model

    model = load_model(ModelRef.of(cfg.tracking, cfg.paths)).segmenter
    start = time.perf_counter()
    frame = pd.read_csv(source, sep="\t", engine="pyarrow")
    read = time.perf_counter()
    rows = frame.drop(columns=["ID"])
    rows["Income"] = rows["Income"].fillna(model.inputs["impute"]["Income"])
    scored = model.segment(rows)
    predicted = time.perf_counter()
    for column in ("segment", "persona", "confidence"):
        frame[column] = scored[column].to_numpy()
    frame.to_csv(out, index=False)
    written = time.perf_counter()
    return {
        "read": read - start,
        "predict": predicted - read,
        "write": written - predicted,
        "total": written - start,
    }


# The least a fresh process scoring with the champion through MLflow pays before its first row.
STARTUP = """
import mlflow, sklearn.cluster
from mlflow import MlflowClient
MlflowClient({uri!r}).search_experiments(max_results=1)
mlflow.set_tracking_uri({uri!r})
mlflow.pyfunc.load_model("models:/{name}@champion", suppress_warnings=True)
"""


def _median(rows: list[dict], key: str) -> float:
    return statistics.median(r[key] for r in rows)


def section_scoring(
    tmp: Path,
    repeats: int,
    rows: int,
    big_rows: int,
    before_src: Path | None,
    before_rows: int = 200_000,
    heavy_repeats: int = 1,
) -> str:
    """Run the section; the Markdown body for bench-results."""
    from segmentation.config import compose

    root = project_root()
    before_root = before_src.parent if before_src else None
    store = tmp / "scoring" / "mlruns"
    store.mkdir(parents=True)
    env = child_env(root)
    hydra_dir = f"hydra.run.dir={store.parent / 'hydra'}"
    run_command([*_command("sweep_main"), *SWEEP, f"paths.mlruns_dir={store}", hydra_dir], env)
    run_command(
        [*_command("promote_main"), "experiments=retail_rfm", f"paths.mlruns_dir={store}"]
        + [hydra_dir],
        env,
    )
    cfg = compose(["experiments=retail_rfm", f"paths.mlruns_dir={store}"])
    print("  champion promoted; writing the files", flush=True)
    ten = write_retail(tmp / "scoring" / "ten.csv", 10, seed=7)

    lines: list[str] = []
    # Quick commands: the 10-row predict and a wrong option, against `import mlflow`.
    quick: dict[str, list[dict]] = {"mlflow": [], "startup": [], "after": [], "before": []}
    startup = STARTUP.format(
        uri=str(cfg.paths.tracking_uri), name=cfg.tracking.registered_model_name
    )
    wrong: dict[str, list[dict]] = {"after": [], "before": []}
    bad = [*_command("sweep_main"), "algorithm=foo"]
    # A mistyped INPUT: refused before the config is composed.
    absent: dict[str, list[dict]] = {"after": [], "before": []}
    no_file = [
        *_command("predict_main"), "experiments=retail_rfm", f"paths.mlruns_dir={store}",
        hydra_dir, f"+input={tmp / 'scoring' / 'no-such.csv'}",
        f"+output={tmp / 'scoring' / 'never.csv'}",
    ]  # fmt: skip
    for i in range(repeats):
        quick["mlflow"].append(run_command([sys.executable, "-c", "import mlflow"], env))
        quick["startup"].append(run_command([sys.executable, "-c", startup], env))
        quick["after"].append(predict(store, None, root, ten, tmp / "scoring" / "ten-out.csv"))
        wrong["after"].append(run_command(bad, env, expect=2))
        absent["after"].append(run_command(no_file, env, expect=2))
        if before_src:
            quick["before"].append(
                predict(store, before_src, before_root, ten, tmp / "scoring" / "ten-b.csv")
            )
            before_env = child_env(before_root, before_src)
            wrong["before"].append(run_command(bad, before_env, expect=2))
            absent["before"].append(run_command(no_file, before_env, expect=2))
        print(f"  quick commands repeat {i + 1}/{repeats}", flush=True)
    mlflow_s = _median(quick["mlflow"], "wall")
    startup_s = _median(quick["startup"], "wall")
    lines += [
        f"Quick commands (median of {repeats}; `import mlflow` alone: {mlflow_s:.2f} s; the "
        f"start-up floor of scoring through MLflow, MLflow and scikit-learn imported, the "
        f"store opened and the champion loaded by `mlflow.pyfunc` in a fresh process: "
        f"{startup_s:.2f} s; a local store's champion is scored without it):",
        "",
        *quick_table(
            {
                "`make predict` of 10 rows": quick,
                "a wrong option refused": wrong,
                "a missing INPUT file refused": absent,
            },
            mlflow_s,
            startup_s,
        ),
    ]

    print("\n".join(lines), flush=True)  # so far: kept in the log if a later part is stopped
    # Before against after on --before-rows (the code before needs minutes and GBs at 1M).
    if before_src:
        small = write_retail(tmp / "scoring" / "small.csv", before_rows)
        pair = {
            "before": predict(store, before_src, before_root, small, tmp / "scoring" / "b.csv"),
            "after": predict(store, None, root, small, tmp / "scoring" / "a.csv"),
        }
        same = pd.read_csv(tmp / "scoring" / "a.csv").equals(pd.read_csv(tmp / "scoring" / "b.csv"))
        ratio = pair["before"]["wall"] / pair["after"]["wall"]
        lines += [
            "",
            f"Scoring {before_rows:,} rows CSV to CSV, before against after (once each): before "
            f"{pair['before']['wall']:.1f} s ({before_rows / pair['before']['wall']:,.0f} rows/s, "
            f"{pair['before']['peak_rss_mb']:,.0f} MB), after {pair['after']['wall']:.1f} s "
            f"({before_rows / pair['after']['wall']:,.0f} rows/s, "
            f"{pair['after']['peak_rss_mb']:,.0f} MB): {ratio:.1f}x faster; outputs identical "
            f"when read back: {same}.",
        ]

    print("\n".join(lines), flush=True)  # so far: kept in the log if a later part is stopped
    # The million rows: CLI against the floor, alternating.
    million = write_retail(tmp / "scoring" / "million.csv", rows)
    scored: dict[str, list[dict]] = {"after": [], "floor": []}
    for i in range(heavy_repeats):
        scored["floor"].append(floor(cfg, million, tmp / "scoring" / "floor.csv"))
        scored["after"].append(predict(store, None, root, million, tmp / "scoring" / "a.csv"))
        after, fl = scored["after"][-1]["wall"], scored["floor"][-1]["total"]
        print(f"  scoring repeat {i + 1}/{heavy_repeats}: after {after:.1f} s, floor {fl:.1f} s")
    floor_s = _median(scored["floor"], "total")
    after_s = _median(scored["after"], "wall")
    lines += [
        "",
        f"Scoring {rows:,} generated retail rows CSV to CSV (`segmentation-predict`, process "
        f"start to exit, against the floor in a process already started; median of "
        f"{heavy_repeats}):",
        "",
        "| | seconds | rows/s | peak RSS | / floor |",
        "|---|---|---|---|---|",
        f"| floor: read {_median(scored['floor'], 'read'):.1f} s + model predict "
        f"{_median(scored['floor'], 'predict'):.1f} s + to_csv "
        f"{_median(scored['floor'], 'write'):.1f} s | {floor_s:.1f} | {rows / floor_s:,.0f} | "
        "| 1.00x |",
        f"| after | {after_s:.1f} | {rows / after_s:,.0f} | "
        f"{_median(scored['after'], 'peak_rss_mb'):,.0f} MB | {after_s / floor_s:.2f}x |",
    ]

    print("\n".join(lines), flush=True)  # so far: kept in the log if a later part is stopped
    # Ten times the rows, after only.
    times = max(big_rows // rows, 1)
    big_rows = times * rows
    big = repeat_rows(million, tmp / "scoring" / "big.csv", times)
    run = predict(store, None, root, big, tmp / "scoring" / "big-out.csv")
    lines += [
        "",
        f"Scoring {big_rows:,} rows (after only; the code before holds the file in memory): "
        f"{run['wall']:.0f} s, {big_rows / run['wall']:,.0f} rows/s, peak RSS "
        f"{run['peak_rss_mb']:,.0f} MB ({big.stat().st_size / 1e9:.1f} GB file).",
    ]
    return "\n".join(lines)
