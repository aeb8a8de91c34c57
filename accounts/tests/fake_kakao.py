"""A fake Kakao OAuth server on 127.0.0.1 speaking Kakao's wire format (token + user/me)."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs


class FakeKakao:
    def __init__(self, user_id: int = 3141592653, nickname: str = "카카오트레이더", email: str = "kakao@example.com"):
        self.profile = {
            "id": user_id,
            "connected_at": "2026-11-24T01:00:00Z",
            "properties": {"nickname": nickname},
            "kakao_account": {
                "profile_nickname_needs_agreement": False,
                "profile": {"nickname": nickname, "is_default_nickname": False},
                "has_email": True,
                "email_needs_agreement": False,
                "is_email_valid": True,
                "is_email_verified": True,
                "email": email,
            },
        }
        self.token_requests: list[dict] = []
        self.profile_requests: list[str] = []
        self.access_token = "fake-kakao-access-token"
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _json(self, status: int, body: dict) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json;charset=UTF-8")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_POST(self):
                length = int(self.headers.get("Content-Length", 0))
                form = {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
                if self.path != "/oauth/token":
                    return self._json(404, {"error": "not_found"})
                fake.token_requests.append(form)
                if form.get("grant_type") != "authorization_code" or form.get("code") != "good-code":
                    return self._json(400, {"error": "invalid_grant", "error_description": "authorization code not found",
                                            "error_code": "KOE320"})
                return self._json(200, {"token_type": "bearer", "access_token": fake.access_token, "expires_in": 21599,
                                        "refresh_token": "fake-refresh", "refresh_token_expires_in": 5183999,
                                        "scope": "account_email profile_nickname"})

            def do_GET(self):
                if self.path.split("?")[0] != "/v2/user/me":
                    return self._json(404, {"msg": "not found", "code": -1})
                auth = self.headers.get("Authorization", "")
                fake.profile_requests.append(auth)
                if auth != f"Bearer {fake.access_token}":
                    return self._json(401, {"msg": "this access token does not exist", "code": -401})
                return self._json(200, fake.profile)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base_url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> FakeKakao:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()
