"""The triage job's reading of a batch's JSON list columns (SQLite gives their text)."""

from __future__ import annotations

from types import SimpleNamespace

from inboxd.pipeline.triage import _lists


def _row(to: object, cc: object, flags: object, labels: object) -> SimpleNamespace:
    return SimpleNamespace(to_addrs=to, cc_addrs=cc, flags=flags, labels=labels)


def test_a_batch_of_json_texts_is_read_as_tuples_of_strings() -> None:
    rows = [
        _row('["a@example.com", "b@example.com"]', "[]", '["\\\\Seen"]', "[]"),
        _row('["c@example.com", 7, null]', None, "[]", '["work"]'),
    ]
    assert _lists(rows, as_text=True) == [
        ("a@example.com", "b@example.com"),
        (),
        ("\\Seen",),
        (),
        ("c@example.com",),
        (),
        (),
        ("work",),
    ]


def test_a_value_that_is_no_json_leaves_only_itself_empty() -> None:
    rows = [_row('["a@example.com"]', "[broken", "[]", '{"not": "a list"}')]
    assert _lists(rows, as_text=True) == [("a@example.com",), (), (), ()]


def test_lists_from_a_driver_that_parsed_them_are_taken_as_they_are() -> None:
    rows = [_row(["a@example.com"], [], ["\\Seen", None], ["x"])]
    expected = [("a@example.com",), (), ("\\Seen",), ("x",)]
    assert _lists(rows, as_text=False) == expected
    assert _lists(rows, as_text=True) == expected
