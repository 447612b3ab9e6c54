"""Streaming `make predict`: a file scored chunk by chunk gives what scoring it whole gives (same
rows, values and types; CSV or Parquet in and out), rejected rows keep their file lines, and a
file refused half-way leaves no output behind."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from segmentation.data.reading import as_numbers, open_table, read_table, text_column
from segmentation.errors import InputError
from segmentation.promotion.aliases import ModelRef
from segmentation.serving.predict import LINE, REASON, score_file, score_rows
from tests.unit.test_datasets import retail_text

ROWS = 3000
CHUNK = 400  # rows per chunk asked for; a CSV chunk is at least 64 KB (about 650 retail rows)
# Planted in later chunks (0-based rows; file line = row + 2).
BAD = {
    2100: ("MntWines", "n/a", "'MntWines' is not a number: 'n/a'"),
    2501: ("Recency", "-4", "'Recency' below 0: -4"),
    2950: ("Income", "666666", "removed by the dataset's cleaning rule(s): implausible"),
}


@pytest.fixture(scope="module")
def champion(retail_promoted):
    """The session's quick retail sweep on synthetic customers, promoted; read only."""
    return retail_promoted.cfg


@pytest.fixture(scope="module")
def customers(tmp_path_factory) -> dict[str, object]:
    """New retail customers as text, with bad rows planted, missing incomes (filled with the
    model's training median), and a free-text column whose commas and quotes need quoting."""
    frame = retail_text(ROWS, seed=11)
    frame.loc[0, "Dt_Customer"] = "29-06-2014"  # a day above 12: day-first in every chunk
    for row, (column, value, _) in BAD.items():
        frame.loc[row, column] = value
    frame.loc[[10, 1500, 2999], "Income"] = ""
    frame["Note"] = ""
    frame.loc[[3, 1700], "Note"] = ['said "call me", twice', "a, b"]
    folder = tmp_path_factory.mktemp("customers")
    csv = folder / "customers.csv"
    frame.to_csv(csv, sep="\t", index=False)
    parquet = folder / "customers.parquet"
    frame.to_parquet(parquet)
    return {"frame": frame, "csv": csv, "parquet": parquet}


def test_the_files_are_read_in_several_chunks(customers):
    for kind in ("csv", "parquet"):
        chunks = list(open_table(customers[kind], CHUNK).chunks())
        assert len(chunks) >= 4, kind
        whole = pd.concat(chunks)
        assert whole.index.tolist() == list(range(ROWS))
        pd.testing.assert_frame_equal(whole, read_table(customers[kind])[0])
    csv = pd.concat(open_table(customers["csv"], CHUNK).chunks())
    parquet = pd.concat(open_table(customers["parquet"], CHUNK).chunks())
    pd.testing.assert_frame_equal(csv, parquet)


def _read(path) -> pd.DataFrame:
    return pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path)


@pytest.mark.parametrize("source", ["csv", "parquet"])
@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_streamed_scoring_equals_whole_file_scoring(champion, customers, source, suffix, tmp_path):
    whole = score_rows(
        champion.dataset, ModelRef.of(champion.tracking, champion.paths), customers[source]
    )
    # The whole file scored in memory, written as the output format writes one frame.
    expected_path = tmp_path / f"expected{suffix}"
    if suffix == ".csv":
        whole.scored.to_csv(expected_path, index=False)
    else:
        whole.scored.to_parquet(expected_path, index=False)
    out = tmp_path / f"segments{suffix}"
    result = score_file(
        champion.dataset,
        ModelRef.of(champion.tracking, champion.paths),
        customers[source],
        out,
        chunk_rows=CHUNK,
    )

    streamed, expected = _read(out), _read(expected_path)
    pd.testing.assert_frame_equal(streamed, expected)
    assert streamed.dtypes["segment"] == np.int64 and streamed.dtypes["confidence"] == np.float64
    assert len(streamed) == ROWS - len(BAD) == result.scored
    assert streamed["segment"].nunique() >= 2 and streamed["confidence"].between(0, 1).all()
    # The scored rows are the input's rows, in order, with the free text as written.
    assert streamed["ID"].astype(str).tolist() == [
        v for i, v in enumerate(customers["frame"]["ID"]) if i not in BAD
    ]
    assert streamed.loc[streamed["ID"].astype(str) == "4", "Note"].item() == 'said "call me", twice'
    assert result.segments == streamed["segment"].value_counts().sort_index().to_dict()

    # Rejected rows carry their true file line (header = line 1), whatever chunk held them.
    rejected = pd.read_csv(f"{out}.rejected.csv")
    assert rejected[LINE].tolist() == [row + 2 for row in BAD]
    assert rejected[REASON].tolist() == [reason for _, _, reason in BAD.values()]
    assert rejected["ID"].astype(str).tolist() == [str(row + 1) for row in BAD]
    assert result.rejected[LINE].tolist() == [row + 2 for row in BAD]
    pd.testing.assert_frame_equal(
        rejected, pd.read_csv(_written(whole.rejected, tmp_path / "rejected.csv"))
    )


def _written(frame: pd.DataFrame, path):
    frame.to_csv(path, index=False)
    return path


def test_chunked_retail_features_use_the_models_training_figures(champion, customers):
    """Age, Customer_Days and a missing Income come from figures the model learnt at training
    (reference date, median income), not from the chunk: a chunk of one customer scores as in
    the whole file."""
    whole = score_rows(
        champion.dataset, ModelRef.of(champion.tracking, champion.paths), customers["csv"]
    )
    engineer = whole.model.segmenter.pipeline.named_steps["engineer"]
    rows = whole.model_rows
    together = engineer.transform(rows)
    one_by_one = pd.concat([engineer.transform(rows.iloc[[i]]) for i in range(0, len(rows), 97)])
    pd.testing.assert_frame_equal(one_by_one, together.iloc[::97])
    filled = whole.scored["ID"].astype(str).isin(["11", "1501", "3000"])
    assert filled.sum() == 3
    assert (rows.loc[filled.to_numpy(), "Income"] == engineer.income_median_).all()


def test_a_file_refused_half_way_leaves_the_earlier_output(champion, customers, tmp_path):
    frame = customers["frame"].copy()
    frame.loc[2700, "Dt_Customer"] = "someday"
    path = tmp_path / "bad.csv"
    frame.to_csv(path, sep="\t", index=False)
    out = tmp_path / "segments.csv"
    out.write_text("earlier results\n")
    with pytest.raises(InputError, match=r"'Dt_Customer' has values that are not dates.*2702"):
        score_file(
            champion.dataset,
            ModelRef.of(champion.tracking, champion.paths),
            path,
            out,
            chunk_rows=CHUNK,
        )
    assert out.read_text() == "earlier results\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.csv", "segments.csv"]


def test_short_rows_are_padded_and_long_rows_refused(tmp_path):
    path = tmp_path / "ragged.csv"
    path.write_text("a,b,c\n1,2,3\n4,5\n6,7,8\n")
    frame, _ = read_table(path)
    assert frame["c"].isna().tolist() == [False, True, False]
    assert frame["a"].tolist() == ["1", "4", "6"]
    path.write_text("a,b,c\n1,2,3\n4,5,6,7\n")
    with pytest.raises(InputError, match=r"cannot parse .*expected 3 fields in line 3, saw 4"):
        read_table(path)


def test_text_and_numbers_per_column_match_the_cell_by_cell_rules():
    values = pd.Series([" 12 ", "1e3", "n/a", None, "NaN", "-0.5", "", "None", "+7"], dtype=object)
    text = text_column(values)
    expected = [None if v is None else str(v).strip() for v in values]
    expected = [None if v in ("", "nan", "NaN", "NA", "None") else v for v in expected]
    assert [None if pd.isna(v) else v for v in text] == expected
    numbers = as_numbers(text)
    reference = pd.to_numeric(text.astype(object), errors="coerce").astype(float)
    np.testing.assert_array_equal(numbers.to_numpy(), reference.to_numpy())
    floats = pd.Series([78616.0, 0.1, 1e16, np.nan, 3.0])
    assert text_column(floats).tolist()[:3] == [str(78616.0), str(0.1), str(1e16)]
