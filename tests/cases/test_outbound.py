"""Reminders also leave through the outbound channel: a webhook receives them as JSON."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

from sqlalchemy import select

from app.extensions import db
from app.models import OutboundMessage
from app.services import notify


def _server(status: int, received: list[dict]) -> HTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
            length = int(self.headers["Content-Length"])
            received.append(json.loads(self.rfile.read(length)))
            self.send_response(status)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def test_queued_notices_are_posted_and_failures_retried(app, published, point, send, clock):
    app.config["NOTIFY_WEBHOOK_URL"] = "http://127.0.0.1:9/unused"
    try:
        point("GAS-MH-0001", "gas")
        case_no = send("gas", "ch4_lel", 60.0, "GAS-MH-0001")["case_no"]
    finally:
        app.config["NOTIFY_WEBHOOK_URL"] = ""
    received: list[dict] = []
    failing, working = _server(500, received), _server(200, received)
    try:
        with app.app_context():
            queued = db.session.scalars(select(OutboundMessage)).all()
            assert queued and all(m.payload["case_no"] == case_no for m in queued)
            url = f"http://127.0.0.1:{failing.server_port}/hook"
            sent, failed = notify.deliver_pending(notify.WebhookChannel(url), now=clock())
            assert (sent, failed) == (0, len(queued))
            assert all(m.status == "pending" and m.attempts == 1 for m in queued)
            url = f"http://127.0.0.1:{working.server_port}/hook"
            sent, failed = notify.deliver_pending(notify.WebhookChannel(url), now=clock())
            assert (sent, failed) == (len(queued), 0)
            assert all(m.status == "sent" for m in queued)
        assert {r["kind"] for r in received} == {"push"}
        assert len(received) == 2 * len(queued)
    finally:
        for server in (failing, working):
            server.shutdown()
            server.server_close()
