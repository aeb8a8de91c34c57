"""The site under a real ASGI server (uvicorn) in a thread of the test process, on 127.0.0.1.

pytest-django's ``live_server`` is a WSGI server: a Server-Sent Events stream there would hold a worker
and never see the browser leave (the stream views answer 503 under WSGI). The real-time tests serve the
same Django application with uvicorn instead, as scripts/run and scripts/serve do, so the stream views,
their disconnect handling and the bus (an ``InProcessBus`` shared with the test) are the real ones.

The server's threads open their own database connections: with the test database in SQLite's shared
in-memory mode (or MariaDB) they see what the test wrote, so the tests that use it are
``django_db(transaction=True)``. Static files are served from the finders (``ASGIStaticFilesHandler``),
like the WSGI live server does.
"""

from __future__ import annotations

import http.client
import json
import socket
import threading
import time
from urllib.parse import urlsplit

import uvicorn
from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler
from django.core.asgi import get_asgi_application


class AsgiLiveServer:
    def __init__(self, port: int = 0) -> None:
        """``port`` 0: a free one; a port given again serves a restarted site at the same address."""
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._socket.bind(("127.0.0.1", port))
        self.port = self._socket.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(ASGIStaticFilesHandler(get_asgi_application()), lifespan="off", log_level="warning",
                                proxy_headers=False, timeout_graceful_shutdown=2)
        self.server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self._socket]},
                                        name="asgi-live-server", daemon=True)

    def start(self) -> AsgiLiveServer:
        self._thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the ASGI test server did not start")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self._thread.join(10)
        self._socket.close()

    def __enter__(self) -> AsgiLiveServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


class SseClient:
    """A blocking Server-Sent Events reader over http.client (one stream per instance). ``events()``
    yields ``(event, data)``; comments and the ``retry:`` hint are kept for the tests to look at."""

    def __init__(self, base_url: str, path: str, *, session: str | None = None, headers: dict | None = None,
                 timeout: float = 5.0) -> None:
        parts = urlsplit(base_url)
        self.connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
        sent = {"Accept": "text/event-stream", **(headers or {})}
        if session:
            sent["Cookie"] = f"sessionid={session}"
        self.connection.request("GET", path, headers=sent)
        self.response = self.connection.getresponse()
        self.status = self.response.status
        self.headers = self.response.headers
        self.comments: list[str] = []
        self.retry: int | None = None
        self.last_id: str | None = None

    def json(self) -> dict:
        return json.loads(self.response.read())

    def next_event(self) -> tuple[str, dict]:
        """The next event (blocks up to the time-out: a missing event fails the test, it never hangs)."""
        name, data = "message", []
        while True:
            raw = self.response.readline()
            if not raw:
                raise EOFError("the stream ended")
            line = raw.decode().rstrip("\r\n")
            if not line:
                if data:
                    return name, json.loads("\n".join(data))
                name = "message"
                continue
            if line.startswith(":"):
                self.comments.append(line[1:].strip())
            elif line.startswith("retry:"):
                self.retry = int(line[6:].strip())
            elif line.startswith("event:"):
                name = line[6:].strip()
            elif line.startswith("id:"):
                self.last_id = line[3:].strip()
            elif line.startswith("data:"):
                data.append(line[5:].lstrip(" "))

    def next_event_of(self, *names: str) -> tuple[str, dict]:
        while True:
            name, data = self.next_event()
            if name in names:
                return name, data

    def close(self) -> None:
        # the response holds the socket too: both go, so the server sees the client leave
        self.response.close()
        self.connection.close()


def wait_until(predicate, timeout: float = 5.0, interval: float = 0.02):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(interval)
