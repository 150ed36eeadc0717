"""The names campaignflow is known by: Celery task names, queues, beat entries, heartbeats, Redis keys
and the statuses of runs and steps. Each is defined here once; code refers to it by the constant.

A foundation module beside ``settings`` and ``errors``: it imports nothing of ours, so every layer
(the engine, the store, the control plane, the CLI, ``tasks``, ``celeryconfig``) may use it.
The public task names, the queue names and the statuses are part of the public contract: change one
only with a test that pins the new form (``tests/test_public_tasks.py`` pins the task names) and a
line in the CHANGELOG.
"""

from __future__ import annotations

from enum import StrEnum

# ------------------------------------------------------------------------------------- task names

#: What every campaignflow task name starts with (tells our tasks from Celery's built-ins).
TASK_PREFIX = "campaignflow."

#: Public task: ``ingest_event(event)`` -> ``{"run_id", "status", "duplicate"}``.
INGEST_EVENT_TASK = "campaignflow.ingest_event"
#: Public task: ``cancel_run(run_id)`` -> ``{"run_id", "status", "error"}``.
CANCEL_RUN_TASK = "campaignflow.cancel_run"
#: Public task: ``retry_run(run_id, payload_patch=None)`` -> ``{"run_id", "status", "error"}``.
RETRY_RUN_TASK = "campaignflow.retry_run"
#: Public task: ``campaign_tick()`` starts the due campaign slots (beat sends it).
CAMPAIGN_TICK_TASK = "campaignflow.campaign_tick"
#: Public task: ``signal_run(run_id, signal, data=None, signal_id=None)`` -> ``{"run_id", "signal",
#: "status", "duplicate", "error"}``: resumes the run's wait for ``signal`` (or keeps the signal until
#: the wait starts).
SIGNAL_RUN_TASK = "campaignflow.signal_run"
#: The public tasks, callable with ``send_task`` by a service that has only ``celery``.
PUBLIC_TASKS = (INGEST_EVENT_TASK, CANCEL_RUN_TASK, RETRY_RUN_TASK, CAMPAIGN_TICK_TASK, SIGNAL_RUN_TASK)

#: Engine task: the explicit join after a parallel block or a map.
JOIN_TASK = "campaignflow.engine.join"
#: Engine task: evaluate a branch and replace itself with the chosen arm.
BRANCH_TASK = "campaignflow.engine.branch"
#: Engine task: expand a map over its list and replace itself with the lanes.
MAP_TASK = "campaignflow.engine.map"
#: Engine task: a ``sleep`` or ``wait`` node parks the run (status ``waiting``, a timer or an open
#: wait in the store) and stops its chain; the wake-up publishes the rest of the flow.
PARK_TASK = "campaignflow.engine.park"
#: Engine task (beat): fire the due timers (wake sleeping runs, time out waits) through the outbox.
TIMERS_TASK = "campaignflow.engine.timers"
#: Engine task: the errback linked to every task of a run; ends the run ``failed``.
FAIL_RUN_TASK = "campaignflow.engine.fail_run"
#: Engine task (beat): fail runs past their deadline, re-drive or fail stalled runs.
SWEEP_TASK = "campaignflow.engine.sweep"
#: Engine task (beat): publish what the outbox still holds (the publications the process that wrote
#: them could not hand to the broker).
RELAY_TASK = "campaignflow.engine.relay"
#: Engine task (beat): purge what the retention settings say is too old, fold the run counters.
RETENTION_TASK = "campaignflow.engine.retention"

#: ``campaignflow bench``: the plain Celery no-op task that the baseline runs.
BENCH_PLAIN_TASK = "campaignflow.bench.plain"

#: An agent's task is this prefix plus the agent's name (``campaignflow.agent.enrich``).
AGENT_TASK_PREFIX = "campaignflow.agent."


def agent_task(agent: str) -> str:
    """The Celery task name of an agent: ``enrich`` -> ``campaignflow.agent.enrich``."""
    return AGENT_TASK_PREFIX + agent


# ----------------------------------------------------------------------------------------- queues

#: The queue of the engine's own tasks, the public tasks and Celery's built-ins.
ENGINE_QUEUE = "orchestration"
#: Each worker pool has its queue: this prefix plus the pool's name (``agents.enrichment``).
AGENT_QUEUE_PREFIX = "agents."


def agent_queue(pool: str) -> str:
    """The queue of one worker pool: ``crm`` -> ``agents.crm``."""
    return AGENT_QUEUE_PREFIX + pool


# ------------------------------------------------------------------------- beat and its heartbeats

#: Beat schedule entry that sends :data:`SWEEP_TASK` every ``CAMPAIGNFLOW_SWEEP_INTERVAL`` seconds.
SWEEP_SCHEDULE_ENTRY = "campaignflow-sweep"
#: Beat schedule entry that sends :data:`CAMPAIGN_TICK_TASK` every ``CAMPAIGNFLOW_CAMPAIGN_TICK_INTERVAL``.
CAMPAIGN_TICK_SCHEDULE_ENTRY = "campaignflow-campaign-tick"
#: Beat schedule entry that sends :data:`RELAY_TASK` every ``CAMPAIGNFLOW_RELAY_INTERVAL`` seconds.
RELAY_SCHEDULE_ENTRY = "campaignflow-outbox-relay"
#: Beat schedule entry that sends :data:`TIMERS_TASK` every ``CAMPAIGNFLOW_TIMER_INTERVAL`` seconds.
TIMERS_SCHEDULE_ENTRY = "campaignflow-timers"
#: Beat schedule entry that sends :data:`RETENTION_TASK` every ``CAMPAIGNFLOW_RETENTION_INTERVAL``.
RETENTION_SCHEDULE_ENTRY = "campaignflow-retention"

#: ``heartbeat`` row written by each campaign tick (``campaignflow doctor`` reads it first).
BEAT_HEARTBEAT = "beat"
#: ``heartbeat`` row written by each sweep.
SWEEPER_HEARTBEAT = "sweeper"
#: ``heartbeat`` row written by each retention run (its detail: what it purged).
RETENTION_HEARTBEAT = "retention"

# --------------------------------------------------------------------------------------- Redis keys
# All of them live under the deployment's ``CAMPAIGNFLOW_REDIS_KEY_PREFIX``, if one is set.

#: Prefix of the step-metric hashes that workers write on the broker's Redis.
METRICS_KEY_PREFIX = "campaignflow:metrics:"
#: Step-metric hash (after :data:`METRICS_KEY_PREFIX`): agent -> seconds spent in its tries.
STEP_SECONDS_KEY = "step_seconds"
#: Step-metric hash: ``agent|state`` -> tries that ended in that Celery state.
STEP_TRIES_KEY = "step_tries"
#: Step-metric hash: agent -> retries scheduled.
STEP_RETRIES_KEY = "step_retries"
#: Step-metric hashes, one per agent (this prefix plus its name): bucket index -> tries.
STEP_BUCKETS_KEY_PREFIX = "step_buckets:"
#: Prefix of the keys of the cluster-wide limits (``orchestration.engine.permits``): one set of
#: keys per agent and key value, created on demand, expiring when idle.
LIMITS_KEY_PREFIX = "campaignflow:limits:"
#: Sorted set of the limits in use (``agent|key`` -> when last used), for ``campaignflow limits``.
LIMITS_INDEX_KEY = "campaignflow:limits-index"
#: Step-metric hash: agent -> times its steps were refused a permit and put back.
STEP_THROTTLES_KEY = "step_throttles"
#: Step-metric hash: agent -> seconds its steps waited for permits.
STEP_THROTTLED_SECONDS_KEY = "step_throttled_seconds"
#: kombu's Redis transport: the priority steps, one list per step and queue, popped 0 first
#: (``orchestration.engine.priority`` maps a run's priority 0-9 onto them: every level its own list).
REDIS_PRIORITY_STEPS = (0, 1, 2, 3, 4, 5, 6, 7, 8, 9)
#: kombu's Redis transport: the hash of delivered messages not yet acknowledged (all queues).
KOMBU_UNACKED_KEY = "unacked"

# ----------------------------------------------------------------------------------------- statuses


class RunStatus(StrEnum):
    """The status of a run (``run.status``; the envelope's ``status``)."""

    #: Opened; no step has started yet.
    QUEUED = "queued"
    #: A step has started and the run has not ended.
    RUNNING = "running"
    #: Parked by a ``sleep`` or ``wait`` node: no message, no worker; a timer or an open wait in the
    #: store wakes it.
    WAITING = "waiting"
    #: Ended: the last step succeeded.
    SUCCEEDED = "succeeded"
    #: Ended: a step failed for good, the deadline passed, or the sweeper gave up on it.
    FAILED = "failed"
    #: Ended: cancelled on request.
    CANCELLED = "cancelled"


class StepStatus(StrEnum):
    """The status of a step record (``step_record.status``; a record's ``status`` in the envelope)."""

    #: Not tried yet, or waiting for its next try.
    PENDING = "pending"
    #: A try is in progress.
    RUNNING = "running"
    #: Done; its output is kept and never overwritten.
    SUCCEEDED = "succeeded"
    #: Its last try failed for good.
    FAILED = "failed"
    #: Will not run (an arm a branch did not take, a cancelled run's remaining step).
    SKIPPED = "skipped"


#: A record's ``note`` when its try ended after its run was cancelled (its outcome is kept as it was).
NOTE_AFTER_CANCEL = "finished after the run was cancelled"
#: A record's ``note`` when its try ended after its run's deadline (the run fails; the outcome is kept).
NOTE_AFTER_DEADLINE = "finished after the run's deadline"

#: Run statuses that never change again: a finished run.
TERMINAL_RUN_STATUSES = frozenset({RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.CANCELLED})
#: Run statuses whose steps still run (the gate every step passes, the sweeper's candidates).
LIVE_RUN_STATUSES = frozenset({RunStatus.QUEUED, RunStatus.RUNNING})
#: Run statuses that have not ended: live ones and ``waiting`` (what cancel, the deadline and
#: ``finish_run`` act on).
OPEN_RUN_STATUSES = LIVE_RUN_STATUSES | {RunStatus.WAITING}
#: Step statuses that end a try: the record gets its ``finished_at``.
FINISHED_STEP_STATUSES = frozenset({StepStatus.SUCCEEDED, StepStatus.FAILED, StepStatus.SKIPPED})
#: Step statuses that are final for the record: a redelivered step does not run again.
DONE_STEP_STATUSES = frozenset({StepStatus.SUCCEEDED, StepStatus.SKIPPED})
#: Step statuses of a record that has not finished (failed by the errback or the sweeper).
UNFINISHED_STEP_STATUSES = frozenset({StepStatus.PENDING, StepStatus.RUNNING})
