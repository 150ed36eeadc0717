"""The HTTP API (``campaignflow api``): FastAPI over the control plane, OpenAPI at ``/docs``.

``app`` (the factory), ``auth`` (bearer tokens), ``errors`` (one error body), ``limits`` (request
size), ``query`` (unknown parameters), ``cursor`` (keyset pages), ``signatures`` (signed webhooks),
``ingest`` (event bodies), ``filters``, ``schemas/`` and ``routers/`` (one per resource), ``server``
(uvicorn), and ``console/`` (the web console at ``/``). Beside the CLI, above the control plane: no SQL
here, the store does it.
"""
