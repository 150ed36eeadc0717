"""StepError: the one builder of error records. The stored JSON keeps the shape the hand-built dicts
had (the envelope's ``error`` and ``attempt_errors`` are public), and the envelope shows every field
but the Celery task id."""

from __future__ import annotations

from datetime import UTC, datetime

from orchestration.envelope import StepRecord
from orchestration.step_error import StepError


class Boom(Exception):
    pass


def test_from_exception_keeps_type_message_attempt_and_time() -> None:
    stored = StepError.from_exception(Boom("upstream 503"), attempt=2).as_dict()
    assert list(stored) == ["type", "message", "attempt", "at"]
    assert stored["type"] == "Boom"
    assert stored["message"] == "upstream 503"
    assert stored["attempt"] == 2
    assert datetime.fromisoformat(stored["at"]).tzinfo is not None
    # no message: the class name stands in; no attempt: null, as before
    assert StepError.from_exception(Boom()).as_dict()["message"] == "Boom"
    assert StepError.from_exception(Boom()).as_dict()["attempt"] is None


def test_the_runs_error_names_the_step() -> None:
    err = StepError.from_exception(Boom("x"), attempt=1)
    assert err.for_step("b").as_dict() == {**err.as_dict(), "step_id": "b"}
    assert StepError.from_exception(Boom("x"), step_id="b").as_dict()["step_id"] == "b"


def test_engine_reasons_have_their_exact_shape() -> None:
    deadline = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert StepError.deadline_exceeded(deadline).as_dict() == {
        "type": "DeadlineExceeded",
        "message": "run deadline 2026-01-02T03:04:05+00:00 passed",
    }
    assert StepError.deadline_exceeded(found_by="the sweeper").as_dict() == {
        "type": "DeadlineExceeded",
        "message": "run deadline passed (found by the sweeper)",
    }
    assert StepError.stalled(900, 3).as_dict() == {
        "type": "Stalled",
        "message": "no progress for 900s after 3 re-drives",
    }
    assert StepError.cancelled().as_dict() == {"type": "Cancelled", "message": "cancelled on request"}
    assert StepError.result_discarded().as_dict() == {
        "type": "Cancelled",
        "message": "the run was cancelled while this step ran; result discarded",
    }
    assert StepError.map_input("$payload.items", {"a": 1}, "fan").as_dict() == {
        "type": "MapInputError",
        "message": "$payload.items is dict, not a list",
        "step_id": "fan",
    }


def test_errback_reasons() -> None:
    assert StepError.task_failed().as_dict() == {"type": "TaskFailed", "message": "a task of this run failed"}
    assert StepError.task_failed("t-1", Boom("killed")).as_dict() == {
        "type": "Boom",
        "message": "killed",
        "task_id": "t-1",
    }
    assert StepError.task_failed("t-1", "FAILURE").as_dict() == {
        "type": "TaskFailed",
        "message": "task t-1 ended FAILURE",
        "task_id": "t-1",
    }
    unfinished = StepError.task_failed("t-1", "FAILURE").for_step(None).as_dict()
    assert unfinished["step_id"] is None


def test_a_stored_error_round_trips_and_the_envelope_hides_the_task_id() -> None:
    stored = StepError.from_exception(Boom("x"), attempt=3).as_dict()
    assert StepError.model_validate(stored).as_dict() == stored
    record = StepRecord.model_validate(
        {
            "step_id": "s",
            "agent": "a",
            "status": "failed",
            "attempts": 1,
            "started_at": None,
            "finished_at": None,
            "error": StepError.task_failed("t-1", Boom("x")).for_step("s").as_dict(),
            "attempt_errors": [stored],
        }
    )
    shown = record.model_dump(mode="json")
    assert set(shown["error"]) == {"type", "message", "attempt", "at", "step_id"}
    assert set(shown["attempt_errors"][0]) == {"type", "message", "attempt", "at", "step_id"}
