"""The sending guards a step gives its agent (``ctx.guards``, ``agents.context.SendGuards``): the
suppression list, the frequency caps, the per-domain backoff and the unsubscribe headers, over the
store's tables and this process's settings. The agent decides when to ask; these decide the answer.

One step, one message: the caps count the step's idempotency key (``run_id:step_id``), so a retried
or redelivered send is counted once, and a send that failed for good gives its slot back.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

from orchestration.errors import ConfigurationError
from orchestration.settings import Settings, get_settings
from orchestration.store import domains, frequency, send_checks, sql_engine, suppression
from orchestration.store.base import utcnow
from orchestration.store.db import autocommit
from orchestration.unsubscribe import headers, normal_address


class _NotConfigured(ConfigurationError):
    """Raised when a setting the guards need is missing: no other try can help."""

    retryable = False


SUPPRESSED_NOTE = "suppressed: {address} is on the suppression list ({reason}, since {since}, from {source})"


def caps_of(settings: Settings) -> frequency.Caps:
    return frequency.Caps(
        day=settings.frequency_cap_day,
        week=settings.frequency_cap_week,
        campaign_day=settings.frequency_cap_campaign_day,
        campaign_week=settings.frequency_cap_campaign_week,
    )


def local_day(timezone: str | None, now: datetime | None = None) -> date:
    """Today in ``timezone`` (an IANA name; None: UTC)."""
    now = now or datetime.now(UTC)
    return now.astimezone(ZoneInfo(timezone)).date() if timezone else now.astimezone(UTC).date()


def _suppressed(checks: send_checks.Checks) -> str | None:
    entry = checks.suppressed
    if entry is None:
        return None
    since = entry.created_at.date().isoformat()
    return SUPPRESSED_NOTE.format(
        address=entry.address, reason=entry.reason, since=since, source=entry.source
    )


class StepGuards:
    """The guards of one step of one run (``campaign``: the run's)."""

    def __init__(self, run_id: str, step_id: str, campaign: str | None = None) -> None:
        self.key = f"{run_id}:{step_id}"
        self.campaign = campaign
        self._domains: dict[str, domains.State] = {}

    def admit(self, recipient: str, *, marketing: bool, timezone: str | None = None) -> str | None:
        """Why this step must not send to ``recipient``, or None: it may, and (a marketing message)
        it is counted against the caps. One statement reads the suppression list, the domain's
        backoff and, under the recipient's row lock, the caps' usage; the count is added in the
        same transaction."""
        address = normal_address(recipient)
        domain = address.rpartition("@")[2]
        caps = caps_of(get_settings())
        if not marketing or not caps.any:
            with autocommit() as conn:
                checks = send_checks.read(conn, address, domain)
            self._domains[domain] = checks.domain
            return _suppressed(checks)
        day = local_day(timezone)
        usage = frequency.usage(key=self.key, recipient=address, campaign=self.campaign, day=day)
        with sql_engine().begin() as conn:
            frequency.lock(conn, address)
            checks = send_checks.read(conn, address, domain, usage)
            self._domains[domain] = checks.domain
            assert checks.used is not None
            why = _suppressed(checks) or frequency.verdict(checks.used, caps, day, self.campaign)
            if why is None:
                frequency.add(conn, key=self.key, recipient=address, campaign=self.campaign, day=day)
        return why

    def release(self) -> None:
        """The message was not sent after all (it failed for good): its slot under the caps is free."""
        with autocommit() as conn:
            frequency.release(conn, self.key)

    def suppress(self, recipient: str, reason: str, source: str, detail: str | None = None) -> bool:
        """Put ``recipient`` on the suppression list; False when it was already (logged either way)."""
        with sql_engine().begin() as conn:
            return suppression.add(conn, normal_address(recipient), reason, source, detail)

    def bounced(self, recipient: str, reply: str) -> None:
        """A hard bounce (SMTP 550) while this step sent: the address is suppressed."""
        self.suppress(recipient, "bounced", f"smtp:{self.key}", reply)

    def domain_wait(self, domain: str) -> float:
        """Seconds ``domain`` stays paused after its deferrals (0: send now); as :meth:`admit`
        read it when it did, else read now."""
        domain = domain.lower()
        state = self._domains.get(domain)
        if state is None:
            with autocommit() as conn:
                state = self._domains[domain] = domains.state(conn, domain)
        return state.wait(utcnow())

    def deferred(self, domain: str, reply: str) -> float:
        """``domain`` deferred the message (SMTP 4xx): pause it longer; the pause, in seconds."""
        settings = get_settings()
        with sql_engine().begin() as conn:
            state = domains.defer(
                conn,
                domain.lower(),
                reply,
                base=settings.domain_backoff_seconds,
                ceiling=settings.domain_backoff_max_seconds,
            )
        return state.wait(utcnow())

    def delivered(self, domain: str) -> None:
        """A message to ``domain`` went through: one deferral recovered (nothing to write when the
        domain had none when this step looked)."""
        state = self._domains.get(domain.lower())
        if state is None or state.strikes > 0:
            with sql_engine().begin() as conn:
                domains.recover(conn, domain.lower())

    def unsubscribe_headers(self, recipient: str) -> dict[str, str]:
        """``List-Unsubscribe`` and ``List-Unsubscribe-Post`` for a marketing message to ``recipient``."""
        s = get_settings()
        if not s.unsubscribe_secret or not (s.unsubscribe_url or s.unsubscribe_mailto):
            raise _NotConfigured(
                "a marketing message needs List-Unsubscribe: set CAMPAIGNFLOW_UNSUBSCRIBE_SECRET and "
                "CAMPAIGNFLOW_UNSUBSCRIBE_URL (https, the API's /v1/unsubscribe) and/or "
                "CAMPAIGNFLOW_UNSUBSCRIBE_MAILTO; or send it as message_class: transactional"
            )
        return headers(
            recipient, secret=s.unsubscribe_secret, url=s.unsubscribe_url, mailto=s.unsubscribe_mailto
        )
