"""The tables the agents own, on a ``MetaData`` of their own: the CRM contacts ``crm_write`` upserts
into, and the delivery ledger of sent messages and list memberships. The Alembic migrations build
them next to the run store's tables (``migrations/metadata.py`` lists both)."""

from __future__ import annotations

import sqlalchemy as sa

#: The same constraint names as the run store's tables (``pk_<table>``, ``uq_<table>__<columns>``).
NAMING = {
    "ix": "ix_%(table_name)s__%(column_0_N_name)s",
    "uq": "uq_%(table_name)s__%(column_0_N_name)s",
    "ck": "ck_%(table_name)s__%(constraint_name)s",
    "fk": "fk_%(table_name)s__%(column_0_N_name)s__%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = sa.MetaData(naming_convention=NAMING)
#: The database clock, as the server default of the timestamp columns.
NOW = sa.func.current_timestamp()


crm_contact = sa.Table(
    "crm_contact",
    metadata,
    sa.Column("email", sa.String(320), primary_key=True),
    sa.Column("name", sa.String(200)),
    sa.Column("company", sa.String(200)),
    sa.Column("segment", sa.String(40)),
    sa.Column("score", sa.Integer),
    sa.Column("last_write_key", sa.String(240)),
    sa.Column("writes", sa.Integer, server_default="1", nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), server_default=NOW, nullable=False),
)

#: One row per idempotency key (``run_id:step_id``, or ``nurture:<list>:<email>``).
delivery = sa.Table(
    "delivery",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True),
    sa.Column("idempotency_key", sa.String(240), unique=True, nullable=False),
    sa.Column("run_id", sa.String(36), index=True),
    sa.Column("channel", sa.String(40), nullable=False),
    sa.Column("recipient", sa.String(320), nullable=False),
    sa.Column("subject", sa.String(400)),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("provider_message_id", sa.String(200)),
    sa.Column("created_at", sa.DateTime(timezone=True), server_default=NOW, nullable=False),
    sa.Column("sent_at", sa.DateTime(timezone=True)),
)
