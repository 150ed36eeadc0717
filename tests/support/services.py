"""Where the test services are (``tests.support.testenv``: from the environment, with the local
defaults), and a clear failure (never a skip) when one is down."""

from __future__ import annotations

import uuid

import pytest
import redis
import sqlalchemy as sa

from tests.support.testenv import DATABASE_URL
from tests.support.testenv import REDIS_HOST as REDIS_HOST
from tests.support.testenv import REDIS_PORT as REDIS_PORT
from tests.support.testenv import SESSION_REDIS_DBS as SESSION_REDIS_DBS

PG_BASE = DATABASE_URL


def redis_url(db: int) -> str:
    return f"redis://{REDIS_HOST}:{REDIS_PORT}/{db}"


def schema_url(schema: str) -> str:
    sep = "&" if "?" in PG_BASE else "?"
    # the application name lets a test find (and cut) exactly this schema's connections
    return f"{PG_BASE}{sep}options=-csearch_path%3D{schema}&application_name={schema}"


def new_schema_name(prefix: str = "cf_test") -> str:
    return f"{prefix}_{uuid.uuid4().hex[:10]}"


def check_services() -> None:
    try:
        with redis.Redis(host=REDIS_HOST, port=REDIS_PORT, socket_connect_timeout=3) as client:
            client.ping()
    except redis.RedisError as exc:
        pytest.fail(f"Redis at {REDIS_HOST}:{REDIS_PORT} is not reachable ({exc}); start it (see README)")
    engine = sa.create_engine(PG_BASE)
    try:
        with engine.connect() as conn:
            conn.execute(sa.text("select 1"))
    except sa.exc.OperationalError as exc:
        pytest.fail(f"Postgres at {PG_BASE} is not reachable ({exc.orig}); start it (see README)")
    finally:
        engine.dispose()


def create_schema(schema: str) -> None:
    engine = sa.create_engine(PG_BASE, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    engine.dispose()


def drop_schema(schema: str) -> None:
    engine = sa.create_engine(PG_BASE, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
    engine.dispose()


def clear_prefix(prefix: str) -> None:
    for db in SESSION_REDIS_DBS:
        with redis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=db) as client:
            for key in client.scan_iter(match=f"{prefix}*", count=1000):
                client.delete(key)
