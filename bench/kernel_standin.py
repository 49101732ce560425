"""A stand-in for many single-user servers at once (named as such): the bench's light spawner
points every server at this one process, which answers the hub's "is it up?" check and the
kernels API the culler uses. Two kernels per server: one idle for years (with
--remember-deletes, gone once culled),
one busy now.

    python bench/kernel_standin.py PORT [--remember-deletes]
"""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def _send(self, status: int, body: bytes = b"", kind: str = "application/json") -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if body:
            self.wfile.write(body)

    # With --remember-deletes (bench/hub_load.py): kernels shut down through the API, per
    # server (the path before /api/kernels), are gone afterwards, as on a real server. Without
    # it (bench/culler.py) every pass finds the same idle kernel to cull.
    remember = False
    deleted: set[tuple[str, str]] = set()

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        path = self.path.split("?", 1)[0]
        if path.endswith("/api/kernels"):
            now = datetime.now(UTC).isoformat()
            server = path[: -len("/api/kernels")]
            kernels = [
                {
                    "id": "idle-kernel",
                    "name": "python3",
                    "last_activity": "2020-01-01T00:00:00+00:00",
                    "execution_state": "idle",
                    "connections": 0,
                },
                {
                    "id": "busy-kernel",
                    "name": "python3",
                    "last_activity": now,
                    "execution_state": "busy",
                    "connections": 1,
                },
            ]
            kernels = [k for k in kernels if (server, k["id"]) not in self.deleted]
            self._send(200, json.dumps(kernels).encode())
            return
        self._send(200, b"{}")

    def do_DELETE(self) -> None:  # noqa: N802
        path = self.path.split("?", 1)[0]
        server, _, kernel = path.rpartition("/api/kernels/")
        if kernel and self.remember:
            self.deleted.add((server, kernel))
        self._send(204)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        return


def main() -> None:
    Handler.remember = "--remember-deletes" in sys.argv[2:]
    server = ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler)
    server.daemon_threads = True
    server.serve_forever()


if __name__ == "__main__":
    main()
