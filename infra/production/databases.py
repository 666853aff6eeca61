"""Create (or drop) the PostgreSQL databases the production profile points at.

Airflow's ``db migrate`` and MLflow's server create tables but not the database itself, so
``up.sh`` runs ``python infra/production/databases.py ensure URL...`` first. The tests use the
same functions for their throw-away databases. URLs are SQLAlchemy URLs as written in the env
file: ``postgresql+psycopg2://postgres@127.0.0.1:5432/airflow``, Celery's ``db+`` prefix allowed.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from contextlib import closing, contextmanager

import psycopg2
from psycopg2 import sql
from sqlalchemy.engine import URL, make_url

MAINTENANCE_DB = "postgres"


def parse(url: str) -> URL:
    """The SQLAlchemy URL of a PostgreSQL database; Celery's ``db+`` prefix is dropped."""
    parsed = make_url(url.removeprefix("db+"))
    if parsed.get_backend_name() != "postgresql" or not parsed.database:
        raise ValueError(f"not a PostgreSQL database URL: {parsed.render_as_string()}")
    return parsed


def connect(url: str | URL, database: str | None = None, timeout: int = 5):
    """A psycopg2 connection to the URL's server, on ``database`` when given."""
    parsed = parse(url) if isinstance(url, str) else url
    return psycopg2.connect(
        host=parsed.host or "localhost", port=parsed.port or 5432, user=parsed.username,
        password=parsed.password, dbname=database or parsed.database, connect_timeout=timeout,
        **{str(k): v for k, v in parsed.query.items()},
    )


@contextmanager
def cursor(url: str) -> Iterator[psycopg2.extensions.cursor]:
    """A cursor on the URL's database; the connection is closed afterwards (psycopg2's own
    ``with connection`` only ends the transaction)."""
    with closing(connect(url)) as connection, connection.cursor() as opened:
        yield opened


def unreachable(url: str) -> str | None:
    """Why the URL's server cannot be used (None when it answers), for skips and start-up."""
    try:
        connect(url, MAINTENANCE_DB, timeout=3).close()
    except psycopg2.Error as err:
        return " ".join(str(err).split())
    return None


def _admin(url: str):
    """Autocommit connection to the maintenance database: CREATE/DROP DATABASE need it."""
    connection = connect(url, MAINTENANCE_DB)
    connection.autocommit = True
    return connection


def ensure(url: str) -> bool:
    """Create the URL's database unless it exists; True when it was created."""
    name = parse(url).database
    connection = _admin(url)
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
            if cursor.fetchone():
                return False
            cursor.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
            return True
    finally:
        connection.close()


def drop(url: str) -> None:
    """Drop the URL's database if present, ending any session still connected to it."""
    connection = _admin(url)
    try:
        with connection.cursor() as cursor:
            cursor.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                sql.Identifier(parse(url).database)))
    finally:
        connection.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=["ensure", "check"])
    parser.add_argument("urls", nargs="+", metavar="URL")
    args = parser.parse_args()
    for url in args.urls:
        problem = unreachable(url)
        if problem:
            print(f"PostgreSQL at {parse(url).host}:{parse(url).port or 5432} is not reachable: "
                  f"{problem}", file=sys.stderr)
            return 1
        if args.action == "ensure":
            created = ensure(url)
            print(f"database {parse(url).database}: {'created' if created else 'exists'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
