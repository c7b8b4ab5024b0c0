"""A fake Google OAuth token endpoint on 127.0.0.1, speaking Google's wire format.

allauth's Google adapter exchanges the callback's ``code`` at the token endpoint and reads
the user from the ``id_token`` it answers with (a JWT: ``sub``, ``email``,
``email_verified``, ``iss``, ``aud``, ``exp``). Its signature is not checked when the token
came straight from the token endpoint over TLS, as OpenID Connect allows, so the fake signs
with a throwaway key.
"""

import json
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs

import jwt
import pytest

ISSUER = "https://accounts.google.com"


class FakeGoogle:
    def __init__(self, *, client_id: str):
        self.client_id = client_id
        self.next_user: dict = {}
        self.token_requests: list[dict] = []
        self._server: ThreadingHTTPServer | None = None

    @property
    def token_url(self) -> str:
        host, port = self._server.server_address
        return f"http://{host}:{port}/token"

    def id_token(self, *, sub: str, email: str, email_verified: bool = True, name: str = "") -> str:
        now = int(time.time())
        claims = {
            "iss": ISSUER,
            "aud": self.client_id,
            "sub": sub,
            "email": email,
            "email_verified": email_verified,
            "name": name,
            "iat": now,
            "exp": now + 3600,
            "jti": uuid.uuid4().hex,
        }
        return jwt.encode(claims, "fake-google-signing-key-of-32-bytes-or-more", algorithm="HS256")

    def start(self) -> "FakeGoogle":
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()
                form = {k: v[0] for k, v in parse_qs(body).items()}
                fake.token_requests.append(form)
                if self.path != "/token" or form.get("grant_type") != "authorization_code":
                    return self._json(400, {"error": "invalid_request"})
                self._json(
                    200,
                    {
                        "access_token": f"ya29.{uuid.uuid4().hex}",
                        "expires_in": 3599,
                        "token_type": "Bearer",
                        "scope": "openid email profile",
                        "id_token": fake.id_token(**fake.next_user),
                    },
                )

            def _json(self, status: int, payload: dict) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()


@pytest.fixture
def fake_google(settings, monkeypatch):
    """Google login configured, its token endpoint answered by a fake on 127.0.0.1.

    ``google_login(client, sub=..., email=..., email_verified=...)`` then runs allauth's real
    flow: the login POST, Google's redirect back with a code and the state, the code exchange.
    """
    from allauth.socialaccount.providers.google.views import GoogleOAuth2Adapter

    fake = FakeGoogle(client_id="test-client.apps.googleusercontent.com").start()
    settings.SOCIALACCOUNT_PROVIDERS = {
        "google": {
            "APPS": [{"client_id": fake.client_id, "secret": "test-secret", "key": ""}],
            "SCOPE": ["profile", "email"],
        },
    }
    # allauth reads the endpoint from settings once, at import: point the adapter at the fake.
    monkeypatch.setattr(GoogleOAuth2Adapter, "access_token_url", fake.token_url)
    yield fake
    fake.stop()


def google_login(
    client, fake, *, sub: str, email: str, email_verified: bool = True, name: str = ""
):
    """Sign in with Google as the browser would; returns the callback's response."""
    from urllib.parse import parse_qs, urlparse

    response = client.post("/accounts/google/login/")
    assert response.status_code == 302, response.content
    state = parse_qs(urlparse(response["Location"]).query)["state"][0]
    fake.next_user = {"sub": sub, "email": email, "email_verified": email_verified, "name": name}
    return client.get("/accounts/google/login/callback/", {"code": "4/fake-code", "state": state})
