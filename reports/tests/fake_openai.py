"""A fake OpenAI-compatible server for tests: `POST /v1/chat/completions` on 127.0.0.1 (port 0).

It speaks the real Chat Completions wire format (the `openai` client parses its answers), records
every request (path, headers, JSON body) and answers according to its mode:

- ``ok``: a completion whose text is ``reply`` (default: a short Korean report), with usage;
- ``429``: 429 with an OpenAI error body (``rate_limit_exceeded``) and ``retry-after: 0``;
- ``500``: 500 with an error body;
- ``slow``: waits ``delay`` seconds before answering ok (longer than the client's time-out);
- ``script``: a completion whose text carries ``<script>`` and other HTML;
- ``empty``: a completion with an empty text;
- ``length``: the answer cut at the output limit: ``finish_reason: "length"``, the first
  ``truncate_at`` characters of the reply (ending mid-tag), all of ``max_completion_tokens`` used;
- ``content_filter``: ``finish_reason: "content_filter"`` with no text;
- ``refusal``: ``message.refusal`` set (``refusal_text``), ``content`` null;
- ``malformed``: 200, ``application/json``, a body cut in the middle of the JSON;
- ``undecodable``: 200, ``application/json``, bytes that are not UTF-8;
- ``html``: 200, ``text/html``, a proxy's error page;
- ``not_completion``: 200 with JSON that is no completion (``{"error": …}``, no choices).

``modes`` is a queue consumed one request at a time (then ``mode`` applies): ``["500", "ok"]``
fails once, then answers. Run by hand: ``python -m reports.tests.fake_openai --port 8790``.
"""

from __future__ import annotations

import argparse
import itertools
import json
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

DEFAULT_REPLY = """## 요약
이번 주 포트폴리오는 안정적이었습니다.

## 잘된 점
- 계획대로 매매했습니다.

## 아쉬운 점
- 특이 사항이 없습니다.

## 위험 요인
- 시장 변동성에 유의하십시오.
"""
REFUSAL_TEXT = "죄송하지만 이 요청에는 응답할 수 없습니다."
MALFORMED_BODY = b'{"id": "chatcmpl-broken", "object": "chat.completion", "choices": [{"index": 0, "message": {"role": "assis'
UNDECODABLE_BODY = b"\xff\xfe\x00\x81 not utf-8 \xc3\x28"
HTML_BODY = b"<html><body><h1>502 Bad Gateway</h1></body></html>"
MODES = ["ok", "429", "500", "401", "slow", "script", "empty", "length", "content_filter", "refusal", "malformed",
         "undecodable", "html", "not_completion"]
SCRIPT_REPLY = """## 요약
<script>alert("xss")</script>
<img src=x onerror="alert(1)">
<a href="javascript:alert(2)">클릭</a> [링크](javascript:alert(3))
<iframe src="http://127.0.0.1/evil"></iframe>
**굵게** 정상 문장입니다.
"""


@dataclass
class RecordedRequest:
    method: str
    path: str
    headers: dict  # names in lower case
    body: dict | None
    raw: bytes


@dataclass
class FakeOpenAI:
    mode: str = "ok"
    modes: deque = field(default_factory=deque)
    reply: str = DEFAULT_REPLY
    model: str = "gpt-4o-mini-2024-07-18"
    delay: float = 3.0
    usage: dict = field(default_factory=lambda: {"prompt_tokens": 1234, "completion_tokens": 456, "total_tokens": 1690})
    truncate_at: int = 60
    refusal_text: str = REFUSAL_TEXT
    requests: list[RecordedRequest] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()

    # --- lifecycle ----------------------------------------------------------------------------------
    def start(self, port: int = 0) -> FakeOpenAI:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:  # quiet
                pass

            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                fake._handle(self)

            def do_GET(self) -> None:  # noqa: N802
                fake._send(self, 404, {"error": {"message": "not found", "type": "invalid_request_error"}})

        self._server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/v1"

    # --- helpers for tests ------------------------------------------------------------------------------
    def set_modes(self, *modes: str) -> None:
        with self._lock:
            self.modes = deque(modes)

    @property
    def completions(self) -> list[RecordedRequest]:
        return [r for r in self.requests if r.path.endswith("/chat/completions")]

    # --- wire format --------------------------------------------------------------------------------
    def _next_mode(self) -> str:
        with self._lock:
            return self.modes.popleft() if self.modes else self.mode

    def _send(self, handler: BaseHTTPRequestHandler, status: int, payload: dict, headers: dict | None = None) -> None:
        data = json.dumps(payload, ensure_ascii=False).encode()
        try:
            handler.send_response(status)
            handler.send_header("Content-Type", "application/json")
            handler.send_header("Content-Length", str(len(data)))
            for name, value in (headers or {}).items():
                handler.send_header(name, value)
            handler.end_headers()
            handler.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):  # the client gave up (time-out)
            pass

    def _send_raw(self, handler: BaseHTTPRequestHandler, data: bytes, content_type: str) -> None:
        try:
            handler.send_response(200)
            handler.send_header("Content-Type", content_type)
            handler.send_header("Content-Length", str(len(data)))
            handler.end_headers()
            handler.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass

    def _completion(self, body: dict, text: str | None, *, finish_reason: str = "stop", refusal: str | None = None,
                    usage: dict | None = None) -> dict:
        return {
            "id": f"chatcmpl-fake{next(self._ids)}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": self.model,
            "choices": [{
                "index": 0, "finish_reason": finish_reason, "logprobs": None,
                "message": {"role": "assistant", "content": text, "refusal": refusal},
            }],
            "usage": dict(usage or self.usage),
        }

    def _truncated(self, body: dict) -> dict:
        limit = int(body.get("max_completion_tokens") or body.get("max_tokens") or 4096)
        prompt = self.usage["prompt_tokens"]
        text = self.reply[: self.truncate_at].rstrip() + " <stro"  # cut mid-tag, as a real limit does
        return self._completion(body, text, finish_reason="length", usage={
            "prompt_tokens": prompt, "completion_tokens": limit, "total_tokens": prompt + limit})

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        length = int(handler.headers.get("Content-Length") or 0)
        raw = handler.rfile.read(length) if length else b""
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        with self._lock:
            self.requests.append(RecordedRequest("POST", handler.path, {k.lower(): v for k, v in handler.headers.items()}, body, raw))
        if not handler.path.endswith("/chat/completions"):
            self._send(handler, 404, {"error": {"message": "unknown path", "type": "invalid_request_error"}})
            return
        mode = self._next_mode()
        if mode == "429":
            self._send(handler, 429, {"error": {"message": "Rate limit reached", "type": "requests",
                                                "code": "rate_limit_exceeded", "param": None}},
                       {"retry-after": "0"})
        elif mode == "500":
            self._send(handler, 500, {"error": {"message": "The server had an error", "type": "server_error",
                                                "code": None, "param": None}})
        elif mode == "401":
            self._send(handler, 401, {"error": {"message": "Incorrect API key provided", "type": "invalid_request_error",
                                                "code": "invalid_api_key", "param": None}})
        elif mode == "slow":
            if not self._stopping.wait(self.delay):
                self._send(handler, 200, self._completion(body or {}, self.reply))
        elif mode == "script":
            self._send(handler, 200, self._completion(body or {}, SCRIPT_REPLY))
        elif mode == "empty":
            self._send(handler, 200, self._completion(body or {}, ""))
        elif mode == "length":
            self._send(handler, 200, self._truncated(body or {}))
        elif mode == "content_filter":
            self._send(handler, 200, self._completion(body or {}, None, finish_reason="content_filter"))
        elif mode == "refusal":
            self._send(handler, 200, self._completion(body or {}, None, refusal=self.refusal_text))
        elif mode == "malformed":
            self._send_raw(handler, MALFORMED_BODY, "application/json")
        elif mode == "undecodable":
            self._send_raw(handler, UNDECODABLE_BODY, "application/json")
        elif mode == "html":
            self._send_raw(handler, HTML_BODY, "text/html; charset=utf-8")
        elif mode == "not_completion":
            self._send(handler, 200, {"error": {"message": "upstream unavailable", "type": "server_error"}})
        else:
            self._send(handler, 200, self._completion(body or {}, self.reply))


def main() -> None:
    parser = argparse.ArgumentParser(description="Run the fake OpenAI-compatible server.")
    parser.add_argument("--port", type=int, default=8790)
    parser.add_argument("--mode", default="ok", choices=MODES)
    args = parser.parse_args()
    fake = FakeOpenAI(mode=args.mode).start(args.port)
    print(f"OPENAI_BASE_URL={fake.base_url}\nOPENAI_API_KEY=sk-fake-local\n(Ctrl-C to stop)")
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        fake.stop()


if __name__ == "__main__":
    main()
