"""A small OpenAI-compatible chat endpoint for the tests (http.server in a thread on 127.0.0.1).

``script`` is the list of answers to give, in order: an int is an HTTP error status, a string is the
content of a 200 chat completion, a dict is a 200 answer of that JSON (not a chat completion),
``("sleep", seconds)`` waits before answering with ``default``; after the script
every request gets ``default`` (any of these but a sleep: ``FakeLLM(default=503)`` is an endpoint that is
down). Every request is kept (path, headers, JSON body).
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

Answer = int | str | tuple[str, float] | dict[str, Any]


class FakeLLM:
    def __init__(
        self, script: list[Answer] | None = None, default: Answer = "Subject: Hello\n\nHi there."
    ) -> None:
        self.script = list(script or [])
        self.default = default
        self.requests: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def _next(self) -> Answer:
        with self.lock:
            return self.script.pop(0) if self.script else self.default

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                return

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = json.loads(self.rfile.read(length) or b"null")
                with fake.lock:
                    fake.requests.append({"path": self.path, "headers": dict(self.headers), "json": body})
                answer = fake._next()
                if isinstance(answer, tuple):
                    time.sleep(answer[1])
                    answer = fake.default
                    assert not isinstance(answer, tuple), "default cannot be a sleep"
                if self.path != "/v1/chat/completions":
                    self._send(404, {"error": {"message": f"no route {self.path}"}})
                elif isinstance(answer, dict):
                    self._send(200, answer)
                elif isinstance(answer, int):
                    self._send(answer, {"error": {"message": f"scripted {answer}"}})
                else:
                    completion = {
                        "id": "chatcmpl-test",
                        "object": "chat.completion",
                        "model": body.get("model"),
                        "choices": [{"index": 0, "message": {"role": "assistant", "content": answer}}],
                    }
                    self._send(200, completion)

            def _send(self, status: int, payload: dict[str, Any]) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                if status == 429:
                    self.send_header("Retry-After", "1")
                self.end_headers()
                self.wfile.write(data)

        return Handler

    def __enter__(self) -> FakeLLM:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
