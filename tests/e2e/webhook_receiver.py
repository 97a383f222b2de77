"""A webhook receiver for the tests: records every POST to a file; answers 500 to the first N."""

from __future__ import annotations

import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


def main() -> None:
    port, log, failures = int(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])
    seen = {"count": 0}

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - the http.server API
            body = self.rfile.read(int(self.headers.get("content-length", 0)))
            seen["count"] += 1
            status = 500 if seen["count"] <= failures else 204
            with log.open("a") as out:
                out.write(json.dumps({"status": status, "headers": dict(self.headers), "body": body.decode()}) + "\n")
            self.send_response(status)
            self.send_header("content-length", "0")
            self.end_headers()

        def do_GET(self) -> None:  # noqa: N802 - readiness probe
            self.send_response(200)
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            return

    ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()


if __name__ == "__main__":
    main()
