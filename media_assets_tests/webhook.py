"""A real HTTP receiver on 127.0.0.1 that records the JSON bodies POSTed to it."""

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Receiver:
    url: str
    bodies: list[dict] = field(default_factory=list)
    fail_next: int = 0  # answer this many requests with HTTP 503 first

    def sources(self) -> list[str]:
        return [b["media_assets"]["source"] for b in self.bodies]


@contextmanager
def webhook_receiver() -> Iterator[Receiver]:
    receiver = Receiver(url="")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - the http.server API
            body = self.rfile.read(int(self.headers["Content-Length"]))
            if receiver.fail_next:
                receiver.fail_next -= 1
                self.send_response(503)
            else:
                receiver.bodies.append(json.loads(body))
                self.send_response(200)
            self.end_headers()

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    receiver.url = f"http://127.0.0.1:{server.server_port}/hooks/alerts"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()
