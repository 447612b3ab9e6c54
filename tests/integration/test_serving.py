"""Scoring the champion: batch (CLI), REST (a live `mlflow models serve`) and pyfunc agree."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.preprocessing import StandardScaler

from segmentation.algorithms.dbscan import NearestCoreDBSCAN
from segmentation.cli import predict_main
from segmentation.data.mall import generate
from segmentation.errors import InputError
from segmentation.features.mall import MallFeatures
from segmentation.promotion.aliases import ModelRef
from segmentation.promotion.promote import champion_uri
from segmentation.serving.predict import score_file
from segmentation.tracking.model import SegmentModel, build_pipeline, load_pyfunc
from tests.conftest import post, real_file, run_main, serve_model


@pytest.fixture(scope="module")
def champion(promoted):
    """The shared swept-and-promoted store (tests/conftest.py)."""
    return promoted.store, promoted.cfg


@pytest.fixture(scope="module")
def customers(tmp_path_factory) -> Path:
    """New raw customers in the file's own format (header variants, text cells)."""
    frame = generate(40, seed=123).rename(
        columns={"Annual Income (k$)": "annual_income", "Spending Score (1-100)": "Spending Score"}
    )
    path = tmp_path_factory.mktemp("customers") / "customers.csv"
    frame.to_csv(path, index=False)
    return path


@pytest.fixture(scope="module")
def server(champion, tmp_path_factory):
    """`mlflow models serve` of the champion on a free local port; always stopped."""
    _, cfg = champion
    with serve_model(champion_uri(cfg.tracking), cfg, tmp_path_factory.mktemp("serve")) as url:
        yield url


def model_rows(path: Path) -> pd.DataFrame:
    """The file's rows under the model's column names, as JSON-ready values."""
    frame = pd.read_csv(path, dtype=str).rename(
        columns={"annual_income": "Annual Income (k$)", "Spending Score": "Spending Score (1-100)"}
    )
    for column in ("Age", "Annual Income (k$)", "Spending Score (1-100)"):
        frame[column] = frame[column].astype(float)
    return frame


def test_batch_rest_and_pyfunc_agree(champion, customers, server, tmp_path, monkeypatch, capsys):
    store, cfg = champion
    out = tmp_path / "segments.csv"
    code = run_main(
        predict_main,
        monkeypatch,
        f"paths.mlruns_dir={store}",
        f"+input={customers}",
        f"+output={out}",
        f"hydra.run.dir={tmp_path / 'hydra'}",
    )
    assert code == 0, capsys.readouterr().err
    batch = pd.read_csv(out)
    raw = pd.read_csv(customers)
    # The input as given (its own headers) plus segment, persona and confidence.
    assert list(batch.columns) == [*raw.columns, "segment", "persona", "confidence"]
    assert len(batch) == len(raw)
    assert not Path(f"{out}.rejected.csv").exists()

    rows = model_rows(customers)
    # The id column is optional: the split request leaves it out, the records one sends it.
    split = json.loads(rows.drop(columns=["CustomerID"]).to_json(orient="split", index=False))
    status, by_split = post(server, {"dataframe_split": split})
    assert status == 200, by_split
    status, by_records = post(server, {"dataframe_records": rows.to_dict(orient="records")})
    assert status == 200, by_records
    rest_split = pd.DataFrame(by_split["predictions"])
    rest_records = pd.DataFrame(by_records["predictions"])

    pyfunc = load_pyfunc(champion_uri(cfg.tracking), str(cfg.paths.tracking_uri)).predict(rows)

    assert batch["segment"].nunique() >= 2
    for other in (rest_split, rest_records, pyfunc):
        assert other["segment"].tolist() == batch["segment"].tolist()
        assert other["persona"].tolist() == batch["persona"].tolist()
        np.testing.assert_allclose(other["confidence"], batch["confidence"], rtol=1e-9)
    assert batch["confidence"].between(0, 1).all() and batch["confidence"].nunique() > 1


def test_rest_refuses_a_missing_column(champion, customers, server):
    rows = model_rows(customers).drop(columns=["Spending Score (1-100)"]).head(2)
    status, reply = post(server, {"dataframe_records": rows.to_dict(orient="records")})
    assert status == 400
    assert "missing inputs ['Spending Score (1-100)']" in reply["message"]
    # A missing value in a feature the model uses is a 400 naming the feature and the row.
    rows = model_rows(customers).head(3)
    rows.loc[1, "Annual Income (k$)"] = None
    status, reply = post(server, {"dataframe_records": rows.to_dict(orient="records")})
    assert status == 400
    assert "row 1: 'Annual Income (k$)' is missing" in reply["message"]


def test_batch_lists_rejected_rows_and_refuses_a_missing_column(champion, tmp_path, capsys):
    store, cfg = champion
    frame = generate(12, seed=5).astype(object)
    frame.loc[2, "Age"] = None
    frame.loc[4, "Annual Income (k$)"] = "n/a"
    frame.loc[6, "Spending Score (1-100)"] = -3
    path = tmp_path / "new.csv"
    frame.to_csv(path, index=False)
    out = tmp_path / "out" / "segments.csv"
    result = score_file(cfg.dataset, ModelRef.of(cfg.tracking, cfg.paths), path, out)
    assert result.scored == 9
    rejected = pd.read_csv(f"{out}.rejected.csv")
    assert rejected["line"].tolist() == [4, 6, 8]  # file lines: the header is line 1
    assert rejected["reason"].tolist() == [
        "'Age' is missing",
        "'Annual Income (k$)' is not a number: 'n/a'",
        "'Spending Score (1-100)' below 0: -3",
    ]
    scored = pd.read_csv(out)
    assert scored["CustomerID"].tolist() == [1, 2, 4, 6, 8, 9, 10, 11, 12]

    missing = tmp_path / "missing.csv"
    frame.drop(columns=["Spending Score (1-100)"]).to_csv(missing, index=False)
    target = tmp_path / "never.csv"
    with pytest.raises(InputError, match=r"required column 'Spending Score \(1-100\)'") as err:
        score_file(cfg.dataset, ModelRef.of(cfg.tracking, cfg.paths), missing, target)
    assert "\n" not in str(err.value)
    assert not target.exists()


def test_batch_never_writes_over_its_input(champion, tmp_path, monkeypatch, capsys):
    """With a champion that would score it, `make predict INPUT=f OUTPUT=f` is refused in a
    line and the customer export stays byte for byte; a folder as OUTPUT too."""
    store, _ = champion
    path = tmp_path / "data" / "customers.csv"
    path.parent.mkdir()
    generate(25, seed=9).to_csv(path, index=False)
    before = path.read_bytes()
    for output, line in (
        (path, f"{path}: is the input file; scoring never writes over its input"),
        (path.parent, f"{path.parent}: is a folder (expected an output file"),
    ):
        code = run_main(
            predict_main,
            monkeypatch,
            f"paths.mlruns_dir={store}",
            f"+input={path}",
            f"+output={output}",
            f"hydra.run.dir={tmp_path / 'hydra'}",
        )
        err = capsys.readouterr().err.splitlines()
        assert code == 2 and len(err) == 1 and err[0].startswith(f"error: {line}")
    assert path.read_bytes() == before
    assert sorted(p.name for p in path.parent.iterdir()) == ["customers.csv"]


def test_dbscan_core_samples_get_their_training_label_back():
    rng = np.random.default_rng(0)
    X = np.vstack([rng.normal(c, 0.3, size=(60, 2)) for c in ((0, 0), (4, 4), (0, 5))])
    X = np.vstack([X, [[10.0, -10.0]]])  # an outlier: noise in training
    model = NearestCoreDBSCAN(eps=0.5, min_samples=5).fit(X)
    core = model.core_sample_indices_
    assert len(set(model.labels_[core])) == 3
    predicted = model.predict(X)
    np.testing.assert_array_equal(predicted[core], model.labels_[core])
    assert predicted[-1] == -1
    # New customers: near a core sample -> its segment; far from all -> noise.
    new = np.array([[4.05, 3.95], [20.0, 20.0]])
    assert model.predict(new)[0] == model.labels_[core][np.argmin(((X[core] - new[0]) ** 2).sum(1))]
    assert model.predict(new)[1] == -1
    np.testing.assert_array_equal(model.predict(X[core]), model.labels_[core])


def test_dbscan_pipeline_scores_raw_rows_with_noise_unassigned():
    raw = generate(200, seed=42)
    features = MallFeatures().fit(raw)
    columns = ["Annual Income (k$)", "Spending Score (1-100)"]
    X_raw = features.transform(raw)[columns].to_numpy()
    scaler = StandardScaler().fit(X_raw)
    clusterer = NearestCoreDBSCAN(eps=0.3, min_samples=5)
    labels = clusterer.fit_predict(scaler.transform(X_raw))
    model = SegmentModel(build_pipeline(features, columns, scaler, clusterer), {0: "Core"})
    out = model.predict(None, raw)
    core = clusterer.core_sample_indices_
    assert len(set(labels[core])) >= 2
    np.testing.assert_array_equal(out["segment"].to_numpy()[core], labels[core])
    assert set(out.loc[out["segment"] == 0, "persona"]) == {"Core"}
    far = raw.head(1).assign(**{"Annual Income (k$)": 1000, "Spending Score (1-100)": 1000})
    assert model.predict(None, far).to_dict("records") == [
        {"segment": -1, "persona": "Unassigned", "confidence": 0.0}
    ]


def test_retail_champion_scores_the_raw_marketing_file(retail_promoted, tmp_path):
    path = real_file("marketing_campaign.csv")
    # Trained on synthetic customers, then scoring the real file as it comes (tab-separated).
    cfg = retail_promoted.cfg
    out = tmp_path / "segments.csv"
    result = score_file(cfg.dataset, ModelRef.of(cfg.tracking, cfg.paths), path, out)
    raw = pd.read_csv(path, sep="\t")
    assert result.scored + len(result.rejected) == len(raw) == 2240
    scored = pd.read_csv(out, sep=",")
    assert list(scored.columns) == [*raw.columns, "segment", "persona", "confidence"]
    assert scored["segment"].nunique() >= 2 and scored["persona"].notna().all()
    reasons = result.rejected["reason"].value_counts().to_dict()
    implausible = int(((raw["Income"] > 200000) | (raw["Year_Birth"] < 1901)).sum())
    # A missing Income is filled with the training median the model keeps, as training did.
    assert reasons == {"removed by the dataset's cleaning rule(s): implausible": implausible}
    median = (
        load_pyfunc(champion_uri(cfg.tracking), str(cfg.paths.tracking_uri))
        .unwrap_python_model()
        .inputs["impute"]
    )
    gaps = raw["Income"].isna()
    assert gaps.sum() == 24 and set(median) == {"Income"}
    filled = scored.loc[scored["ID"].isin(raw.loc[gaps, "ID"])]
    assert len(filled) == 24 and filled["segment"].notna().all()


def test_batch_reads_a_windows_excel_csv_given_its_encoding(
    champion, tmp_path, monkeypatch, capsys
):
    """A cp1252 export scores, with `dataset.encoding=cp1252`, into the very bytes its UTF-8
    copy scores into (names written as UTF-8); without the setting it is refused in a line."""
    store, _ = champion
    frame = generate(30, seed=21).assign(Name="Zoë – Müller €")
    frame.to_csv(tmp_path / "utf8.csv", index=False)
    frame.to_csv(tmp_path / "windows.csv", index=False, encoding="cp1252")
    common = [f"paths.mlruns_dir={store}", f"hydra.run.dir={tmp_path / 'hydra'}"]
    runs = {
        "utf8": [f"+input={tmp_path / 'utf8.csv'}", f"+output={tmp_path / 'a.csv'}"],
        "windows": [
            f"+input={tmp_path / 'windows.csv'}",
            f"+output={tmp_path / 'b.csv'}",
            "dataset.encoding=cp1252",
        ],
        "unsaid": [f"+input={tmp_path / 'windows.csv'}", f"+output={tmp_path / 'c.csv'}"],
    }
    codes = {
        name: run_main(predict_main, monkeypatch, *args, *common) for name, args in runs.items()
    }
    err = capsys.readouterr().err.splitlines()
    assert codes == {"utf8": 0, "windows": 0, "unsaid": 2}
    assert (tmp_path / "a.csv").read_bytes() == (tmp_path / "b.csv").read_bytes()
    assert pd.read_csv(tmp_path / "b.csv")["Name"].eq("Zoë – Müller €").all()
    assert err[-1].startswith(
        f"error: {tmp_path / 'windows.csv'}: line 2, column 'Name': not UTF-8"
    )
    assert not (tmp_path / "c.csv").exists()


def test_rejected_rows_keep_their_file_lines(champion, tmp_path):
    """A value typed over two lines and a blank line before a bad row: the rejected list
    names the line a text editor shows; the blank line is no customer."""
    store, cfg = champion
    frame = generate(6, seed=3).astype(object).assign(Note="x")
    frame.loc[1, "Note"] = "12 Main St\nFlat 2"
    frame.loc[4, "Age"] = "n/a"
    path = tmp_path / "lines.csv"
    text = frame.to_csv(index=False, lineterminator="\n").split("\n")
    text.insert(4, "")  # a blank line after the row that spans lines 3-4
    path.write_text("\n".join(text))
    result = score_file(cfg.dataset, ModelRef.of(cfg.tracking, cfg.paths), path, tmp_path / "o.csv")
    assert result.scored == 5
    assert result.rejected["line"].tolist() == [8]  # header 1, rows 2, 3-4, (blank 5), 6, 7, 8
    assert path.read_text().split("\n")[7].startswith(f"{frame.loc[4, 'CustomerID']},")
