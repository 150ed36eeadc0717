"""The interactive API documentation at ``/docs``: Swagger UI served from the package (vendored
``swagger-ui-dist`` 5.35.0, Apache-2.0, in ``static/swagger-ui/``), so it works on a network that
reaches no CDN."""

from __future__ import annotations

from importlib.resources import files

from fastapi import APIRouter, HTTPException
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, Response

ASSETS = "/docs/assets"
#: The vendored files and their types; nothing else under ``ASSETS`` is served.
_TYPES = {
    "swagger-ui-bundle.js": "text/javascript; charset=utf-8",
    "swagger-ui.css": "text/css; charset=utf-8",
    "favicon-32x32.png": "image/png",
}

router = APIRouter(include_in_schema=False)


@router.get("/docs")
def swagger_ui() -> HTMLResponse:
    """Swagger UI over ``/openapi.json``, with its script and style from this server."""
    return get_swagger_ui_html(
        openapi_url="/openapi.json",
        title="campaignflow API",
        swagger_js_url=f"{ASSETS}/swagger-ui-bundle.js",
        swagger_css_url=f"{ASSETS}/swagger-ui.css",
        swagger_favicon_url=f"{ASSETS}/favicon-32x32.png",
    )


@router.get(ASSETS + "/{name}")
def swagger_asset(name: str) -> Response:
    """One vendored Swagger UI file (cached for a day: they change only with a release)."""
    if name not in _TYPES:
        raise HTTPException(status_code=404, detail=f"no asset {name!r}")
    body = files("orchestration.api").joinpath("static", "swagger-ui", name).read_bytes()
    return Response(body, media_type=_TYPES[name], headers={"Cache-Control": "public, max-age=86400"})
