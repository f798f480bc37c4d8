#!/usr/bin/env python3
"""The upstream service and login page that scripts/demo runs behind tollgate.

Usage: demo-upstream.py PORT

Listens on 127.0.0.1:PORT (standard library only) and answers:

  GET /login  a short text page: where the authorization endpoint sends
              the user, i.e. the identity server's login page in the demo
  POST /hook  a token notification receiver: prints one line on stderr
              for each notification, with the tokens shortened
  anything    a JSON echo of what tollgate forwarded: method, path, query,
              headers and body, so the demo can show what reached upstream

It runs until it gets SIGTERM or SIGINT.
"""

import json
import signal
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlsplit

LOGIN_PAGE = (
    "Demo identity server: log the user in here, then ask tollgate for a\n"
    "code with POST /tyk/oauth/authorize-client on the control listener.\n"
)

# Bodies larger than this are not echoed back in full.
ECHO_LIMIT = 64 * 1024


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # The head and the body leave in two writes; without TCP_NODELAY the
    # body waits for the peer's delayed ACK, about 40 ms on every reused
    # keep-alive connection.
    disable_nagle_algorithm = True
    server_version = "demo-upstream"

    def handle_any(self):
        url = urlsplit(self.path)
        if url.path == "/login" and self.command in ("GET", "HEAD"):
            self.reply(200, "text/plain; charset=utf-8", LOGIN_PAGE.encode())
            return
        if url.path == "/hook" and self.command == "POST":
            self.receive_notification()
            return

        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(min(length, ECHO_LIMIT)) if length else b""
        echo = {
            "upstream": "demo-upstream",
            "method": self.command,
            "path": url.path,
            "query": dict(parse_qsl(url.query, keep_blank_values=True)),
            "headers": {name.lower(): value for name, value in self.headers.items()},
            "body": body.decode("utf-8", errors="replace"),
        }
        self.reply(200, "application/json", json.dumps(echo, indent=2).encode())

    def receive_notification(self):
        length = int(self.headers.get("Content-Length") or 0)
        try:
            note = json.loads(self.rfile.read(length) if length else b"{}")
        except ValueError:
            self.reply(400, "text/plain", b"not JSON\n")
            return
        # Enough of each token to match it up, not enough to use it.
        short = lambda token: (token[:6] + "...") if token else "-"
        sys.stderr.write(
            "demo-upstream: token notification: type=%s client_id=%s "
            "new_oauth_token=%s refresh_token=%s old_refresh_token=%s "
            "shared secret %s\n"
            % (
                note.get("notification_type"),
                note.get("client_id"),
                short(note.get("new_oauth_token")),
                short(note.get("refresh_token")),
                short(note.get("old_refresh_token")),
                "present" if self.headers.get("X-Tyk-Shared-Secret") else "missing",
            )
        )
        sys.stderr.flush()
        self.reply(204, "text/plain", b"")

    def reply(self, status, content_type, payload):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = handle_any

    def log_message(self, format, *args):
        sys.stderr.write("demo-upstream: %s %s\n" % (self.address_string(), format % args))


def main():
    if len(sys.argv) != 2 or not sys.argv[1].isdigit():
        sys.exit("usage: demo-upstream.py PORT")
    server = ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler)
    server.daemon_threads = True

    def stop(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
