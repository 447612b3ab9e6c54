"""Champion against challenger: aligned segment ids and the migration report."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from segmentation.errors import InputError
from segmentation.promotion.alignment import (
    align_segments,
    migration_heatmap,
    migration_markdown,
    migration_report,
    migration_table,
    relabel,
    transition_frame,
)

PERSONAS = {0: "Young savers", 1: "Big spenders", 2: "Careful families"}


def champion_labels() -> np.ndarray:
    """200 customers: 100 in segment 0, 60 in 1, 40 in 2, shuffled with a fixed seed."""
    labels = np.repeat([0, 1, 2], [100, 60, 40])
    return np.random.default_rng(7).permutation(labels)


def test_permuted_ids_align_back_with_no_migration() -> None:
    champion = champion_labels()
    champion[:10] = -1
    permutation = {0: 2, 1: 0, 2: 1, -1: -1}
    challenger = np.array([permutation[s] for s in champion])

    mapping = align_segments(champion, challenger)
    assert mapping == {-1: -1, 2: 0, 0: 1, 1: 2}
    aligned = relabel(challenger, mapping)
    np.testing.assert_array_equal(aligned, champion)

    report = migration_report(champion, aligned, PERSONAS, PERSONAS)
    assert report["adjusted_rand_index"] == pytest.approx(1.0)
    assert report["reassigned_share"] == 0.0
    assert report["n_customers"] == 200
    assert all(t["from_segment"] == t["to_segment"] for t in report["transitions"])
    assert [t["share_of_from"] for t in report["transitions"]] == [1.0] * 4


def split_challenger() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Champion, a challenger with other ids whose segment 1 split (15 of 60 to id 9), moved."""
    champion = champion_labels()
    ids = {0: 5, 1: 7, 2: 0}
    challenger = np.array([ids[s] for s in champion])
    moved = np.flatnonzero(champion == 1)[-15:]
    challenger[moved] = 9
    return champion, challenger, moved


def test_split_segment_gets_a_new_id_and_its_customers_move() -> None:
    champion, challenger, moved = split_challenger()

    mapping = align_segments(champion, challenger)
    assert mapping == {-1: -1, 5: 0, 7: 1, 0: 2, 9: 3}
    aligned = relabel(challenger, mapping)
    np.testing.assert_array_equal(np.flatnonzero(aligned != champion), np.sort(moved))

    personas_after = {0: "Young savers", 1: "Big spenders", 2: "Careful families", 3: "Splurgers"}
    report = migration_report(champion, aligned, PERSONAS, personas_after)
    assert report["reassigned_share"] == 15 / 200
    moves = [t for t in report["transitions"] if t["from_segment"] != t["to_segment"]]
    assert moves == [
        {
            "from_segment": 1,
            "from_persona": "Big spenders",
            "to_segment": 3,
            "to_persona": "Splurgers",
            "count": 15,
            "share_of_from": 0.25,
        }
    ]
    sizes = {s["segment"]: s for s in report["sizes"]}
    assert (sizes[1]["count_before"], sizes[1]["count_after"]) == (60, 45)
    assert sizes[3]["persona_before"] is None
    assert (sizes[3]["count_before"], sizes[3]["count_after"]) == (0, 15)
    assert sizes[3]["share_after"] == 15 / 200
    assert report["adjusted_rand_index"] < 1.0
    # Plain JSON types only: the report is logged as an artifact.
    assert json.loads(json.dumps(report)) == report


def test_new_segments_numbered_by_size_then_old_id() -> None:
    champion = np.array([0] * 10 + [1] * 10)
    # Champion segment 1 split three ways: 4 stay (id 8), 3 to id 6, 3 to id 2.
    challenger = np.array([4] * 10 + [8] * 4 + [6] * 3 + [2] * 3)
    assert align_segments(champion, challenger) == {-1: -1, 4: 0, 8: 1, 2: 2, 6: 3}
    # Ids reserved for champion segments absent from these customers are skipped.
    assert align_segments(champion, challenger, reserved=[0, 1, 2, 3])[2] == 4


def test_noise_stays_noise() -> None:
    champion = np.array([0, 0, 0, 1, 1, 1, -1, -1, -1, -1])
    # The challenger's noise covers champion segment 1; its segment 3 is champion noise only.
    challenger = np.array([1, 1, 1, -1, -1, -1, 3, 3, 3, -1])

    mapping = align_segments(champion, challenger)
    assert mapping[-1] == -1
    assert mapping[1] == 0
    # No overlap with a champion segment: a new id, not champion segment 1.
    assert mapping[3] == 2
    aligned = relabel(challenger, mapping)
    np.testing.assert_array_equal(aligned == -1, challenger == -1)

    report = migration_report(champion, aligned, {0: "A", 1: "B"}, {0: "A", 2: "C"})
    noise = [t for t in report["transitions"] if t["from_segment"] == -1]
    assert {(t["to_segment"], t["count"]) for t in noise} == {(2, 3), (-1, 1)}
    assert noise[0]["from_persona"] == "noise"
    assert report["reassigned_share"] == pytest.approx(6 / 10)


def test_bad_labels_are_refused() -> None:
    with pytest.raises(InputError, match="same customers"):
        align_segments(np.array([0, 1]), np.array([0, 1, 1]))
    with pytest.raises(InputError, match="-1 for noise"):
        align_segments(np.array([0, -2]), np.array([0, 1]))
    with pytest.raises(InputError, match=r"\[7\]"):
        relabel(np.array([0, 7]), {0: 0})


def test_text_markdown_frame_and_heatmap(tmp_path: Path) -> None:
    champion, challenger, _ = split_challenger()
    aligned = relabel(challenger, align_segments(champion, challenger))
    personas_after = {**PERSONAS, 3: "Cash | $ spenders"}
    report = migration_report(champion, aligned, PERSONAS, personas_after)

    table = migration_table(report)
    assert "reassigned 7.5%" in table
    moves = [line.split("  ") for line in table.splitlines() if "-> " in line and "3 Cash" in line]
    assert [[c.strip() for c in m if c.strip()] for m in moves] == [
        ["1 Big spenders", "->", "3 Cash | $ spenders", "15", "25.0%"]
    ]

    markdown = migration_markdown(report)
    assert "| 1 Big spenders | 3 Cash \\| $ spenders | 15 | 25.0% |" in markdown

    frame = transition_frame(report)
    assert list(frame.columns[:4]) == ["from_segment", "from_persona", "to_segment", "to_persona"]
    assert frame["count"].sum() == 200

    path = migration_heatmap(report, tmp_path / "plots" / "migration.png")
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(data) > 1000
