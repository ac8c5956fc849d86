"""gunicorn's threaded worker, whose own error answers are in the API's error shape.

gunicorn answers a request it cannot parse (headers too large: 431, a URL too long: 414, bad
HTTP: 400) itself, before Django sees it, with a small HTML page. Its headers were not read,
so whether the caller is the API or a browser is unknown: the answer is the JSON error shape,
which every client of the API parses, with a sentence a person can read.
"""

from __future__ import annotations

import json
from typing import Any

from gunicorn import util
from gunicorn.workers.gthread import ThreadWorker as _ThreadWorker

MESSAGES = {
    400: "The request is not valid HTTP.",
    403: "The request is refused.",
    414: "The request's URL is longer than the server accepts.",
    417: "The request's Expect header cannot be met.",
    431: "The request's headers are larger than the server accepts (too many, or one too long).",
    500: "Something went wrong on our side. It has been logged.",
    501: "The request's transfer coding is not supported.",
}


def write_json_error(sock: Any, status_int: int, reason: str, mesg: str) -> None:
    code = reason.lower().replace(" ", "_").replace("-", "_") or "bad_request"
    body = json.dumps({"error": {"code": code, "message": MESSAGES.get(status_int, f"{reason}."),
                                 "details": {}}}).encode()
    head = (f"HTTP/1.1 {status_int} {reason}\r\nConnection: close\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode("latin1")
    util.write_nonblock(sock, head + body)


class ThreadWorker(_ThreadWorker):
    def init_process(self) -> None:
        util.write_error = write_json_error  # what gunicorn's handle_error writes with, in this process
        super().init_process()
