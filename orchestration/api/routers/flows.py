"""``GET /v1/flows``, ``GET /v1/flows/{name}/graph`` (Mermaid text, as ``campaignflow flows graph``)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import PlainTextResponse
from pydantic import BaseModel

from orchestration.api.auth import Reader
from orchestration.api.schemas.common import ERROR_RESPONSES
from orchestration.flows.graph import to_mermaid
from orchestration.runtime import current

router = APIRouter(prefix="/v1/flows", tags=["flows"])


class FlowOut(BaseModel):
    name: str
    version: str
    steps: int
    description: str | None


@router.get("", response_model=list[FlowOut], summary="List flows")
def list_flows(_: Reader) -> list[FlowOut]:
    return [
        FlowOut(
            name=f.name,
            version=f.version,
            steps=sum(1 for n in f.walk() if n.kind == "step"),
            description=f.description,
        )
        for f in current().flows
    ]


@router.get(
    "/{name}/graph",
    response_class=PlainTextResponse,
    responses={
        200: {"content": {"text/plain": {"schema": {"type": "string"}}}},
        # the errors stay JSON: said here, since this route's answers default to text/plain
        **{
            status: {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}}
            for status in ERROR_RESPONSES
        },
    },
    summary="A flow's graph as Mermaid text",
)
def flow_graph(name: str, _: Reader) -> PlainTextResponse:
    return PlainTextResponse(to_mermaid(current().flows.get(name)))
