"""The search query language: what parses into what, and the errors that name the bad part."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import create_engine

from inboxd.errors import InvalidQuery
from inboxd.store import fulltext
from inboxd.store.search import (
    CATEGORY_VALUES,
    And,
    Categorized,
    Field,
    Not,
    Or,
    Priority,
    Since,
    State,
    Words,
    message_filter,
    parse_query,
)


def root(text: str) -> object:
    return parse_query(text).root


def test_empty_queries_match_everything() -> None:
    assert parse_query("").empty
    assert parse_query("   ").empty
    assert not parse_query("x").empty


def test_a_query_lists_the_words_it_looks_for() -> None:
    query = parse_query('Budget "next week" -lunch is:unread (from:alice OR proj*)')
    assert query.words == query.terms == ["budget", "next", "week", "alice", "proj"]


def test_free_words_phrases_and_prefixes() -> None:
    assert root("Budget") == Words("Budget", ("budget",))
    assert root('"Bring the Spreadsheet"') == Words(
        "Bring the Spreadsheet", ("bring", "the", "spreadsheet")
    )
    assert root("alice@example.org") == Words("alice@example.org", ("alice", "example", "org"))
    assert root("proj*") == Words("proj*", ("proj",), prefix=True)
    assert root("Crème") == Words("Crème", ("creme",))
    assert root("10:30") == Words("10:30", ("10", "30"))  # no operator: not letters
    url = "https://example.org/x"
    assert root(url) == Words(url, ("https", "example", "org", "x"))


def test_implicit_and_or_not_and_groups() -> None:
    a, b, c = (Words(w, (w,)) for w in "abc")
    assert root("a b") == And((a, b))
    assert root("a AND b") == And((a, b))
    assert root("a OR b c") == Or((a, And((b, c))))
    assert root("-a") == Not(a)
    assert root("NOT a") == Not(a)
    assert root("a -(b OR c)") == And((a, Not(Or((b, c)))))
    assert root("(a)") == a
    assert root("foo-bar") == Words("foo-bar", ("foo", "bar"))  # a dash inside a word
    assert root("a or b") == And((a, Words("or", ("or",)), b))  # OR must be upper case


def test_operators() -> None:
    assert root("from:Alice") == Words("Alice", ("alice",), field="sender")
    assert root('FROM:"Alice Smith"') == Words("Alice Smith", ("alice", "smith"), field="sender")
    assert root("from:ali*") == Words("ali*", ("ali",), prefix=True, field="sender")
    assert root("to:bob@example.com") == Words(
        "bob@example.com", ("bob", "example", "com"), field="recipients"
    )
    assert root("-list:dev.example.org") == Not(Field("list", "dev.example.org"))
    assert root("folder:INBOX account:work subject:x") == And(
        (Field("folder", "INBOX"), Field("account", "work"), Words("x", ("x",), field="subject"))
    )
    assert root("is:Unread") == State("is", "unread")
    assert root("has:attachments") == State("has", "attachment")
    assert root("after:2024-02-29") == Since("after", True, day=date(2024, 2, 29))
    assert root("before:2024/1/5") == Since("before", False, day=date(2024, 1, 5))
    assert root("newer_than:7d") == Since("newer_than", True, age=(7, "d"))
    assert root("older_than:1Y") == Since("older_than", False, age=(1, "y"))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("after:2024-13-45", "after: '2024-13-45' is not a date (YYYY-MM-DD)"),
        ("before:yesterday", "before: 'yesterday' is not a date (YYYY-MM-DD)"),
        ("after:2023-02-29", "after: '2023-02-29' is not a date"),
        ("foo:bar", "unknown operator 'foo:'"),
        ("newer_than:7x", "newer_than: '7x' is not an age such as 7d, 2w, 3m or 1y"),
        ("is:lost", "is: 'lost' is not one of unread, read, flagged"),
        ("has:cake", "has: 'cake' is not one of attachment"),
        ("from:", "from: needs a value"),
        ('from:""', "from: needs a value"),
        ('"open phrase', "unclosed quote: '\"open phrase'"),
        ("(a OR b", "unclosed parenthesis"),
        ("a)", "unmatched ')'"),
        ("()", "empty parentheses"),
        ("OR a", "OR needs a term on each side"),
        ("a OR", "OR needs a term on each side"),
        ("a OR OR b", "OR needs a term on each side"),
        ("AND a", "AND needs a term on each side"),
        ("a AND", "AND needs a term on each side"),
        ("a AND OR b", "AND needs a term on each side"),
        (") a", "unmatched ')'"),
        ("(" * 30 + "a" + ")" * 30, "parentheses nested more than 20 deep"),
        ("w " * 101, "at most 100 terms (this one has 101)"),
        ("a - b", "'-' must be followed by a term"),
        ("a NOT", "'NOT' must be followed by a term"),
        ("!!!", "'!!!' has no letters or digits"),
        ('"..."', "has no letters or digits"),
        ("from:@", "from: '@' has no letters or digits"),
        ("category:bulk", "category: 'bulk' is not one of personal, action_required, forum"),
        ("category:", "category: needs a value"),
        ("priority:>", "priority: '>' is not a priority such as >50"),
        ("priority:101", "a number from 0 to 100"),
        ("priority:>-1", "is not a priority"),
        ("priority:=>5", "is not a priority"),
        ("priority:high", "is not a priority"),
        ("is:sorted", "is: 'sorted' is not one of unread, read, flagged, unflagged, triaged"),
    ],
)
def test_malformed_queries_name_the_bad_part(text: str, message: str) -> None:
    with pytest.raises(InvalidQuery) as caught:
        parse_query(text)
    assert message in caught.value.message


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.sampled_from(list('ab:"()- ORNDTfrom*@é1_')), max_size=40))
def test_any_text_parses_or_is_refused_clearly(text: str) -> None:
    try:
        query = parse_query(text)
    except InvalidQuery:
        return
    for dialect in ("sqlite", "postgresql"):
        assert _sql(text, dialect)  # compiles
    assert query.empty == (query.root is None)


def test_words_are_folded_alike_for_both_databases() -> None:
    assert fulltext.words("Ünïcödé GRÜSSE straße ﬁle x_y") == [
        "unicode",
        "grusse",
        "strasse",
        "file",
        "x",
        "y",
    ]
    assert fulltext.words("a" * 65 + " ok") == ["ok"]  # no word is that long


def test_entries_cap_words_and_keep_fields_apart() -> None:
    e = fulltext.entry(7, "Hello world", ["Alice", "alice@x.org"], ["b@y"], "world " * 20_000)
    assert e.sender == ["alice", "alice", "x", "org"] and e.recipients == ["b", "y"]
    assert len(e.subject + e.sender + e.recipients + e.body) == fulltext.MAX_WORDS
    literal = fulltext.tsvector_literal(fulltext.entry(1, "a b", ["c"], ["d"], "a"))
    # subject at 2-3, a free position, sender at 5, another, recipients at 7, body at 9; the
    # words of the first three also tagged with their field; then the one pair ("a b", in
    # the subject), by its bucket: stored in every row, it must not change without a rebuild
    assert literal == "'a':2,9 ':s:a':2 'b':3 ':s:b':3 'c':5 ':f:c':5 'd':7 ':t:d':7 '_18aa'"


def test_index_queries_per_database() -> None:
    match = fulltext.Without(
        fulltext.AllOf((fulltext.Phrase(("a", "b")), fulltext.Phrase(("c",), prefix=True))),
        fulltext.AnyOf((fulltext.Phrase(("d",)), fulltext.Phrase(("e",)))),
    )
    assert fulltext.fts5_query(match) == '(("a b" AND "c" *) NOT ("d" OR "e"))'
    assert (
        fulltext.tsquery_text(match) == "((('_18aa' & ('a' <-> 'b')) & ('c':*)) & !(('d') | ('e')))"
    )
    sender = fulltext.Phrase(("ali",), prefix=True, field="sender")
    assert fulltext.fts5_query(sender) == 'sender : "ali" *'
    assert fulltext.tsquery_text(sender) == "(':f:ali':*)"


_SQLITE = create_engine("sqlite://").dialect
_POSTGRESQL = create_engine("postgresql+psycopg://localhost/x").dialect


def _sql(text: str, dialect: str) -> str:
    condition = message_filter(
        parse_query(text), dialect=dialect, now=datetime(2026, 3, 31, tzinfo=UTC)
    )
    if dialect == "sqlite":
        return str(condition.compile(dialect=_SQLITE, compile_kwargs={"literal_binds": True}))
    return str(condition.compile(dialect=_POSTGRESQL))


def test_the_words_of_a_group_are_one_index_lookup() -> None:
    sql = _sql("budget meeting -lunch from:alice", "sqlite")
    assert sql.count("MATCH") == 1
    assert '("budget" AND "meeting" AND sender : "alice") NOT "lunch"' in sql
    assert _sql("a OR b OR is:read", "postgresql").count("@@") == 1
    # Apart, each look-up has a parameter of its own.
    sql = _sql("(a OR is:read) (b OR is:flagged)", "postgresql")
    assert sql.count("@@") == 2 and "param_1" in sql and "param_2" in sql


def test_months_back_are_calendar_months() -> None:
    # 31 March minus one month is the last day of February.
    assert "'2026-02-28 00:00:00" in _sql("newer_than:1m", "sqlite")
    assert "'2025-03-31 00:00:00" in _sql("older_than:1y", "sqlite")


def test_category_and_priority_terms_parse() -> None:
    assert root("category:Personal") == Categorized("personal")
    assert {str(c) for c in CATEGORY_VALUES} >= {"action_required", "spam", "receipt"}
    assert root("priority:>50") == Priority(">", 50)
    assert root("priority:>=0") == Priority(">=", 0)
    assert root("priority:<100") == Priority("<", 100)
    assert root("priority:<=7") == Priority("<=", 7)
    assert root("priority:=42") == root("priority:42") == Priority("=", 42)
    assert root("-category:spam OR priority:>80") == Or(
        (Not(Categorized("spam")), Priority(">", 80))
    )
    assert root("is:untriaged") == State("is", "untriaged")
    assert root("budget category:forum") == And(
        (Words("budget", ("budget",)), Categorized("forum"))
    )


def test_untriaged_mail_is_outside_a_term_and_inside_its_negation() -> None:
    # NOT (col IS NOT NULL AND col = x): true for a NULL column, where NOT (col = x) is NULL.
    for dialect in ("sqlite", "postgresql"):
        sql = _sql("-category:spam -priority:>50", dialect)
        assert "category IS NOT NULL" in sql and "priority IS NOT NULL" in sql, sql
    assert "messages.priority > 50" in _sql("priority:>50", "sqlite")
    assert "messages.category IS NULL" in _sql("is:untriaged", "sqlite")
