"""Database names in DSNs: swapping the database keeps every other part of the DSN."""

from __future__ import annotations

import pytest

from shared.db import database_name, with_database


@pytest.mark.parametrize(
    ("dsn", "expected"),
    [
        (
            "postgresql://postgres@127.0.0.1:5432/gatehouse",
            "postgresql://postgres@127.0.0.1:5432/t1",
        ),
        ("postgresql:///gatehouse?host=/run/postgresql", "postgresql:///t1?host=/run/postgresql"),
        ("postgres://u:p@db/x?sslmode=require", "postgres://u:p@db/t1?sslmode=require"),
        ("postgresql://db:5432", "postgresql://db:5432/t1"),
    ],
)
def test_with_database_replaces_only_the_database(dsn: str, expected: str) -> None:
    assert with_database(dsn, "t1") == expected
    assert database_name(expected) == "t1"


def test_odd_database_names_survive_the_round_trip() -> None:
    dsn = with_database("postgresql://db/gatehouse", "release decision/é")
    assert database_name(dsn) == "release decision/é"


def test_a_dsn_without_a_database_means_postgres() -> None:
    assert database_name("postgresql://db:5432") == "postgres"
