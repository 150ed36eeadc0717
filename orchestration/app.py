"""The module Celery's own command line loads: ``celery -A orchestration.app worker|beat|inspect``.

Importing it wires the process (:func:`orchestration.bootstrap.bootstrap`) and exposes the app. It
is an entry point: code inside ``orchestration`` never imports it; it reads
:func:`orchestration.runtime.current` instead.
"""

from __future__ import annotations

from orchestration.bootstrap import bootstrap

runtime = bootstrap()
app = runtime.app
