"""`make audiences`: upload files per segment with hashed identifiers, holdouts and their power."""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path
from types import SimpleNamespace

import mlflow
import numpy as np
import pandas as pd
import pytest
from statsmodels.stats.power import NormalIndPower
from statsmodels.stats.proportion import proportion_effectsize

from segmentation.cli import audiences_main
from segmentation.data.retail_marketing import generate
from segmentation.monitoring.drift import reference_profile
from segmentation.promotion.aliases import ModelRef
from segmentation.promotion.promote import champion_uri
from segmentation.serving.audiences import (
    MANIFEST,
    baselines,
    detectable_effect,
    detectable_rate,
    draw_holdout,
    export_audiences,
    find_identifiers,
    holdout_size,
    identifier_frame,
    normalise_email,
    normalise_phone,
)
from segmentation.tracking.model import load_pyfunc
from tests.conftest import QUICK_RETAIL, make_cfg, run_main


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


@pytest.fixture(scope="module")
def champion(retail_promoted):
    """The session's quick retail sweep (synthetic customers, who answer the last campaign),
    promoted; read only."""
    return retail_promoted.store, retail_promoted.cfg


@pytest.fixture(scope="module")
def customers(tmp_path_factory) -> Path:
    """New customers in the raw file's format with contact columns under header variants."""
    frame = generate(300, seed=7).astype(str)
    frame["E-Mail"] = [f" Customer.{i}@Example.COM " for i in range(len(frame))]
    frame["Phone Number"] = [f"+1 (415) 555-{i:04d}" for i in range(len(frame))]
    frame.loc[3, "E-Mail"] = "not an address"
    frame.loc[4, "Phone Number"] = "555-0100"  # no country code
    frame["First Name"] = "  Ada "
    frame["ZIP code"] = " 94107 "
    frame["Country"] = "us"
    path = tmp_path_factory.mktemp("customers") / "customers.csv"
    frame.to_csv(path, index=False)
    return path


def test_email_and_phone_are_normalised_as_the_platforms_ask():
    assert normalise_email(" John.Doe@Example.COM ") == "john.doe@example.com"
    assert normalise_email("john.doe@") is None and normalise_email(None) is None
    e164 = "+14155552671"
    for written in ("+1 (415) 555-2671", "001 415 555 2671", "+1.415.555.2671"):
        assert normalise_phone(written) == e164
    assert normalise_phone("(415) 555-2671", "1") == e164
    assert normalise_phone("020 7946 0958", "44") == "+442079460958"  # trunk 0 dropped
    assert normalise_phone("(415) 555-2671") is None  # national, no country code known
    assert normalise_phone("+1 555 CALL NOW") is None and normalise_phone("+12") is None

    frame = pd.DataFrame(
        {
            "Email": [" John.Doe@Example.COM ", "nobody", None],
            "Tel": ["+1 (415) 555-2671", "415 555 2671", ""],
            "Surname": [" Lovelace ", "X", None],
            "Country": [" gb", "US", None],
        }
    )
    found = find_identifiers(
        list(frame.columns),
        {"email": ["e-mail"], "phone": ["tel"], "last_name": ["surname"], "country": []},
    )
    assert found == {"email": "Email", "phone": "Tel", "last_name": "Surname", "country": "Country"}
    out, unusable = identifier_frame(frame, found, country_code=None)
    assert out["email_sha256"].tolist() == [sha("john.doe@example.com"), None, None]
    # Google hashes E.164 with its '+', Meta the digits only.
    assert out["phone_sha256"].tolist() == [sha("+14155552671"), None, None]
    assert out["phone_meta_sha256"].tolist() == [sha("14155552671"), None, None]
    assert out["last_name_sha256"].tolist()[:2] == [sha("lovelace"), sha("x")]
    assert out["country"].tolist() == ["GB", "US", None]
    # Given but unusable (empty cells are not counted).
    assert unusable == {"email": 1, "phone": 1, "last_name": 0}
    with_code, unusable = identifier_frame(frame, found, country_code="1")
    assert with_code["phone_sha256"].tolist()[:2] == [sha("+14155552671")] * 2
    assert unusable["phone"] == 0


def test_holdout_is_a_seeded_share_of_each_segment_whatever_the_row_order():
    ids = pd.Series(np.arange(1000, 1537))
    mask = draw_holdout(ids, 0.1, seed=42, segment=3)
    assert mask.sum() == holdout_size(537, 0.1) == 54  # 53.7 rounded
    assert holdout_size(5, 0.1) == 1 and holdout_size(4, 0.1) == 0 and holdout_size(15, 0.1) == 2
    np.testing.assert_array_equal(draw_holdout(ids, 0.1, seed=42, segment=3), mask)
    assert set(ids[draw_holdout(ids, 0.1, seed=43, segment=3)]) != set(ids[mask])
    assert set(ids[draw_holdout(ids, 0.1, seed=42, segment=4)]) != set(ids[mask])
    shuffled = ids.sample(frac=1.0, random_state=0).reset_index(drop=True)
    assert set(shuffled[draw_holdout(shuffled, 0.1, 42, 3)]) == set(ids[mask])


@pytest.mark.parametrize(("treated", "held"), [(900, 100), (450, 50), (5000, 5000), (61, 7)])
def test_minimum_detectable_effect_equals_statsmodels(treated, held):
    for alpha, power in ((0.05, 0.8), (0.01, 0.9)):
        h = detectable_effect(treated, held, alpha, power)
        expected = NormalIndPower().solve_power(
            effect_size=None,
            nobs1=treated,
            ratio=held / treated,
            alpha=alpha,
            power=power,
            alternative="two-sided",
        )
        # statsmodels' root finder stops within about 1e-5 of h; its power at our h is exact.
        assert h == pytest.approx(expected, rel=1e-4)
        achieved = NormalIndPower().power(
            effect_size=h, nobs1=treated, alpha=alpha, ratio=held / treated
        )
        assert achieved == pytest.approx(power, abs=1e-9)
        for baseline in (0.05, 0.15, 0.4):
            rate = detectable_rate(baseline, h)
            assert proportion_effectsize(rate, baseline) == pytest.approx(h, rel=1e-9)
    # Textbook: equal groups of n, h = (z_0.975 + z_0.8) * sqrt(2 / n) = 2.8016 * sqrt(2 / n)
    # (the far tail adds under 1e-6 of power here).
    assert detectable_effect(1000, 1000, 0.05, 0.8) == pytest.approx(
        2.80158 * math.sqrt(2 / 1000), rel=1e-4
    )
    assert math.isnan(detectable_effect(10, 0, 0.05, 0.8))
    assert detectable_rate(0.9, 1.0) is None  # no rate lies that far above 90%


def test_models_keep_their_training_segments_response_rate():
    frame = pd.DataFrame({"x": [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0]})
    segments = np.array([0, 0, 0, 1, 1, 1, -1])
    profile = reference_profile(frame, ["x"], segments, response=[1, 0, 1, 0, 0, np.nan, 1])
    rows = {r["segment"]: r for r in profile["segments"]}
    assert (rows[0]["responders"], rows[0]["response_rate"]) == (2, pytest.approx(2 / 3))
    # A customer without a response counts in the segment, not in its rate.
    assert (rows[1]["count"], rows[1]["responders"], rows[1]["response_rate"]) == (3, 0, 0.0)
    assert rows[-1]["response_rate"] == 1.0
    assert "response_rate" not in reference_profile(frame, ["x"], segments)["segments"][0]


def test_baseline_comes_from_the_model_else_the_input_else_the_default():
    scored = pd.DataFrame({"segment": [0, 0, 1, 1, 2], "resp": ["1", "0", "0", "0", ""]})

    def model(reference):
        return SimpleNamespace(segmenter=SimpleNamespace(reference=reference))

    given = SimpleNamespace(scored=scored, model=model({}))
    assert baselines(given, "Resp", 0.1) == {
        0: (0.5, "input"),
        1: (0.0, "input"),
        2: (0.1, "default"),
    }
    trained = {"segments": [{"segment": 1, "response_rate": 0.25}, {"segment": 2}]}
    given = SimpleNamespace(scored=scored, model=model(trained))
    assert baselines(given, None, 0.1) == {
        0: (0.1, "default"),
        1: (0.25, "model"),
        2: (0.1, "default"),
    }


def test_audiences_files_manifest_and_holdouts(champion, customers, tmp_path, monkeypatch, capsys):
    _, cfg = champion
    out = tmp_path / "audiences"
    overrides = [f"paths.mlruns_dir={cfg.paths.mlruns_dir}", "experiments=retail_rfm"]
    code = run_main(
        audiences_main,
        monkeypatch,
        *overrides,
        f"paths.data_dir={cfg.paths.data_dir}",
        f"+input={customers}",
        f"+output={out}",
        "audiences.holdout.share=0.1",
        "audiences.holdout.seed=7",
    )
    printed = capsys.readouterr()
    assert code == 0, printed.err
    manifest = json.loads((out / MANIFEST).read_text())
    raw = pd.read_csv(customers, dtype=str)
    assert manifest["input"]["sha256"] == hashlib.sha256(customers.read_bytes()).hexdigest()
    assert manifest["input"]["rows"] == len(raw) == 300
    version = mlflow.MlflowClient(cfg.paths.tracking_uri).get_model_version_by_alias(
        cfg.tracking.registered_model_name, "champion"
    )
    assert manifest["model"] == {
        "uri": champion_uri(cfg.tracking),
        "name": cfg.tracking.registered_model_name,
        "version": int(version.version),
        "run_id": version.run_id,
    }
    assert manifest["identifiers"] == {
        "email": "E-Mail",
        "phone": "Phone Number",
        "first_name": "First Name",
        "zip": "ZIP code",
        "country": "Country",
    }
    assert manifest["unusable_values"] == {"email": 1, "phone": 1, "first_name": 0}
    model = load_pyfunc(champion_uri(cfg.tracking), str(cfg.paths.tracking_uri))
    trained = {
        r["segment"]: r["response_rate"] for r in model.unwrap_python_model().reference["segments"]
    }
    written = []
    for seg in manifest["segments"]:
        treated = pd.read_csv(out / seg["file"], dtype=str)
        held = pd.read_csv(out / seg["holdout_file"], dtype=str)
        # Counts in the manifest are the rows written.
        assert (len(treated), len(held)) == (seg["treated"], seg["holdout"])
        assert seg["treated"] + seg["holdout"] == seg["rows"]
        assert abs(seg["holdout"] - 0.1 * seg["rows"]) <= 0.5
        assert set(treated["ID"]).isdisjoint(held["ID"])
        assert seg["file"].startswith(f"segment-{seg['segment']}-")
        # The baseline is the champion's training response rate of the segment.
        assert seg["baseline_source"] == "model"
        assert seg["baseline_response"] == pytest.approx(trained[seg["segment"]])
        h = NormalIndPower().solve_power(
            nobs1=seg["treated"], ratio=seg["holdout"] / seg["treated"], alpha=0.05, power=0.8
        )
        assert seg["detectable_effect_h"] == pytest.approx(h, rel=1e-4)
        rate = detectable_rate(seg["baseline_response"], h)
        if rate is None:  # a holdout too small for any rate to differ enough
            assert seg["detectable_response"] is None and seg["min_detectable_lift"] is None
            assert seg["holdout"] < 10
        else:
            assert seg["detectable_response"] == pytest.approx(rate, rel=1e-4)
            lift = rate - seg["baseline_response"]
            assert seg["min_detectable_lift"] == pytest.approx(lift, rel=1e-4)
        # Every segment of 300 customers is below the platforms' 100-user minimum or not.
        assert ("meta_custom_audience" in seg["below_minimum"]) == (seg["treated"] < 100)
        written += [treated.assign(group="treated"), held.assign(group="holdout")]
    rows = pd.concat(written)
    assert manifest["input"]["scored"] == len(rows) == 300 - manifest["input"]["rejected"]
    assert list(rows.columns[:7]) == [
        "ID",
        "email_sha256",
        "phone_sha256",
        "phone_meta_sha256",
        "first_name_sha256",
        "zip",
        "country",
    ]
    first = rows.set_index("ID").loc[raw["ID"][0]]
    assert first["email_sha256"] == sha("customer.0@example.com")
    assert first["phone_sha256"] == sha("+14155550000")
    assert first["phone_meta_sha256"] == sha("14155550000")
    assert first["first_name_sha256"] == sha("ada")
    assert (first["zip"], first["country"]) == ("94107", "US")
    assert "Customer.0@Example.COM" not in "".join(p.read_text() for p in out.iterdir())
    small = [s for s in manifest["segments"] if s["treated"] < 100]
    assert small, "300 customers in 2-4 segments: expected one below 100"
    for seg in small:
        assert f"segment {seg['segment']} ({seg['persona']}): {seg['treated']}" in printed.err
    assert "phone: 1 value(s)" in printed.err and "audiences.phone_country_code" in printed.err

    # The same input and seed give the same files; the earlier export is replaced.
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.name.endswith(".csv")}
    again_cfg = make_cfg(
        Path(cfg.paths.mlruns_dir),
        *QUICK_RETAIL,
        "audiences.holdout.share=0.1",
        "audiences.holdout.seed=7",
    )
    again = export_audiences(
        again_cfg.dataset,
        again_cfg.audiences,
        str(again_cfg.experiment_name),
        ModelRef.of(again_cfg.tracking, again_cfg.paths),
        customers,
        out,
    )
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.name.endswith(".csv")} == before
    assert [s.holdout for s in again.segments] == [s["holdout"] for s in manifest["segments"]]


def test_a_customer_listed_twice_is_exported_once(champion, tmp_path):
    """A customer id on several rows (an export joined twice, a CRM's duplicate) is exported
    from its first row only; the later rows are rejected naming that line. Before, such a
    customer could be both uploaded and held out, or in two segments."""
    _, cfg = champion
    frame = generate(120, seed=9)
    twice = frame.iloc[[5, 40]].copy()
    twice.iloc[1, twice.columns.get_loc("MntWines")] = 1400  # the same id, other figures
    twice.iloc[1, twice.columns.get_loc("ID")] = frame["ID"].iloc[6]
    path = tmp_path / "twice.csv"
    pd.concat([frame, twice]).to_csv(path, index=False)
    cfg = make_cfg(Path(cfg.paths.mlruns_dir), *QUICK_RETAIL, "audiences.holdout.share=0.5")
    export = export_audiences(
        cfg.dataset, cfg.audiences, str(cfg.experiment_name),
        ModelRef.of(cfg.tracking, cfg.paths), path, tmp_path / "out",
    )  # fmt: skip
    files = [f for s in export.manifest["segments"] for f in (s["file"], s["holdout_file"])]
    ids = pd.concat([pd.read_csv(tmp_path / "out" / f)["ID"] for f in files])
    assert sorted(ids) == sorted(frame["ID"])  # each customer once, in one file
    assert export.manifest["input"]["rejected"] == 2
    rejected = pd.read_csv(tmp_path / "out" / "rejected.csv")
    assert rejected.to_dict("list") == {
        "line": [122, 123],
        "reason": [
            f"customer ID {frame['ID'][5]} again (first on line 7): each customer is listed once",
            f"customer ID {frame['ID'][6]} again (first on line 8): each customer is listed once",
        ],
        "ID": [frame["ID"][5], frame["ID"][6]],
    }


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("audiences.holdout.share=1.5", "HOLDOUT=1.5 (audiences.holdout.share): expected"),
        ("audiences.power.power=0.01", "expected 0 < alpha < power < 1"),
        ("audiences.phone_country_code=+0", "expected a country calling code"),
    ],
)
def test_bad_settings_are_refused_before_anything_is_written(
    champion, customers, tmp_path, monkeypatch, capsys, override, message
):
    _, cfg = champion
    out = tmp_path / "audiences"
    code = run_main(
        audiences_main,
        monkeypatch,
        f"paths.mlruns_dir={cfg.paths.mlruns_dir}",
        "experiments=retail_rfm",
        f"+input={customers}",
        f"+output={out}",
        override,
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and message in err[0], err
    assert not out.exists()


def test_bad_input_is_refused_before_anything_is_written(
    champion, customers, tmp_path, monkeypatch, capsys
):
    _, cfg = champion
    base = [f"paths.mlruns_dir={cfg.paths.mlruns_dir}", "experiments=retail_rfm"]
    raw = pd.read_csv(customers, dtype=str)
    cases = {
        "no_recency.csv": (raw.drop(columns=["Recency"]), "required column 'Recency'"),
        "no_ids.csv": (
            raw.drop(columns=["ID", "E-Mail", "Phone Number", "First Name", "ZIP code", "Country"]),
            "required column 'ID'",
        ),
    }
    for name, (frame, message) in cases.items():
        path = tmp_path / name
        frame.to_csv(path, index=False)
        out = tmp_path / f"out-{name}"
        code = run_main(audiences_main, monkeypatch, *base, f"+input={path}", f"+output={out}")
        err = capsys.readouterr().err.strip().splitlines()
        assert code == 2 and len(err) == 1 and message in err[0], err
        assert not out.exists()
    # A folder holding other files is refused and left as it was.
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "notes.txt").write_text("mine")
    code = run_main(audiences_main, monkeypatch, *base, f"+input={customers}", f"+output={busy}")
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "not an earlier audiences export" in err[0]
    assert [p.name for p in busy.iterdir()] == ["notes.txt"]
    # An earlier export with a file of someone else's added is refused too, and kept whole.
    earlier = tmp_path / "earlier"
    assert (
        run_main(audiences_main, monkeypatch, *base, f"+input={customers}", f"+output={earlier}")
        == 0
    )
    (earlier / "notes.txt").write_text("mine")
    kept = {p.name: p.read_bytes() for p in earlier.iterdir()}
    capsys.readouterr()
    code = run_main(audiences_main, monkeypatch, *base, f"+input={customers}", f"+output={earlier}")
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "holds 'notes.txt', not written by" in err[0]
    assert {p.name: p.read_bytes() for p in earlier.iterdir()} == kept
