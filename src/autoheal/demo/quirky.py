"""A tiny service with one quirk, for the judging drills (issue 23).

* ``--exit-at-start CODE``: exits with ``CODE`` at once (a configuration error: 78,
  ``EX_CONFIG``), the ``config_error_exit`` drill.
* ``--port PORT --flap-file FILE``: serves ``GET /health`` on ``127.0.0.1:PORT``:
  200 while ``FILE`` is absent; once it exists, 503 and 200 in turn, one per request
  (a probe that flaps 1-0-1-0 exactly, whatever the probe's timing), the
  ``flapping_probe`` drill. A new process removes ``FILE`` at its start: the restart
  is what heals it.

Stdlib only; stops on SIGTERM.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from http.server import BaseHTTPRequestHandler, HTTPServer
from types import FrameType


class _Health(BaseHTTPRequestHandler):
    server: _FlapServer

    def do_GET(self) -> None:
        status = self.server.next_status()
        body = b'{"ok": true}' if status == 200 else b'{"ok": false}'
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass  # ten requests a second: the log would be all of them


class _FlapServer(HTTPServer):
    def __init__(self, port: int, flap_file: str) -> None:
        super().__init__(("127.0.0.1", port), _Health)
        self.flap_file = flap_file
        self.flapped = 0

    def next_status(self) -> int:
        if not os.path.exists(self.flap_file):
            return 200
        self.flapped += 1
        return 503 if self.flapped % 2 == 1 else 200


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="autoheal.demo.quirky")
    parser.add_argument("--exit-at-start", type=int, default=None)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--flap-file", default="")
    args = parser.parse_args(argv)
    if args.exit_at_start is not None:
        print(f"quirky: exiting with {args.exit_at_start} at start", flush=True)
        return int(args.exit_at_start)
    if args.flap_file and os.path.exists(args.flap_file):
        os.remove(args.flap_file)
    server = _FlapServer(args.port, args.flap_file)

    def on_term(signum: int, frame: FrameType | None) -> None:
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, on_term)
    print(f"quirky: serving on 127.0.0.1:{server.server_address[1]}", flush=True)
    try:
        server.serve_forever(poll_interval=0.1)
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
