"""``CAMPAIGNFLOW_TASK_EVENTS`` (default on) sets both halves of Celery's task events: the workers'
(``worker_send_task_events``, and ``-E`` on the command ``campaignflow worker`` runs) and the
publishers' ``task-sent`` (``task_send_sent_event``)."""

from __future__ import annotations

import dataclasses

import pytest
from celery import Celery

from orchestration import runtime
from orchestration.bootstrap import configure_app
from orchestration.cli.worker import worker_argv
from orchestration.runtime import current
from orchestration.settings import Settings, get_settings


@pytest.mark.parametrize(
    ("value", "expected"), [(None, True), ("on", True), ("off", False), ("false", False)]
)
def test_the_setting_reaches_the_app_and_the_worker_command(
    value: str | None, expected: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    if value is None:
        monkeypatch.delenv("CAMPAIGNFLOW_TASK_EVENTS", raising=False)
    else:
        monkeypatch.setenv("CAMPAIGNFLOW_TASK_EVENTS", value)
    settings = Settings(**{k: v for k, v in get_settings().model_dump().items() if k != "task_events"})
    assert settings.task_events is expected

    app = Celery("events-check", config_source="celeryconfig")
    configure_app(app, current().registry, settings)
    assert (app.conf.worker_send_task_events, app.conf.task_send_sent_event) == (expected, expected)

    monkeypatch.setattr(runtime, "_current", dataclasses.replace(current(), settings=settings))
    assert ("-E" in worker_argv(None, True, None, "prefork", "INFO")) is expected


def test_a_value_that_is_not_a_switch_is_refused_naming_the_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CAMPAIGNFLOW_TASK_EVENTS", "sometimes")
    with pytest.raises(ValueError, match="task_events"):
        Settings()
