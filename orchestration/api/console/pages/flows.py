"""``GET /flows``: the flows of the catalog and the versions that ran; ``GET /flows/{name}``: its
graph (the catalog's version, or an older one as its runs kept it) and its versions."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import HTMLResponse

from orchestration.api.console import graph
from orchestration.api.console.web import Viewer, page
from orchestration.flows.graph import to_mermaid
from orchestration.flows.model import Flow
from orchestration.runtime import current
from orchestration.store import insights, sql_engine

router = APIRouter(tags=["console"], include_in_schema=False)


@router.get("/flows", response_class=HTMLResponse)
def flows_page(visit: Viewer) -> HTMLResponse:
    catalog = sorted(current().flows, key=lambda f: f.name)
    with sql_engine().connect() as conn:
        versions = {f.name: insights.flow_versions(conn, f.name) for f in catalog}
    rows = [
        {
            "flow": f,
            "steps": sum(1 for n in f.walk() if n.kind == "step"),
            "versions": versions[f.name],
        }
        for f in catalog
    ]
    return page(visit, "flows.html", rows=rows)


@router.get("/flows/{name}", response_class=HTMLResponse)
def flow_page(
    name: str, visit: Viewer, version: Annotated[str | None, Query(max_length=40)] = None
) -> HTMLResponse:
    catalog = current().flows.get(name)
    with sql_engine().connect() as conn:
        versions = insights.flow_versions(conn, name)
        stored = (
            insights.flow_def_of_version(conn, name, version)
            if version and version != catalog.version
            else None
        )
    flow = Flow.model_validate(stored) if stored else catalog
    return page(
        visit,
        "flow.html",
        flow=flow,
        catalog=catalog,
        versions=versions,
        graph=graph.flow_svg(flow),
        mermaid=to_mermaid(flow),
        missing=bool(version and version != catalog.version and stored is None),
        asked=version,
    )
