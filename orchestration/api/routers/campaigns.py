"""``GET|POST /v1/campaigns``, ``GET|PATCH|DELETE /v1/campaigns/{name}``."""

from __future__ import annotations

from fastapi import APIRouter, Response
from pydantic import ValidationError

from orchestration.api.auth import Operator, Reader
from orchestration.api.schemas.campaigns import CampaignOut, CampaignPatch
from orchestration.control import campaigns
from orchestration.control.campaigns import CampaignSpec
from orchestration.errors import FieldError
from orchestration.flows.validate import format_loc

router = APIRouter(prefix="/v1/campaigns", tags=["campaigns"])


@router.get("", response_model=list[CampaignOut], summary="List campaigns")
def list_campaigns(_: Reader) -> list[CampaignOut]:
    return [CampaignOut.of(row) for row in campaigns.list_campaigns()]


@router.post("", response_model=CampaignOut, status_code=201, summary="Add a campaign")
def add_campaign(spec: CampaignSpec, _: Operator) -> CampaignOut:
    """The next campaign tick schedules it; 409 when the name is taken."""
    campaigns.add_campaign(spec)
    return CampaignOut.of(campaigns.get_campaign(spec.name))


@router.get("/{name}", response_model=CampaignOut, summary="A campaign")
def get_campaign(name: str, _: Reader) -> CampaignOut:
    return CampaignOut.of(campaigns.get_campaign(name))


@router.patch("/{name}", response_model=CampaignOut, summary="Change, pause or resume a campaign")
def patch_campaign(name: str, patch: CampaignPatch, _: Operator) -> CampaignOut:
    """The fields given replace the stored ones (the schedule: give ``every_seconds`` or ``cron``,
    and null for the other)."""
    current = campaigns.spec_of(campaigns.get_campaign(name))
    changes = patch.model_dump(exclude_unset=True)
    enabled = changes.pop("enabled", None)
    if changes:
        try:
            spec = CampaignSpec.model_validate({**current.model_dump(), **changes})
        except ValidationError as exc:
            problems = [f"{format_loc(e['loc']) or 'campaign'}: {e['msg']}" for e in exc.errors()]
            raise FieldError(problems, subject=f"campaign {name!r}") from None
        campaigns.add_campaign(spec, replace=True)
    if enabled is not None:
        campaigns.set_enabled(name, enabled)
    return CampaignOut.of(campaigns.get_campaign(name))


@router.delete("/{name}", status_code=204, response_class=Response, summary="Delete a campaign")
def delete_campaign(name: str, _: Operator) -> Response:
    """Its schedule ends; the runs it started stay."""
    campaigns.remove_campaign(name)
    return Response(status_code=204)
