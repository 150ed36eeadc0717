"""How ``campaignflow api`` serves the app: uvicorn, one process (run more replicas behind a load
balancer for more), access log off (the API logs its errors), proxy headers only from loopback."""

from __future__ import annotations

import uvicorn
from fastapi import FastAPI

DEFAULT_PORT = 8080
DEFAULT_ADDRESS = "127.0.0.1"


def serve(app: FastAPI, *, address: str, port: int, access_log: bool = False) -> None:
    """Serve ``app`` until SIGINT or SIGTERM (uvicorn finishes the requests in flight)."""
    uvicorn.run(
        app,
        host=address,
        port=port,
        access_log=access_log,
        log_level="info",
        server_header=False,
        timeout_graceful_shutdown=30,
    )
