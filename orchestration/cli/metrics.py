"""``campaignflow metrics serve|show``: the Prometheus endpoint of a deployment."""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer

from orchestration.runtime import current

if TYPE_CHECKING:
    from prometheus_client.registry import CollectorRegistry

metrics_app = typer.Typer(help="Prometheus metrics: runs, steps, retries, queue depth.", no_args_is_help=True)

DEFAULT_PORT = 9808


def _registry() -> CollectorRegistry:
    app = current().app
    from orchestration.ops.metrics import registry

    return registry([q.name for q in app.conf.task_queues])


@metrics_app.command("serve")
def serve(
    port: int = typer.Option(DEFAULT_PORT, "--port", help="HTTP port of /metrics."),
    address: str = typer.Option("127.0.0.1", "--address", help="Interface; the endpoint has no auth."),
) -> None:
    """Serve /metrics; every scrape reads the run store, the broker and the workers' step metrics."""
    from wsgiref.simple_server import WSGIRequestHandler, make_server

    from prometheus_client import make_wsgi_app

    class QuietHandler(WSGIRequestHandler):
        def log_message(self, format: str, *args: object) -> None:  # one line per scrape is noise
            pass

    server = make_server(address, port, make_wsgi_app(_registry()), handler_class=QuietHandler)
    typer.echo(f"metrics: http://{address}:{server.server_port}/metrics", err=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


@metrics_app.command("show")
def show() -> None:
    """Print the metrics once, in the Prometheus text format."""
    from prometheus_client import generate_latest

    typer.echo(generate_latest(_registry()).decode(), nl=False)
