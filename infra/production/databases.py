"""Create (or drop) the PostgreSQL roles and databases, and the Redis user, of the production
profile.

Airflow's ``db migrate`` and MLflow's server create tables but not the database itself, so
``up.sh`` runs ``python infra/production/databases.py ensure --admin ADMIN_URL URL...`` first:
over the admin connection (a role with CREATEROLE and CREATEDB, e.g. ``postgres``), each URL's
own role is created with the URL's password (or given it again) and owns the URL's database, so
Airflow and MLflow never connect as the superuser. ``redis-user ADMIN_URL URL`` does the same for
the Celery broker: an ACL user with its own password. The tests use the same functions for their
throw-away databases. URLs are SQLAlchemy URLs as written in the env file:
``postgresql+psycopg2://shoprec_airflow:PASSWORD@127.0.0.1:5432/airflow``, Celery's ``db+``
prefix allowed.
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


def ensure_owned(admin_url: str, url: str) -> bool:
    """Over ``admin_url``, give ``url``'s role (login, ``url``'s password) its own database:
    created owned by the role, or handed to it when it exists. True when it was created."""
    parsed = parse(url)
    role, name = parsed.username, parsed.database
    if not role or not parsed.password:
        raise ValueError(f"{parsed.render_as_string()}: give the role and its password in the URL")
    connection = _admin(f"{admin_url.rstrip('/')}/{MAINTENANCE_DB}")
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,))
            verb = "ALTER" if cursor.fetchone() else "CREATE"
            cursor.execute(sql.SQL(verb + " ROLE {} WITH LOGIN NOSUPERUSER NOCREATEDB "
                                   "NOCREATEROLE PASSWORD %s").format(sql.Identifier(role)),
                           (parsed.password,))
            cursor.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
            if cursor.fetchone():
                cursor.execute(sql.SQL("ALTER DATABASE {} OWNER TO {}").format(
                    sql.Identifier(name), sql.Identifier(role)))
                return False
            cursor.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(
                sql.Identifier(name), sql.Identifier(role)))
            return True
    finally:
        connection.close()


def drop_role(admin_url: str, role: str) -> None:
    """Drop a role (after the databases it owns), if present."""
    connection = _admin(f"{admin_url.rstrip('/')}/{MAINTENANCE_DB}")
    try:
        with connection.cursor() as cursor:
            cursor.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))
    finally:
        connection.close()


def ensure_redis_user(admin_url: str, url: str) -> None:
    """Over ``admin_url``, make ``url``'s user a Redis ACL user with ``url``'s password.

    The user may not run administrative commands (CONFIG, ACL, SHUTDOWN, ...). The server's own
    password-less ``default`` user is left as it is: turning it off is the Redis operator's call.
    """
    import redis

    user, password = make_url_redis(url)
    client = redis.Redis.from_url(admin_url, socket_connect_timeout=5)
    client.acl_setuser(user, enabled=True, reset_passwords=True, passwords=[f"+{password}"],
                       keys=["*"], channels=["*"], categories=["+@all", "-@admin"], reset=True)
    redis.Redis.from_url(url, socket_connect_timeout=5).ping()  # the new credentials work


def make_url_redis(url: str) -> tuple[str, str]:
    """The user and password of a ``redis://user:password@host:port/db`` URL."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    if not parts.username or not parts.password:
        raise ValueError("the Redis URL must name its user and password")
    return parts.username, parts.password


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
    parser.add_argument("action", choices=["ensure", "check", "redis-user"])
    parser.add_argument("urls", nargs="+", metavar="URL")
    parser.add_argument("--admin", help="admin connection (PostgreSQL server URL, or the Redis "
                        "URL for redis-user) that creates the roles, databases or user")
    args = parser.parse_args()
    if args.action == "redis-user":
        import redis

        try:
            for url in args.urls:
                ensure_redis_user(args.admin or url, url)
        except (redis.RedisError, ValueError) as err:
            print(f"Redis user could not be set up: {err}", file=sys.stderr)
            return 1
        print("redis user: ready")
        return 0
    for url in args.urls:
        server = f"{args.admin.rstrip('/')}/{MAINTENANCE_DB}" if args.admin else url
        problem = unreachable(server)
        if problem:
            print(f"PostgreSQL at {parse(server).host}:{parse(server).port or 5432} is not "
                  f"reachable: {problem}", file=sys.stderr)
            return 1
        if args.action == "ensure":
            created = ensure_owned(args.admin, url) if args.admin else ensure(url)
            owner = f" (owner {parse(url).username})" if args.admin else ""
            print(f"database {parse(url).database}{owner}: {'created' if created else 'exists'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
