"""The declarative base every store model shares: one ``MetaData`` with a naming convention, the
JSON column type (JSONB on Postgres) and timezone-aware datetimes."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase

JSONType = sa.JSON().with_variant(JSONB(), "postgresql")

#: Constraint and index names; the migrations spell the same names.
NAMING = {
    "ix": "ix_%(table_name)s__%(column_0_N_name)s",
    "uq": "uq_%(table_name)s__%(column_0_N_name)s",
    "ck": "ck_%(table_name)s__%(constraint_name)s",
    "fk": "fk_%(table_name)s__%(column_0_N_name)s__%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = sa.MetaData(naming_convention=NAMING)
    type_annotation_map = {dict[str, Any]: JSONType, datetime: sa.DateTime(timezone=True)}


def server_now() -> sa.ColumnElement[datetime]:
    """The database's clock, as a column's server default."""
    return sa.func.current_timestamp()
