"""The tests' live server: the portal's ASGI application under uvicorn, as `serve` runs it.

pytest-django's `live_server` is Django's threaded WSGI server, which holds a thread per open
stream and buffers a stream whose content is asynchronous: the OpenAI surface would be tested on a
path production does not take. This one keeps pytest-django's interface (`url`, `+`, the
ALLOWED_HOSTS it appends) so that tests and the browser fixtures use it unchanged.
"""

from __future__ import annotations

import asyncio
import socket
import threading
from typing import Any

from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler
from django.core.asgi import get_asgi_application
from django.core.signals import request_finished
from django.db import connections
from django.test.utils import modify_settings


def _close_request_connections(**_: Any) -> None:
    # Each request's synchronous part runs in a thread made for it (Django's ASGI handler), whose
    # connection would otherwise stay open until the thread is collected. Production takes them
    # from a pool (DB_POOL); here each request opens its own and closes it. The main thread is the
    # tests' own (Django's test client), whose connection holds the test's transaction.
    if threading.current_thread() is not threading.main_thread():
        connections.close_all()


class AsgiLiveServer:
    def __init__(self, host: str = "127.0.0.1") -> None:
        import uvicorn

        from portal.gunicorn_worker import AsgiWorker

        self.host = host
        self._live_server_modified_settings = modify_settings(ALLOWED_HOSTS={"append": host})
        self._socket = socket.socket()
        self._socket.bind((host, 0))
        self.port = int(self._socket.getsockname()[1])
        config = uvicorn.Config(ASGIStaticFilesHandler(get_asgi_application()), log_level="warning",
                                **AsgiWorker.CONFIG_KWARGS)
        self.server = uvicorn.Server(config)
        self.started = threading.Event()
        self.thread = threading.Thread(target=self._run, name="asgi-live-server", daemon=True)
        request_finished.connect(_close_request_connections, dispatch_uid="asgi-live-server")
        self.thread.start()
        if not self.started.wait(60):
            raise RuntimeError("the ASGI live server did not start")

    def _run(self) -> None:
        async def serve() -> None:
            task = asyncio.create_task(self.server.serve(sockets=[self._socket]))
            while not self.server.started and not task.done():
                await asyncio.sleep(0.01)
            self.started.set()
            await task

        asyncio.run(serve())

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(30)
        request_finished.disconnect(dispatch_uid="asgi-live-server")
        self._socket.close()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def __str__(self) -> str:
        return self.url

    def __add__(self, other: str) -> str:
        return f"{self}{other}"

    def __repr__(self) -> str:
        return f"<AsgiLiveServer listening at {self.url}>"
