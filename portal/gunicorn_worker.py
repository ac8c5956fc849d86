"""The web server's worker: gunicorn's process management around uvicorn, serving the ASGI application.

Why ASGI: a streamed completion waits on its worker for as long as it generates (seconds to
minutes) while sending a few bytes now and then. Under gunicorn's threaded worker each open stream
held a thread, so the threads (2 x 16) capped the streams the portal could hold; on the event loop
an idle stream costs a coroutine and a Redis connection (inference/apis/openai_compat.py,
`_astream`). Synchronous views (everything else) still run in a thread each, as Django's ASGI
handler runs them.

uvicorn answers a request it cannot parse (bad HTTP, headers too large) itself, before Django
sees it. Its headers were not read, so whether the caller is the API or a browser is unknown: the
answer is the JSON error shape, which every client of the API parses, with a sentence a person can
read, and the status h11 names (431 for headers too large).
"""

from __future__ import annotations

import json
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import DEFAULT_MAX_INCOMPLETE_EVENT_SIZE, H11Protocol
from uvicorn_worker import UvicornWorker

MESSAGES = {
    400: "The request is not valid HTTP.",
    414: "The request's URL is longer than the server accepts.",
    431: "The request's headers are larger than the server accepts (too many, or one too long).",
}
REASONS = {400: "Bad Request", 414: "URI Too Long", 431: "Request Header Fields Too Large"}


def json_error(status: int) -> tuple[str, bytes]:
    reason = REASONS.get(status, "Bad Request")
    body = json.dumps({"error": {"code": reason.lower().replace(" ", "_"),
                                 "message": MESSAGES.get(status, MESSAGES[400]), "details": {}}})
    return reason, body.encode()


# gunicorn's limits, which the portal kept before it served ASGI (h11 bounds only a head that has
# not arrived whole, at 16 KiB).
LIMIT_REQUEST_LINE, LIMIT_FIELD_SIZE, LIMIT_FIELDS = 4094, 8190, 100


class _Connection(h11.Connection):
    """h11's connection, with gunicorn's limits on a request's head, remembering the status its last
    protocol error suggests."""

    error_status = 400

    def next_event(self) -> Any:
        try:
            event = super().next_event()
            if isinstance(event, h11.Request):
                if len(event.target) > LIMIT_REQUEST_LINE:
                    raise h11.RemoteProtocolError("request line too long", error_status_hint=414)
                if len(event.headers) > LIMIT_FIELDS or any(
                        len(name) + len(value) + 2 > LIMIT_FIELD_SIZE for name, value in event.headers):
                    raise h11.RemoteProtocolError("request headers too large", error_status_hint=431)
            return event
        except h11.RemoteProtocolError as exc:
            self.error_status = exc.error_status_hint
            raise


class JsonErrorH11Protocol(H11Protocol):
    def __init__(self, config: Any, *args: Any, **kwargs: Any) -> None:
        super().__init__(config, *args, **kwargs)
        self.conn = _Connection(h11.SERVER, config.h11_max_incomplete_event_size or DEFAULT_MAX_INCOMPLETE_EVENT_SIZE)

    def send_400_response(self, msg: str) -> None:
        status = getattr(self.conn, "error_status", 400)
        status = status if status in REASONS else 400
        reason, body = json_error(status)
        # h11 is in its error state and writes nothing more: the answer is written as bytes.
        head = (f"HTTP/1.1 {status} {reason}\r\nConnection: close\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(body)}\r\n\r\n").encode("latin1")
        self.transport.write(head + body)
        self.transport.close()


class AsgiWorker(UvicornWorker):
    CONFIG_KWARGS = {"loop": "asyncio", "http": JsonErrorH11Protocol, "lifespan": "off"}
