"""``BaseOrchestrator``: picks (or builds) the flow for a payload and runs it, inline or on workers."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar, Literal

from orchestration.engine.compiler import OrchestrationEngine
from orchestration.engine.publish import publish_now
from orchestration.errors import FieldError
from orchestration.flows import Flow, FlowCatalog
from orchestration.flows.model import SleepNode
from orchestration.flows.timing import payload_problems
from orchestration.store import outbox, sql_engine
from orchestration.store import repository as repo
from orchestration.store.db import autocommit

Mode = Literal["async", "inline"]


@dataclass(frozen=True)
class RunHandle:
    """What opening a run returns: the same shape as ``campaignflow.ingest_event``'s result.

    ``pending`` (not part of that result): the run is stored and ``queued`` but the broker could not
    take its publication yet; the outbox relay publishes it when the broker answers. ``resumed``
    (in the result only when not empty): waiting runs the event resumed; an event that only resumes
    runs answers with the first of them and status ``resumed``."""

    run_id: str
    status: str
    duplicate: bool
    pending: bool = False
    #: The waiting runs the event resumed (a routing rule's ``resume``), if any.
    resumed: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"run_id": self.run_id, "status": self.status, "duplicate": self.duplicate}
        if self.resumed:
            out["resumed"] = list(self.resumed)
        return out


def deadline_from(flow: Flow, start: datetime) -> datetime | None:
    """When a run of ``flow`` that starts at ``start`` must end (None: the flow sets no deadline)."""
    return start + timedelta(seconds=flow.deadline_seconds) if flow.deadline_seconds else None


class BaseOrchestrator:
    """Subclasses set ``name`` and implement :meth:`flow`; :meth:`run` is the contract."""

    name: ClassVar[str] = "base"
    description: ClassVar[str] = ""

    def __init__(self, engine: OrchestrationEngine, flows: FlowCatalog) -> None:
        self.engine = engine
        self.flows = flows

    def flow(self, payload: dict[str, Any]) -> Flow:
        """The flow this payload should run."""
        raise NotImplementedError

    def check_payload(self, flow: Flow, payload: dict[str, Any]) -> None:
        missing = [f for f in flow.input_required if payload.get(f) in (None, "")]
        problems = [
            f"payload.{f}: required by flow {flow.name!r}; add it to the event's payload" for f in missing
        ]
        problems += payload_problems((n for n in flow.walk() if isinstance(n, SleepNode)), payload)
        if problems:
            raise FieldError(problems, subject="payload")

    def run(
        self,
        payload: dict[str, Any],
        *,
        mode: Mode = "inline",
        event_id: str | None = None,
        campaign: str | None = None,
        extra: dict[str, Any] | None = None,
        priority: int = 0,
    ) -> RunHandle:
        """Open a run (idempotent on ``event_id``), then run it here (inline) or on the workers.

        On the workers, the run and its publication's outbox row are written in one transaction and
        published after the commit; when the broker cannot take it, the run is answered ``queued``
        with ``pending`` set, and the relay publishes it later (``orchestration.engine.publish``).
        """
        flow = self.flow(payload)
        self.check_payload(flow, payload)
        now = datetime.now(UTC)
        new = repo.NewRun(
            run_id=str(uuid.uuid4()),
            flow_name=flow.name,
            flow_version=flow.version,
            flow_def=flow.snapshot,
            payload=payload,
            mode=mode,
            event_id=event_id,
            campaign=campaign,
            orchestrator=self.name,
            deadline_at=deadline_from(flow, now),
            extra=extra or {},
            priority=priority,
        )
        if mode == "async":
            # the key, the run and its outbox row in one transaction: stored means it will be published
            with sql_engine().begin() as conn:
                run_id, duplicate = repo.open_run(conn, new)
                if duplicate:
                    return RunHandle(
                        run_id, repo.run_status(conn, run_id), True, outbox.has_pending(conn, run_id)
                    )
                entry = outbox.add(conn, run_id, 1, outbox.OPEN)
            published = publish_now(self.engine, entry, flow, new.deadline_at, priority)
            return RunHandle(run_id, "queued", False, pending=not published)
        # with an event id, the key and the run are written in one transaction; without, one INSERT
        with sql_engine().begin() if event_id is not None else autocommit() as conn:
            run_id, duplicate = repo.open_run(conn, new)
            if duplicate:
                return RunHandle(run_id, repo.run_status(conn, run_id), True)
        self.engine.run_inline(flow, run_id)
        with sql_engine().connect() as conn:
            return RunHandle(run_id, repo.run_status(conn, run_id), False)


class FlowRunner(BaseOrchestrator):
    """Runs one given flow for any payload: for flows defined in Python, examples and tests."""

    name: ClassVar[str] = "flow"

    def __init__(self, engine: OrchestrationEngine, flow: Flow) -> None:
        super().__init__(engine, FlowCatalog())
        self._flow = flow

    def flow(self, payload: dict[str, Any]) -> Flow:
        return self._flow
