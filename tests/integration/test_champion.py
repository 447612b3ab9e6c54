"""Champion and challenger (issue 17): segment ids aligned at promotion, the migration report and
its gate, and drift of new customers against the champion's training data."""

from __future__ import annotations

import copy
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from segmentation.cli import drift_main, promote_main
from segmentation.data import load_dataset
from segmentation.data.mall import INCOME, generate
from segmentation.errors import InputError
from segmentation.promotion.promote import CHAMPION, PREVIOUS, alias_version, promote, rollback
from segmentation.tracking import runs as tags
from segmentation.tracking.model import SegmentModel, load_pyfunc, log_segment_model
from segmentation.tracking.store import connect, process_tracking_uri
from tests.conftest import PROMOTED_K, PROMOTED_SWEEP, make_cfg, private_copy, run_main

K = PROMOTED_K


@dataclass
class Champion:
    store: Path
    cfg: object
    best_run: str  # the sweep's best trial, promoted first
    best_model_uri: str  # its model as the sweep logged it (no renumbering)

    @property
    def name(self) -> str:
        return str(self.cfg.tracking.registered_model_name)

    def paths(self) -> list[str]:
        """The CLI's overrides for this store (reports and Hydra's folder under tmp)."""
        return [
            f"paths.mlruns_dir={self.store}",
            f"paths.data_dir={self.store / 'no-data'}",
            f"paths.reports_dir={self.store.parent / 'reports'}",
            f"hydra.run.dir={self.store.parent / 'hydra'}",
        ]


def compose(store: Path, *overrides: str):
    return make_cfg(
        store, f"paths.reports_dir={store.parent / 'reports'}", *PROMOTED_SWEEP, *overrides
    )


@pytest.fixture(scope="module")
def champion(promoted, tmp_path_factory):
    """A private copy of the session's promoted store (KMeans k=4 on the synthetic customers,
    its best the champion, version 1): this module promotes challengers and rolls back."""
    with private_copy(promoted, tmp_path_factory.mktemp("champion")) as copy:
        yield Champion(
            copy.store,
            compose(copy.store),
            copy.best_run,
            copy.result.best_trial.user_attrs["model_uri"],
        )


def training_customers(cfg) -> pd.DataFrame:
    """The customers the sweep trained on, as a model takes them (no id column)."""
    return load_dataset(cfg.dataset).frame.drop(columns=["CustomerID"])


def aliases(champ: Champion) -> tuple[str | None, str | None]:
    client = MlflowClient(str(champ.cfg.paths.tracking_uri))
    return alias_version(client, champ.name, CHAMPION), alias_version(client, champ.name, PREVIOUS)


def sweep_model(champ: Champion) -> SegmentModel:
    """The champion's model as the sweep logged it: its KMeans ids are the champion's ids."""
    return load_pyfunc(
        champ.best_model_uri, str(champ.cfg.paths.tracking_uri)
    ).unwrap_python_model()


def log_challenger(champ: Champion, model: SegmentModel, k: int, name: str) -> str:
    """Log ``model`` as a trial-like run of the champion's experiment; returns its run id."""
    store = str(champ.cfg.paths.tracking_uri)
    client = connect(store)
    source = client.get_run(champ.best_run)
    example = training_customers(champ.cfg).head(5)
    with (
        process_tracking_uri(store),
        mlflow.start_run(
            experiment_id=source.info.experiment_id,
            run_name=name,
            tags={
                "trial_state": "COMPLETE",
                "dataset": source.data.tags["dataset"],
                tags.DATASET_HASH_TAG: source.data.tags[tags.DATASET_HASH_TAG],
                "data_source": source.data.tags["data_source"],
                "algorithm": "kmeans",
            },
        ) as run,
    ):
        mlflow.log_params({"feature_set": source.data.params["feature_set"], "algorithm": "kmeans"})
        mlflow.log_metrics(
            {
                "silhouette": source.data.metrics["silhouette"],
                "stability_ari": source.data.metrics["stability_ari"],
                "n_clusters": k,
            }
        )
        info = log_segment_model(model, example, store, name=f"kmeans-k{k}")
        mlflow.set_tag(tags.MODEL_ID_TAG, info.model_id)
    return run.info.run_id


def shares(labels: np.ndarray) -> list[dict]:
    ids, counts = np.unique(labels, return_counts=True)
    return [
        {"segment": int(s), "count": int(c), "share": float(c / len(labels))}
        for s, c in zip(ids, counts, strict=True)
    ]


def test_permuted_challenger_is_aligned_back_to_the_champion(champion, tmp_path):
    cfg, name = champion.cfg, champion.name
    client = MlflowClient(str(cfg.paths.tracking_uri))
    frame = training_customers(cfg)
    old_version, _ = aliases(champion)
    before = load_pyfunc(f"models:/{name}@{CHAMPION}", str(cfg.paths.tracking_uri)).predict(frame)
    base = sweep_model(champion)
    assert np.array_equal(base.predict(None, frame)["segment"], before["segment"])
    # The same KMeans with its centres reordered: centre j of the challenger is centre p[j].
    p = np.array([1, 2, 3, 0])
    pipeline = copy.deepcopy(base.pipeline)
    kmeans = pipeline.named_steps["cluster"]
    assert type(kmeans).__name__ == "KMeans" and kmeans.n_clusters == K
    kmeans.cluster_centers_ = kmeans.cluster_centers_[p]
    reference = copy.deepcopy(base.reference)
    new_id = {int(old): new for new, old in enumerate(p)}
    reference["segments"] = [{**r, "segment": new_id[r["segment"]]} for r in reference["segments"]]
    challenger = SegmentModel(
        pipeline,
        {j: base.personas[int(p[j])] for j in range(K)},
        base.inputs,
        reference=reference,
    )
    raw = challenger.predict(None, frame)["segment"].to_numpy()
    assert np.array_equal(raw, [new_id[s] for s in before["segment"]])
    assert (raw != before["segment"].to_numpy()).all(), "every customer has another raw id"
    run_id = log_challenger(champion, challenger, K, "challenger-permuted")

    done = promote(cfg, run_id)

    assert done.changed and done.run_id == run_id and done.previous == old_version
    assert done.migration["reassigned_share"] == 0.0
    assert done.migration["adjusted_rand_index"] == pytest.approx(1.0)
    assert done.migration["n_customers"] == len(frame)
    assert aliases(champion) == (done.version, old_version)
    after = load_pyfunc(f"models:/{name}@{CHAMPION}", str(cfg.paths.tracking_uri)).predict(frame)
    assert after["segment"].tolist() == before["segment"].tolist()
    assert after["persona"].tolist() == before["persona"].tolist()
    version = client.get_model_version(name, done.version)
    assert version.tags["migration.reassigned_share"] == "0.0000"
    assert version.tags["migration.aligned_to"] == f"v{old_version}"
    assert version.tags["source_run"] == run_id
    # The version's model is the aligned one, logged with the migration report among its files.
    assert version.source.startswith("models:/")
    model_id = version.source.removeprefix("models:/")
    files = client.list_logged_model_artifacts(model_id, "migration")
    assert {Path(f.path).name for f in files} == {
        "migration.json",
        "migration.html",
        "transitions.csv",
        "transitions.png",
    }
    location = client.get_logged_model(model_id).artifact_location
    folder = Path(
        mlflow.artifacts.download_artifacts(f"{location}/migration", dst_path=str(tmp_path))
    )
    assert json.loads((folder / "migration.json").read_text()) == done.migration
    transitions = pd.read_csv(folder / "transitions.csv")
    assert (transitions["from_segment"] == transitions["to_segment"]).all()
    # The migration page (one template renderer with the sweep report and the drift page).
    page = (folder / "migration.html").read_text(encoding="utf-8")
    assert f"{len(frame):,} customers scored by both models" in page
    counts = before["segment"].value_counts()
    assert dict(zip(transitions["from_segment"], transitions["count"], strict=True)) == dict(counts)
    assert (folder / "transitions.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # The aligned model's drift reference speaks the champion's ids again.
    aligned = load_pyfunc(
        f"models:/{name}@{CHAMPION}", str(cfg.paths.tracking_uri)
    ).unwrap_python_model()
    assert aligned.reference["segments"] == shares(before["segment"].to_numpy())


@dataclass
class Split:
    run_id: str
    segment: int  # the champion segment that is split
    persona: str
    share: float  # share of customers that change segment
    before: np.ndarray
    raw: np.ndarray  # the challenger's own ids (the new segment is K)


@pytest.fixture(scope="module")
def split(champion) -> Split:
    """A challenger whose KMeans has one more centre, halfway between the largest segment's
    centre and its farthest member: part of that segment moves to the new centre."""
    frame = training_customers(champion.cfg)
    base = sweep_model(champion)
    before = base.predict(None, frame)["segment"].to_numpy()
    X = base.features(frame)
    pipeline = copy.deepcopy(base.pipeline)
    kmeans = pipeline.named_steps["cluster"]
    centres = kmeans.cluster_centers_
    segment = int(np.bincount(before).argmax())
    members = X[before == segment]
    farthest = members[np.linalg.norm(members - centres[segment], axis=1).argmax()]
    kmeans.cluster_centers_ = np.vstack([centres, (centres[segment] + farthest) / 2])
    kmeans.n_clusters = K + 1
    personas = {**base.personas, K: "Split-off customers"}
    probe = SegmentModel(pipeline, personas, base.inputs)
    raw = probe.predict(None, frame)["segment"].to_numpy()
    reference = {**base.reference, "segments": shares(raw)}
    challenger = SegmentModel(pipeline, personas, base.inputs, reference=reference)
    moved = raw != before
    # Only the new centre takes customers, and fewer than the segment keeps, so the segment
    # keeps its id and the new one is numbered after the champion's.
    assert set(raw[moved]) == {K}
    assert 0 < (moved & (before == segment)).sum() < (~moved & (before == segment)).sum()
    run_id = log_challenger(champion, challenger, K + 1, "challenger-split")
    return Split(run_id, segment, base.personas[segment], float(moved.mean()), before, raw)


def expected_transitions(before: np.ndarray, after: np.ndarray) -> dict[tuple[int, int], int]:
    pairs = pd.DataFrame({"a": before, "b": after}).value_counts()
    return {(int(a), int(b)): int(n) for (a, b), n in pairs.items()}


def test_split_is_refused_above_max_reassigned_share_and_the_champion_stays(
    champion, split, monkeypatch, capsys
):
    held = aliases(champion)
    limit = round(split.share / 2, 4)
    with pytest.raises(InputError) as refused:
        promote(compose(champion.store, f"promotion.max_reassigned_share={limit}"), split.run_id)
    message = str(refused.value)
    assert "\n" not in message
    assert f"reassigned_share {split.share:.4f} above max_reassigned_share {limit}" in message
    assert aliases(champion) == held
    # The migration table was printed: it names the segment that was split.
    table = capsys.readouterr().out
    assert f"{split.segment} {split.persona}" in table
    assert f"{K} Split-off customers" in table

    code = run_main(
        promote_main,
        monkeypatch,
        *champion.paths(),
        f"+run_id={split.run_id}",
        f"promotion.max_reassigned_share={limit}",
    )
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.startswith(f"error: promotion of run {split.run_id} (kmeans) refused: ")
    assert "reassigned_share" in err and f"max_reassigned_share {limit}" in err
    assert len(err.strip().splitlines()) == 1
    assert aliases(champion) == held


def test_split_migration_reports_the_share_that_moved(champion, split):
    held, _ = aliases(champion)
    # Below the limit the same challenger passes; the report is then checked and undone.
    cfg = compose(champion.store, f"promotion.max_reassigned_share={split.share + 0.01:.4f}")
    done = promote(cfg, split.run_id)
    try:
        report = done.migration
        assert report["reassigned_share"] == pytest.approx(split.share, abs=1e-12)
        found = {(t["from_segment"], t["to_segment"]): t["count"] for t in report["transitions"]}
        assert found == expected_transitions(split.before, split.raw)
        moving = [t for t in report["transitions"] if t["from_segment"] != t["to_segment"]]
        assert {(t["from_segment"], t["from_persona"]) for t in moving} == {
            (split.segment, split.persona)
        }
        assert {(t["to_segment"], t["to_persona"]) for t in moving} == {(K, "Split-off customers")}
        frame = training_customers(champion.cfg)
        after = load_pyfunc(
            f"models:/{champion.name}@{CHAMPION}", str(champion.cfg.paths.tracking_uri)
        ).predict(frame)
        assert np.array_equal(after["segment"], split.raw)
        version = MlflowClient(str(cfg.paths.tracking_uri)).get_model_version(
            champion.name, done.version
        )
        assert version.tags["migration.reassigned_share"] == f"{split.share:.4f}"
    finally:
        rollback(MlflowClient(str(cfg.paths.tracking_uri)), cfg.tracking)
    assert aliases(champion)[0] == held


# Drift: `make drift` against the champion.

PSI_KEYS = {"psi.Annual Income k", "psi.Spending Score 1-100"}


def monitoring_runs(champ: Champion) -> list:
    client = MlflowClient(str(champ.cfg.paths.tracking_uri))
    experiment = client.get_experiment_by_name(f"{champ.cfg.experiment_name}-monitoring")
    if experiment is None:
        return []
    return client.search_runs([experiment.experiment_id], order_by=["attributes.start_time ASC"])


def training_file(champ: Champion, folder: Path) -> tuple[Path, pd.DataFrame]:
    """The synthetic customers the sweep trained on, written as a customer file."""
    dataset = champ.cfg.dataset
    frame = generate(int(dataset.synthetic_rows), int(dataset.synthetic_seed))
    trained = load_dataset(dataset).frame
    assert np.array_equal(frame[INCOME].to_numpy(float), trained[INCOME].to_numpy(float))
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "customers.csv"
    frame.to_csv(path, index=False)
    return path, frame


def run_drift(champ: Champion, monkeypatch, path: Path, out: Path, *extra: str) -> int:
    return run_main(
        drift_main, monkeypatch, *champ.paths(), f"+input={path}", f"+output={out}", *extra
    )


def test_training_file_against_itself_is_no_drift(champion, tmp_path, monkeypatch, capsys):
    path, _ = training_file(champion, tmp_path)
    before = monitoring_runs(champion)
    version, _ = aliases(champion)

    code = run_drift(champion, monkeypatch, path, tmp_path / "out")

    out = capsys.readouterr().out
    assert code == 0, out
    assert out.startswith("no drift over the thresholds: 200 rows scored with models:/")
    report = json.loads((tmp_path / "out" / "drift.json").read_text())
    assert not report["over_threshold"] and report["reasons"] == []
    assert {row["feature"] for row in report["features"]} == {INCOME, "Spending Score (1-100)"}
    assert all(row["psi"] < 0.1 for row in report["features"])
    assert report["segments"]["psi"] < 0.1
    runs = monitoring_runs(champion)
    assert len(runs) == len(before) + 1
    run = runs[-1]
    assert set(run.data.metrics) >= PSI_KEYS | {"segment_psi"}
    assert all(run.data.metrics[key] < 0.1 for key in PSI_KEYS)
    assert run.data.tags["model_version"] == f"{champion.name} v{version}"
    assert run.data.tags["input_sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert run.data.tags["verdict"] == "ok"


def test_doubled_incomes_and_a_lost_segment_are_drift(champion, tmp_path, monkeypatch, capsys):
    _, frame = training_file(champion, tmp_path)
    model = load_pyfunc(
        f"models:/{champion.name}/1", str(champion.cfg.paths.tracking_uri)
    )  # the sweep's best
    scored = model.predict(frame.drop(columns=["CustomerID"]))
    # The segment of the lowest incomes: doubled incomes cannot refill it.
    lost = int(frame.groupby(scored["segment"].to_numpy())[INCOME].mean().idxmin())
    persona = model.unwrap_python_model().personas[lost]
    batch = frame.loc[scored["segment"].to_numpy() != lost].copy()
    batch[INCOME] = batch[INCOME] * 2
    path = tmp_path / "batch.csv"
    batch.to_csv(path, index=False)
    before = monitoring_runs(champion)

    code = run_drift(
        champion, monkeypatch, path, tmp_path / "out", f"+model_uri=models:/{champion.name}/1"
    )

    out = capsys.readouterr().out
    assert code == 3, out
    assert out.startswith("DRIFT: ")
    report = json.loads((tmp_path / "out" / "drift.json").read_text())
    assert report["over_threshold"]
    income = next(row for row in report["features"] if row["feature"] == INCOME)
    assert income["status"] == "drift" and income["psi"] >= 0.25
    named_income = [r for r in report["reasons"] if r.startswith(f"feature '{INCOME}' PSI")]
    named_segment = [r for r in report["reasons"] if r.startswith(f"segment {lost} ({persona})")]
    assert named_income and named_segment
    for reason in named_income + named_segment:
        assert f"  - {reason}" in out
    gone = next(row for row in report["segments"]["segments"] if row["segment"] == lost)
    assert gone["share_now"] < gone["share_training"] / 2
    runs = monitoring_runs(champion)
    assert len(runs) == len(before) + 1
    run = runs[-1]
    assert run.data.metrics["psi.Annual Income k"] == pytest.approx(income["psi"])
    assert run.data.metrics["segment_psi"] == pytest.approx(report["segments"]["psi"])
    assert run.data.tags["model_version"] == f"{champion.name} v1"
    assert run.data.tags["input_sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert run.data.tags["verdict"] == "drift"


def test_bad_drift_input_exits_2_in_one_line_and_logs_nothing(
    champion, tmp_path, monkeypatch, capsys
):
    _, frame = training_file(champion, tmp_path)
    min_rows = int(champion.cfg.monitoring.thresholds.min_rows)
    no_spending = tmp_path / "no_spending.csv"
    frame.drop(columns=["Spending Score (1-100)"]).to_csv(no_spending, index=False)
    few = tmp_path / "few.csv"
    frame.head(min_rows - 1).to_csv(few, index=False)
    gappy = tmp_path / "gappy.csv"  # one row rejected: too few left, and the user is told why
    frame.head(min_rows).assign(Age=[None, *frame["Age"].head(min_rows - 1)]).to_csv(
        gappy, index=False
    )
    absent = tmp_path / "absent.csv"
    cases = {
        gappy: f"got {min_rows - 1} (1 row(s) rejected)",
        no_spending: "required column 'Spending Score (1-100)'",
        few: f"{few}: drift needs at least {min_rows} scored rows "
        f"(monitoring.thresholds.min_rows), got {min_rows - 1}",
        absent: "file not found",
    }
    before = len(monitoring_runs(champion))
    for path, expected in cases.items():
        out = tmp_path / f"out-{path.stem}"
        code = run_drift(champion, monkeypatch, path, out)
        err = capsys.readouterr().err
        assert code == 2, err
        assert err.startswith("error: ") and expected in err, err
        assert len(err.strip().splitlines()) == 1, err
        assert not out.exists()
    assert len(monitoring_runs(champion)) == before
