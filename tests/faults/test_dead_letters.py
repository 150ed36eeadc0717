"""Poison messages, published raw with kombu to the real in-process worker, each become one dead
letter with the right reason, and the worker keeps serving; pickle stays refused (never loaded).
A dead letter whose task is deployed later is replayed; one that still cannot be decoded is not."""

from __future__ import annotations

import json
import pickle
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from kombu.connection import Connection
from kombu.entity import Exchange, Queue
from kombu.messaging import Producer
from prometheus_client.core import Metric
from typer.testing import CliRunner

from orchestration.cli.main import cli
from orchestration.control.deadletters import (
    DeadLetter,
    NotReplayableError,
    get_dead_letter,
    list_dead_letters,
    replay,
)
from orchestration.names import ENGINE_QUEUE, INGEST_EVENT_TASK
from orchestration.ops.metrics import registry as metrics_registry
from tests.support.flows import flow, run
from tests.support.wait import eventually
from tests.support.wiring import app

JSON = "application/json"


def task_headers(task: str | None = INGEST_EVENT_TASK) -> dict[str, Any]:
    """Celery's task protocol 2 headers, as a non-Python producer would write them."""
    task_id = str(uuid.uuid4())
    return {
        "lang": "py",
        "task": task,
        "id": task_id,
        "root_id": task_id,
        "parent_id": None,
        "group": None,
        "argsrepr": "()",
        "kwargsrepr": "{}",
        "origin": "poison@test",
        "retries": 0,
        "eta": None,
        "expires": None,
        "timelimit": [None, None],
    }


def publish_raw(
    body: bytes,
    headers: dict[str, Any] | None,
    content_type: str = JSON,
    content_encoding: str = "utf-8",
    queue: str = ENGINE_QUEUE,
) -> None:
    """Publish bytes as they are (no serializer) with a plain kombu connection."""
    # kombu's constructors and publish() carry no annotations
    target = Queue(queue, Exchange(queue), routing_key=queue)  # type: ignore[no-untyped-call]
    options = app.conf.broker_transport_options
    with Connection(app.conf.broker_url, transport_options=options) as conn:  # type: ignore[no-untyped-call]
        Producer(conn).publish(  # type: ignore[no-untyped-call]
            body,
            exchange=target.exchange,
            routing_key=queue,
            declare=[target],
            headers=headers or {},
            content_type=content_type,
            content_encoding=content_encoding,
        )


def one_dead_letter() -> DeadLetter:
    def found() -> DeadLetter:
        letters = list_dead_letters(status=None)
        assert len(letters) == 1, letters
        return letters[0]

    return get_dead_letter(eventually(found, 20, "one dead letter").id)


def still_serving() -> None:
    env = run(flow([{"id": "a", "agent": "noop"}], name="after-poison"))
    assert env.status == "succeeded", env


class Unpickled:
    """Unpickling it touches a file: proof that a refused pickle body was never loaded."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple[Any, ...]:
        return (Path.touch, (self.path,))


@dataclass(frozen=True)
class Poison:
    body: bytes
    headers: dict[str, Any] | None
    content_type: str = JSON
    content_encoding: str = "utf-8"


def poisons(tmp_path: Path) -> dict[str, tuple[Poison, str, str]]:
    """Each kind: the message, the reason it gets, a part of the detail."""
    event = {"id": "evt-poison", "type": "lead.created", "payload": {"email": "a@b.co"}}
    good_body = json.dumps([[], {"event": event}, {}]).encode()
    return {
        "pickle": (
            Poison(
                pickle.dumps(((Unpickled(tmp_path / "unpickled"),), {}, {})),
                task_headers(),
                "application/x-python-serialize",
                "binary",
            ),
            "refused_content",
            "workers accept JSON only",
        ),
        "unknown task": (
            Poison(good_body, task_headers("campaignflow.no_such_task")),
            "unknown_task",
            "deploy",
        ),
        "corrupt json": (Poison(b'[[], {"event": {"id": ', task_headers()), "bad_json", "not valid JSON"),
        "not utf-8": (Poison(b"\xff\xfe[[], {}, {}]\x00", task_headers()), "not_utf8", "not UTF-8 text"),
        "10,000 levels": (
            Poison(("[" * 10_000 + "]" * 10_000).encode(), task_headers()),
            "too_deep",
            "nested too deeply",
        ),
        "not a task message": (Poison(b'{"hello": "world"}', None), "not_a_task", "no 'task' header"),
    }


KINDS = ["pickle", "unknown task", "corrupt json", "not utf-8", "10,000 levels", "not a task message"]


def dead_letter_metric() -> dict[str, float]:
    metrics: list[Metric] = [m for m in metrics_registry().collect() if m.name == "campaignflow_dead_letters"]
    return {s.labels["reason"]: s.value for m in metrics for s in m.samples}


@pytest.mark.parametrize("kind", KINDS)
def test_each_poison_message_becomes_one_dead_letter_and_the_worker_keeps_serving(
    worker: object, tmp_path: Path, kind: str
) -> None:
    poison, reason, detail = poisons(tmp_path)[kind]
    publish_raw(poison.body, poison.headers, poison.content_type, poison.content_encoding)
    letter = one_dead_letter()
    assert (letter.reason, letter.queue, letter.count, letter.status) == (reason, ENGINE_QUEUE, 1, "dead")
    assert detail in letter.detail, letter.detail
    assert letter.body == poison.body
    assert letter.body_size == len(poison.body)
    assert letter.content_type == poison.content_type
    assert letter.headers == (poison.headers or {})
    assert letter.task == (poison.headers or {}).get("task")
    assert not (tmp_path / "unpickled").exists()
    metric = dead_letter_metric()
    assert metric[reason] == 1
    assert sum(metric.values()) == 1
    still_serving()


def test_the_same_poison_message_again_is_counted_not_stored_twice(worker: object) -> None:
    headers = task_headers()
    publish_raw(b"{not json", headers)
    first = one_dead_letter()
    publish_raw(b"{not json", headers)
    counted = eventually(lambda: get_dead_letter(first.id).count == 2, 20, "the dead letter counted twice")
    assert counted
    assert len(list_dead_letters(status=None)) == 1
    assert get_dead_letter(first.id).last_seen >= first.last_seen
    still_serving()


@pytest.fixture
def late_task(worker: Any) -> Iterator[tuple[str, threading.Event]]:
    """A task 'deployed' after its messages arrived: registered on the app, and the worker's consumer
    told about it (what a restart with the new code does); removed afterwards."""
    name, ran = "tests.late_task", threading.Event()
    yield name, ran
    app.tasks.pop(name, None)
    worker.consumer.strategies.pop(name, None)


def test_a_dead_letter_is_replayed_once_its_task_is_deployed(
    worker: Any, late_task: tuple[str, threading.Event]
) -> None:
    name, ran = late_task
    publish_raw(json.dumps([["hello"], {}, {}]).encode(), task_headers(name))
    letter = one_dead_letter()
    assert letter.reason == "unknown_task"
    assert letter.task == name
    with pytest.raises(NotReplayableError, match="is still unknown here; deploy the code"):
        replay(letter.id)

    def late(word: str) -> str:
        ran.set()
        return word

    app.task(name=name, shared=False)(late)
    worker.consumer.update_strategies()
    replayed = replay(letter.id)
    assert replayed.status == "replayed"
    assert replayed.replayed_at is not None
    assert ran.wait(20), "the replayed message did not run"
    with pytest.raises(NotReplayableError, match="it was replayed at"):
        replay(letter.id)


def test_a_dead_letter_that_still_does_not_decode_is_not_replayed(worker: object) -> None:
    publish_raw(b"\xff not utf-8", task_headers())
    letter = one_dead_letter()
    with pytest.raises(NotReplayableError, match="its body still does not decode"):
        replay(letter.id)
    assert get_dead_letter(letter.id).status == "dead"


def test_the_deadletters_commands_list_show_replay_and_purge(worker: object) -> None:
    publish_raw(b'{"broken": ', task_headers())
    letter = one_dead_letter()
    runner = CliRunner()
    listed = json.loads(runner.invoke(cli, ["deadletters", "list", "--json"]).stdout)
    assert [(d["id"], d["reason"], d["count"], d["queue"]) for d in listed] == [
        (letter.id, "bad_json", 1, ENGINE_QUEUE)
    ]
    shown = json.loads(runner.invoke(cli, ["deadletters", "show", str(letter.id), "--json"]).stdout)
    assert shown["body_text"] == '{"broken": '
    assert shown["body_complete"]
    assert shown["task"] == INGEST_EVENT_TASK
    text = runner.invoke(cli, ["deadletters", "show", str(letter.id)]).stdout
    assert "reason: bad_json: body is not valid JSON" in text
    assert 'body: {"broken": ' in text

    replayed = runner.invoke(cli, ["deadletters", "replay", str(letter.id)])
    assert replayed.exit_code == 1
    assert replayed.stderr.strip().splitlines() == [
        f"error: dead letter {letter.id} not replayed: its body still does not decode (Expecting value: "
        "line 1 column 12 (char 11)); publish a corrected message from its source"
    ]
    missing = runner.invoke(cli, ["deadletters", "show", "999999", "--json"])
    assert missing.exit_code == 1
    assert json.loads(missing.stdout)["error"]["code"] == "not_found"

    kept = runner.invoke(cli, ["deadletters", "purge", "--older-than", "1h", "--json"])
    assert json.loads(kept.stdout)["purged"] == 0
    assert runner.invoke(cli, ["deadletters", "purge", "--all"]).stdout == "purged 1 dead letters\n"
    assert json.loads(runner.invoke(cli, ["deadletters", "list", "--status", "all", "--json"]).stdout) == []
