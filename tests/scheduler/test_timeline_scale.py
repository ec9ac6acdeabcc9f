from __future__ import annotations

from datetime import timedelta

import pytest

from scheduler.timeline_scale import (
    DEFAULT_ZOOM,
    ZOOMS,
    Band,
    covers_lower,
    merge_adjacent,
    parse_zoom,
    zoom_for_window,
)


def test_parse_zoom_knows_the_four_spans_and_defaults_to_a_day():
    assert [parse_zoom(zoom.key).span for zoom in ZOOMS] == [
        timedelta(hours=1),
        timedelta(hours=6),
        timedelta(hours=24),
        timedelta(days=7),
    ]
    assert parse_zoom(None) is parse_zoom("") is DEFAULT_ZOOM
    assert DEFAULT_ZOOM.span == timedelta(hours=24)


def test_parse_zoom_names_the_choices_for_an_unknown_span():
    with pytest.raises(ValueError, match=r"'3d'; choose one of 1h, 6h, 24h, 7d\."):
        parse_zoom("3d")


def test_zoom_labels_read_as_words():
    assert [zoom.label for zoom in ZOOMS] == ["1 hour", "6 hours", "24 hours", "7 days"]


def test_zoom_for_window_picks_the_smallest_that_covers_it():
    assert zoom_for_window(timedelta(hours=2)).key == "1h"
    assert zoom_for_window(timedelta(hours=3)).key == "6h"
    assert zoom_for_window(timedelta(hours=48)).key == "24h"
    assert zoom_for_window(timedelta(days=30)).key == "7d"


def test_merge_adjacent_joins_close_marks_of_one_key_only():
    marks = [
        (0.0, 3.0, "ok", "a"),
        (4.0, 7.0, "ok", "b"),  # within the gap of 2: joins
        (7.5, 10.5, "failed", "c"),  # another key: a band of its own
        (11.0, 14.0, "ok", "d"),
        (20.0, 23.0, "ok", "e"),  # too far: a new band
    ]
    bands = merge_adjacent(marks, gap=2.0)
    assert [(band.key, band.left, band.right, band.items) for band in bands] == [
        ("ok", 0.0, 7.0, ["a", "b"]),
        ("failed", 7.5, 10.5, ["c"]),
        ("ok", 11.0, 14.0, ["d"]),
        ("ok", 20.0, 23.0, ["e"]),
    ]


def test_covers_lower_marks_bands_drawn_over_a_lower_ranked_other_band():
    rank = {"succeeded": 0, "failed": 1}.__getitem__
    bands = [
        Band("succeeded", 0.0, 10.0, ["a"]),
        Band("failed", 9.0, 12.0, ["b"]),  # overlaps the successes: on top, half height
        Band("succeeded", 11.0, 20.0, ["c"]),  # under the failure: full height
        Band("failed", 30.0, 33.0, ["d"]),  # alone: full height
    ]
    assert covers_lower(bands, rank) == [False, True, False, False]
