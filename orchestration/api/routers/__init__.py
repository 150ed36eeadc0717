"""The API's routers, one per resource. :data:`API_ROUTERS` is what the app factory includes."""

from __future__ import annotations

from fastapi import APIRouter

from orchestration.api.routers import (
    bulk,
    campaigns,
    deadletters,
    events,
    flows,
    health,
    rejected,
    runs,
    unsubscribe,
    webhooks,
)

API_ROUTERS: tuple[APIRouter, ...] = (
    health.router,
    events.router,
    webhooks.router,
    bulk.router,  # before runs: /v1/runs/bulk/retry would match /v1/runs/{run_id}/retry
    runs.router,
    rejected.router,
    deadletters.router,
    campaigns.router,
    flows.router,
    unsubscribe.router,
)
