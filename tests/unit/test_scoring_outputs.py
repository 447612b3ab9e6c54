"""Where commands may write: a scoring output never replaces the customer file it scores or
a folder, nor (on Spark, whose overwrite deletes the output folder first) anything but an
earlier scoring's own output; a report goes to an HTML file. Each refusal is one line, exit
2, before the model loads, the store opens or anything is written."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pandas as pd
import pytest

from segmentation.data.mall import generate
from segmentation.errors import InputError
from segmentation.serving.predict import check_output_file
from segmentation.spark.scoring import check_output_folder


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def customers(tmp_path) -> Path:
    path = tmp_path / "data" / "customers.csv"
    path.parent.mkdir()
    generate(30, seed=1).to_csv(path, index=False)
    return path


def test_predict_onto_its_input_is_one_line_exit_2_input_unchanged(
    customers, tmp_path, monkeypatch, capsys
):
    """`make predict INPUT=f OUTPUT=f` (and through a link): refused before the model is
    looked up (the store is never made) and the file is as it was."""
    from segmentation.cli import predict_main
    from tests.conftest import run_main

    before = _digest(customers)
    os.symlink(customers, tmp_path / "link.csv")
    os.link(customers, tmp_path / "hard.csv")
    store = tmp_path / "mlruns"
    for output in (customers, tmp_path / "link.csv", tmp_path / "hard.csv"):
        code = run_main(
            predict_main,
            monkeypatch,
            f"+input={customers}",
            f"+output={output}",
            f"paths.mlruns_dir={store}",
            f"hydra.run.dir={tmp_path / 'run'}",
        )
        err = capsys.readouterr().err.splitlines()
        assert code == 2
        assert err == [
            f"error: {output}: is the input file; scoring never writes over its input "
            "(give another OUTPUT)"
        ]
    assert _digest(customers) == before
    assert not store.exists()


def test_predict_output_checks(customers, tmp_path):
    check_output_file(customers, tmp_path / "segments.csv")  # a new file is fine
    check_output_file(customers, tmp_path / "new" / "folder" / "segments.parquet")
    for name in ("segments.csv.gz", "segments.xlsx", "segments.zip"):
        with pytest.raises(InputError, match="scores are written as plain CSV or Parquet"):
            check_output_file(customers, tmp_path / name)
    with pytest.raises(InputError, match=r"is a folder \(expected an output file"):
        check_output_file(customers, customers.parent)
    # The rejected list beside the output would replace the input, or is a folder.
    rejected = tmp_path / "segments.csv.rejected.csv"
    with pytest.raises(InputError, match="rejected.csv: is the input file"):
        check_output_file(rejected, tmp_path / "segments.csv")
    rejected.mkdir()
    with pytest.raises(InputError, match="rejected.csv: is a folder"):
        check_output_file(customers, tmp_path / "segments.csv")
    with pytest.raises(InputError) as refused:
        check_output_file(customers, customers / "segments.csv")
    assert str(refused.value) == (
        f"{customers / 'segments.csv'}: cannot be written: {customers} is a file, not a folder"
    )


def _earlier_output(folder: Path, frame: pd.DataFrame) -> Path:
    """A folder as Spark writes one: Parquet parts, their checksums, _SUCCESS."""
    folder.mkdir(parents=True)
    frame.to_parquet(folder / "part-00000-1b2c-c000.snappy.parquet")
    (folder / ".part-00000-1b2c-c000.snappy.parquet.crc").write_bytes(b"")
    (folder / "_SUCCESS").write_text("")
    return folder


def test_spark_output_folder_checks(customers, tmp_path):
    """Spark deletes the output folder before writing it: only a new, empty or earlier
    scoring's folder may be given."""
    data = customers.parent
    check_output_folder(data, tmp_path / "segments")  # new
    (tmp_path / "empty").mkdir()
    check_output_folder(data, tmp_path / "empty")
    scored = generate(5, seed=2).assign(segment=1, persona="p", confidence=0.5)
    earlier = _earlier_output(tmp_path / "earlier", scored)
    rejected = generate(2, seed=3).assign(source_file="f", reason="r")
    _earlier_output(tmp_path / "earlier.rejected", rejected)
    check_output_folder(data, earlier)  # a rerun replaces it

    refusals = [
        (data, data, "is the input; scoring never writes over its input"),
        (customers, data, f"holds the input {customers}, and Spark replaces the output folder"),
        (data, tmp_path, "holds the input"),
        (data, data / "segments", f"is inside the input folder {data}"),
        (data, customers / "segments", f"cannot be written: {customers} is a file"),
        (customers, customers.with_name("scored"), None),  # beside the input file: fine
    ]
    for source, output, message in refusals:
        if message is None:
            check_output_folder(source, output)
            continue
        with pytest.raises(InputError, match=message):
            check_output_folder(source, output)

    elsewhere = tmp_path / "other" / "customers.csv"
    elsewhere.parent.mkdir()
    elsewhere.write_text("x")
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(InputError, match="exists and is a file"):
        check_output_folder(elsewhere, tmp_path / "notes.txt")
    # A folder with someone's file, or another job's Parquet table (the customers themselves).
    (earlier / "notes.txt").write_text("mine")
    with pytest.raises(InputError, match=r"holds 'notes.txt', not an earlier scoring's output"):
        check_output_folder(elsewhere, earlier)
    table = _earlier_output(tmp_path / "table", generate(5, seed=4))
    with pytest.raises(InputError, match="holds Parquet parts without 'segment'"):
        check_output_folder(elsewhere, table)
    # The rejected folder beside the output is checked alike.
    (tmp_path / "fresh.rejected").mkdir()
    (tmp_path / "fresh.rejected" / "keep.csv").write_text("mine")
    with pytest.raises(InputError, match=r"fresh.rejected: folder holds 'keep.csv'"):
        check_output_folder(elsewhere, tmp_path / "fresh")
    rejected_table = _earlier_output(tmp_path / "plain.rejected", generate(3, seed=5))
    with pytest.raises(InputError, match="plain.rejected: folder holds Parquet parts without"):
        check_output_folder(elsewhere, rejected_table.with_name("plain"))


def test_report_output_must_be_an_html_file(customers, tmp_path, monkeypatch, capsys):
    """`make report ARGS=+output=...` onto a customer file or a folder: one line, exit 2,
    before the store is opened; the file is as it was."""
    from segmentation.cli import report_main
    from tests.conftest import run_main

    before = _digest(customers)
    store = tmp_path / "mlruns"
    for output in (customers, customers.parent, tmp_path / "report"):
        code = run_main(
            report_main,
            monkeypatch,
            f"+output={output}",
            f"paths.mlruns_dir={store}",
            f"hydra.run.dir={tmp_path / 'run'}",
        )
        assert code == 2
        assert capsys.readouterr().err.splitlines() == [
            f"error: {output}: a report is written to an HTML file (expected a file name "
            "ending in .html)"
        ]
    assert _digest(customers) == before and not store.exists()
