"""Bound values reach ClickHouse exactly as written, on both backends.

ClickHouse reads a ``{name:String}`` value in its escaped text form: a backslash starts an
escape sequence and a raw tab or line break ends the value. The server backend runs against
``clickhouse_http``, which hands the driver's ``param_`` text to chDB unchanged, and chDB reads
it with ClickHouse's own code: a value the driver left unescaped is refused there as a server
would refuse it (``Cannot parse escape sequence``, ``BAD_QUERY_PARAMETER``).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator

import pytest

from storage import BadValue, QueryError, Store
from storage.server import ServerStore
from tests.storage.clickhouse_http import serve

TEXTS = [
    "x\\",
    "DOM\\tuser",
    "\\\\",
    "\\N",
    "\\x41 \\0 \\' \\u00e9",
    "a\tb\nc\rd\0e",
    "quote ' double \" backtick ` semicolon ;",
    "".join(chr(code) for code in [*range(32), 127]),
    "unicode ✓ \u202e",
    "",
]


@pytest.fixture(scope="module")
def server_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    """A server store over a ClickHouse HTTP interface of its own."""
    with serve(tmp_path_factory.mktemp("clickhouse-http")) as port:
        store = ServerStore(f"http://default:@127.0.0.1:{port}", "bound")
        try:
            yield store
        finally:
            store.close()


@pytest.fixture(params=["embedded", "server"])
def each_store(request: pytest.FixtureRequest) -> Store:
    """The embedded store, then the server store."""
    return request.getfixturevalue("store" if request.param == "embedded" else "server_store")


@pytest.mark.parametrize("text", TEXTS)
def test_a_string_comes_back_exactly_as_written(each_store, text):
    sql = "SELECT {s:String} AS s, length({s:String}) AS n"

    assert each_store.query_rows(sql, {"s": text}) == [(text, len(text.encode()))]
    assert each_store.query_df(sql, {"s": text})["s"].tolist() == [text]


def test_strings_inside_a_json_list_come_back_exactly_as_written(each_store):
    # lists travel as one JSON string, whose own escapes must reach JSONExtract untouched
    found = each_store.query_rows(
        "SELECT JSONExtract({list:String}, 'Array(String)')", {"list": json.dumps(TEXTS)}
    )

    assert list(found[0][0]) == TEXTS


def test_a_stored_string_is_matched_exactly(each_store):
    table = each_store.table(f"notes_{uuid.uuid4().hex[:8]}")
    each_store.command(
        f"CREATE TABLE {table} (id UInt64, body String) ENGINE = MergeTree ORDER BY id"
    )
    try:
        for number, text in enumerate(TEXTS):
            each_store.command(
                f"INSERT INTO {table} VALUES ({{id:UInt64}}, {{body:String}})",
                {"id": number, "body": text},
            )
        for number, text in enumerate(TEXTS):
            where = f"SELECT id FROM {table} WHERE body = {{body:String}}"
            assert each_store.query_rows(where, {"body": text}) == [(number,)], text
    finally:
        each_store.command(f"DROP TABLE {table}")


def test_a_value_that_is_not_of_its_type_is_a_bad_value_naming_the_parameter(each_store):
    with pytest.raises(BadValue) as refused:
        each_store.query_rows("SELECT {limit:UInt64}", {"limit": "many"})

    assert (refused.value.parameter, refused.value.type_name) == ("limit", "UInt64")


def test_a_refused_statement_is_not_a_bad_value(each_store):
    with pytest.raises(QueryError) as refused:
        each_store.query_rows("SELECT no_such_column", {"s": "x"})

    assert not isinstance(refused.value, BadValue)
