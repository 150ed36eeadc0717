"""The outbox: a run's publications, written in the transaction that opens, retries or re-drives it.

A publication is the run's number (``run.publication``, one more each time) plus a ``run_outbox``
row. After the commit the row is published (``mark_published``); what is still unpublished after a
few seconds the relay claims in batches (``claim``: ``FOR UPDATE SKIP LOCKED`` on Postgres, the
database's write lock on SQLite) and publishes. The first tasks of the published canvas take the
publication (``take``) with their publish's token: only the run's current publication, only while
the run is live, and only for one publish, so a publication sent twice (a crash between publishing
and marking) starts once.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from orchestration.names import LIVE_RUN_STATUSES
from orchestration.store.base import aware, utcnow
from orchestration.store.queries import queries
from orchestration.store.tables import outbox_t, run_t

#: ``kind`` of the publication that opens a run for the workers.
OPEN = "open"
#: ``kind`` of the publication of a failed run retried on request.
RETRY = "retry"
#: ``kind`` of the publication of a stalled run re-driven by the sweeper.
REDRIVE = "redrive"
#: ``kind`` of the publication of a waiting run's continuation (a timer fired, a signal came).
WAKE = "wake"
#: ``kind`` of the publication of a timed-out wait's continuation (its ``on_timeout`` step first).
TIMEOUT = "timeout"
#: Longest ``last_error`` kept.
MAX_ERROR_CHARS = 1000


@dataclass(frozen=True)
class Entry:
    """A publication to publish: its ``run_outbox`` row id, the run and the publication's number."""

    id: int
    run_id: str
    publication: int
    kind: str
    #: A wake-up's: the parking node whose continuation is published (None: the whole flow).
    resume: str | None = None


#: The hot-path statements (every run is added, published and taken once) are built once with bind
#: parameters: building a SQLAlchemy construct costs more CPU than the round trip it makes.
_ADD = (
    outbox_t.insert()
    .values(
        run_id=sa.bindparam("rid"),
        publication=sa.bindparam("pub"),
        kind=sa.bindparam("kind"),
        resume=sa.bindparam("res"),
        created_at=sa.bindparam("now", type_=sa.DateTime(timezone=True)),
    )
    .returning(outbox_t.c.id)
)
_MARK = (
    outbox_t.update()
    .where(outbox_t.c.id == sa.bindparam("eid"), outbox_t.c.published_at.is_(None))
    .values(published_at=sa.bindparam("now", type_=sa.DateTime(timezone=True)))
)


def add(conn: Connection, run_id: str, publication: int, kind: str, resume: str | None = None) -> Entry:
    """The outbox row of the run's publication ``publication`` (in the caller's transaction)."""
    params = {"rid": run_id, "pub": publication, "kind": kind, "res": resume, "now": utcnow()}
    return Entry(int(conn.execute(_ADD, params).scalar_one()), run_id, publication, kind, resume)


def next_publication(conn: Connection, run_id: str, kind: str, resume: str | None = None) -> Entry:
    """One more publication of an existing run (a retry, a re-drive, a wake-up from node
    ``resume``): it becomes the run's current one, which no publish has taken yet, and gets its
    outbox row."""
    stmt = (
        run_t.update()
        .where(run_t.c.run_id == run_id)
        .values(publication=run_t.c.publication + 1, start_token=None)
        .returning(run_t.c.publication)
    )
    return add(conn, run_id, int(conn.execute(stmt).scalar_one()), kind, resume)


def mark_published(conn: Connection, entry_id: int, now: datetime | None = None) -> bool:
    """The publication went to the broker; False when it was already marked."""
    return bool(conn.execute(_MARK, {"eid": entry_id, "now": now or utcnow()}).rowcount)


def record_failure(conn: Connection, entry_id: int, error: str) -> None:
    """A publish of the entry failed (it stays pending): count it and keep what went wrong."""
    conn.execute(
        outbox_t.update()
        .where(outbox_t.c.id == entry_id)
        .values(attempts=outbox_t.c.attempts + 1, last_error=error[:MAX_ERROR_CHARS])
    )


def claim(conn: Connection, before: datetime, limit: int) -> list[Entry]:
    """Up to ``limit`` unpublished entries written before ``before``, oldest first, held by this
    transaction until it ends: another relay's claim skips (Postgres) or waits for (SQLite) them."""
    rows = queries(conn).claim_outbox(conn, before, limit)
    entries = (Entry(int(r.id), r.run_id, int(r.publication), r.kind, r.resume) for r in rows)
    return sorted(entries, key=lambda e: e.id)


@dataclass(frozen=True)
class RunToPublish:
    flow_def: dict[str, Any]
    deadline_at: datetime | None
    priority: int = 0


def runs_to_publish(conn: Connection, run_ids: Collection[str]) -> dict[str, RunToPublish]:
    """What publishing needs of each run (its flow and its deadline), by run id."""
    query = sa.select(run_t.c.run_id, run_t.c.flow_def, run_t.c.deadline_at, run_t.c.priority).where(
        run_t.c.run_id.in_(list(run_ids))
    )
    return {
        r.run_id: RunToPublish(r.flow_def, aware(r.deadline_at), int(r.priority or 0))
        for r in conn.execute(query)
    }


#: Built once too: every published run begins with it.
_TAKE = (
    run_t.update()
    .where(
        run_t.c.run_id == sa.bindparam("rid"),
        run_t.c.publication == sa.bindparam("pub"),
        run_t.c.status.in_(LIVE_RUN_STATUSES),
        sa.or_(run_t.c.start_token.is_(None), run_t.c.start_token == sa.bindparam("tid")),
    )
    .values(start_token=sa.bindparam("tid"), updated_at=sa.bindparam("now"))
)


def take(conn: Connection, run_id: str, publication: int, token: str) -> bool:
    """Let the publish ``token`` start the run's publication ``publication``: True when it is the
    run's current publication, the run is live, and no other publish took it (the same token again,
    a redelivered message or another first task of the same canvas, takes it again). One statement
    under the run's row lock."""
    params = {"rid": run_id, "pub": publication, "tid": token, "now": utcnow()}
    return bool(conn.execute(_TAKE, params).rowcount)


def why_not_taken(conn: Connection, run_id: str, publication: int) -> str:
    """Why :func:`take` refused, in words (for the log line of a copy that stops)."""
    row = conn.execute(
        sa.select(run_t.c.status, run_t.c.publication, run_t.c.start_token).where(run_t.c.run_id == run_id)
    ).first()
    if row is None:
        return "the run does not exist"
    if row.publication != publication:
        return f"publication {row.publication} superseded it"
    if row.status not in LIVE_RUN_STATUSES:
        return f"the run is {row.status}"
    return f"the publish {row.start_token} took it first"


def has_pending(conn: Connection, run_id: str) -> bool:
    """True when a publication of the run waits for the broker."""
    query = sa.select(outbox_t.c.id).where(outbox_t.c.run_id == run_id, outbox_t.c.published_at.is_(None))
    return conn.execute(query.limit(1)).first() is not None


def backlog(conn: Connection) -> tuple[int, datetime | None]:
    """How many entries are unpublished, and when the oldest of them was written."""
    row = conn.execute(
        sa.select(sa.func.count(), sa.func.min(outbox_t.c.created_at)).where(
            outbox_t.c.published_at.is_(None)
        )
    ).one()
    return int(row[0]), aware(row[1])


def entries(conn: Connection, run_id: str) -> list[dict[str, Any]]:
    """Every outbox row of the run, oldest first (for tests and operators)."""
    query = sa.select(outbox_t).where(outbox_t.c.run_id == run_id).order_by(outbox_t.c.id)
    return [dict(r._mapping) for r in conn.execute(query)]
