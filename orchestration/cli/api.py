"""``campaignflow api``: the HTTP API (OpenAPI at /docs) and the web console (at /), with the tokens
from the settings."""

from __future__ import annotations

import typer

from orchestration.cli.common import fail


def api(
    port: int = typer.Option(8080, "--port", min=1, max=65535, help="HTTP port."),
    address: str = typer.Option("127.0.0.1", "--address", help="Interface to listen on."),
    no_auth: bool = typer.Option(
        False, "--no-auth", help="Serve without authentication on purpose (every caller may act)."
    ),
    access_log: bool = typer.Option(False, "--access-log", help="Log every request."),
) -> None:
    """Serve the HTTP API and the web console with the tokens of CAMPAIGNFLOW_API_TOKENS
    (name:token:role, role read or operate); refuses to start without them unless --no-auth."""
    from orchestration.api import console
    from orchestration.api.app import create_app, tokens_from
    from orchestration.api.server import serve
    from orchestration.errors import ConfigurationError
    from orchestration.settings import get_settings

    try:
        tokens = tokens_from(get_settings(), no_auth=no_auth)
    except ConfigurationError as exc:
        fail(str(exc), code=2)
        return
    mode = f"{len(tokens)} token(s)" if tokens is not None else "NO AUTH"
    typer.echo(
        f"campaignflow api: http://{address}:{port} ({mode}); the console at /, OpenAPI at /docs", err=True
    )
    serve(console.install(create_app(tokens=tokens)), address=address, port=port, access_log=access_log)
