"""A local stand-in for an OpenAI-compatible endpoint, speaking its wire format over HTTP.

It answers GET /v1/models (the key check), POST /v1/chat/completions,
/v1/images/generations and /v1/images/edits (multipart, as the real one) like the real service (bodies, usage, error objects, status codes),
checks the bearer key, and records every request. Tests script it: ``fake.script(...)`` queues the next answers (an error status, a
hang, or a "block until released" for crash tests); with nothing queued it succeeds.
"""

import base64
import json
import struct
import threading
import time
import zlib
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def tiny_png(width: int = 4, height: int = 3, rgb=(220, 40, 40)) -> bytes:
    """A valid PNG of one colour."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data))
            + kind
            + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
        )

    rows = b"".join(b"\x00" + bytes(rgb) * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


def _form_fields(content_type: str, raw: bytes) -> dict:
    """A multipart/form-data body as {field: text}; a file field as {"filename", "type",
    "bytes"} (what was sent, for the tests to check)."""
    from email.parser import BytesParser
    from email.policy import HTTP

    message = BytesParser(policy=HTTP).parsebytes(
        f"Content-Type: {content_type}\r\n\r\n".encode() + raw
    )
    fields = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        payload = part.get_payload(decode=True) or b""
        filename = part.get_filename()
        if filename:
            fields[name] = {
                "filename": filename,
                "type": part.get_content_type(),
                "bytes": payload,
            }
        else:
            fields[name] = payload.decode("utf-8", "replace")
    return fields


@dataclass
class Answer:
    status: int = 200
    body: dict | None = None  # None: the normal successful answer
    headers: dict = field(default_factory=dict)
    delay: float = 0.0
    #: Hold the request open until this event is set (the crash tests kill the worker meanwhile).
    block: threading.Event | None = None
    raw: bytes | None = None


@dataclass
class Seen:
    path: str
    headers: dict
    body: dict


class FakeOpenAI:
    def __init__(
        self,
        *,
        keys=("sk-platform-test",),
        prompt_tokens: int | None = None,
        completion_tokens: int = 42,
    ):
        self.keys = set(keys)
        self.prompt_tokens = prompt_tokens
        self.completion_tokens = completion_tokens
        self.requests: list[Seen] = []
        self.started = threading.Event()  # set when a request arrives
        self._queue: list[Answer] = []
        self._lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def start(self) -> "FakeOpenAI":
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def script(self, *answers: Answer) -> None:
        with self._lock:
            self._queue.extend(answers)

    def clear(self) -> None:
        """Forget the scripted answers left: from now on every request succeeds."""
        with self._lock:
            self._queue.clear()

    def always(self, answer: Answer, times: int = 50) -> None:
        self.script(*([answer] * times))

    def calls(self, path: str | None = None) -> list[Seen]:
        return [r for r in self.requests if path is None or r.path == path]

    # --- the wire ---------------------------------------------------------------------------

    def _next(self) -> Answer:
        with self._lock:
            return self._queue.pop(0) if self._queue else Answer()

    def _ok_body(self, path: str, body: dict) -> dict:
        if path == "/v1/images/edits":
            width, height = (int(v) for v in (body.get("size") or "1024x1024").split("x"))
            return {
                "created": int(time.time()),
                "data": [{"b64_json": base64.b64encode(tiny_png(width, height)).decode()}],
                "usage": {"input_tokens": 320, "output_tokens": 1056, "total_tokens": 1376},
            }
        if path == "/v1/chat/completions":
            text = " ".join(m.get("content", "") for m in body.get("messages", []))
            prompt_tokens = (
                self.prompt_tokens
                if self.prompt_tokens is not None
                else max(1, len(text.encode()) // 4)
            )
            last = (body.get("messages") or [{}])[-1].get("content", "")
            return {
                "id": "chatcmpl-test",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": body.get("model"),
                "choices": [
                    {
                        "index": 0,
                        "finish_reason": "stop",
                        "message": {
                            "role": "assistant",
                            "content": f"Here is your text about: {last[:200]}",
                        },
                    }
                ],
                "usage": {
                    "prompt_tokens": prompt_tokens,
                    "completion_tokens": self.completion_tokens,
                    "total_tokens": prompt_tokens + self.completion_tokens,
                },
            }
        return {
            "created": int(time.time()),
            "data": [{"b64_json": base64.b64encode(tiny_png()).decode()}],
            "usage": {"input_tokens": 12, "output_tokens": 272, "total_tokens": 284},
        }

    def _handler(self):
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def do_GET(self):
                fake.requests.append(Seen(self.path, dict(self.headers), {}))
                if self.path != "/v1/models":
                    return self._send(
                        404, {"error": {"message": "Unknown path", "type": "invalid_request_error"}}
                    )
                if not self._authorised():
                    return self._refuse()
                answer = fake._next()
                if answer.delay:
                    time.sleep(answer.delay)
                if answer.status != 200 or answer.body is not None:
                    return self._send(
                        answer.status,
                        answer.body
                        or {"error": {"message": f"Error {answer.status}", "type": "server_error"}},
                        answer.headers,
                    )
                self._send(
                    200,
                    {
                        "object": "list",
                        "data": [
                            {
                                "id": model,
                                "object": "model",
                                "created": 1700000000,
                                "owned_by": "system",
                            }
                            for model in ("test-chat", "test-image")
                        ],
                    },
                )

            def _authorised(self) -> bool:
                auth = self.headers.get("Authorization", "")
                return auth.startswith("Bearer ") and auth[7:] in fake.keys

            def _refuse(self):
                self._send(
                    401,
                    {
                        "error": {
                            "message": "Incorrect API key provided.",
                            "type": "invalid_request_error",
                            "code": "invalid_api_key",
                        }
                    },
                )

            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                if self.headers.get("Content-Type", "").startswith("multipart/form-data"):
                    body = _form_fields(self.headers["Content-Type"], raw)
                else:
                    try:
                        body = json.loads(raw or b"{}")
                    except ValueError:
                        body = {}
                fake.requests.append(Seen(self.path, dict(self.headers), body))
                fake.started.set()
                if self.path not in (
                    "/v1/chat/completions",
                    "/v1/images/generations",
                    "/v1/images/edits",
                ):
                    return self._send(
                        404, {"error": {"message": "Unknown path", "type": "invalid_request_error"}}
                    )
                auth = self.headers.get("Authorization", "")
                if not auth.startswith("Bearer ") or auth[7:] not in fake.keys:
                    return self._send(
                        401,
                        {
                            "error": {
                                "message": "Incorrect API key provided.",
                                "type": "invalid_request_error",
                                "code": "invalid_api_key",
                            }
                        },
                    )
                answer = fake._next()
                if answer.block is not None:
                    answer.block.wait(120)
                if answer.delay:
                    time.sleep(answer.delay)
                if answer.raw is not None:
                    return self._send_raw(answer.status, answer.raw, answer.headers)
                body_out = (
                    answer.body
                    if answer.body is not None
                    else (
                        fake._ok_body(self.path, body)
                        if answer.status == 200
                        else {
                            "error": {"message": f"Error {answer.status}", "type": "server_error"}
                        }
                    )
                )
                self._send(answer.status, body_out, answer.headers)

            def _send(self, status, payload, headers=None):
                self._send_raw(
                    status,
                    json.dumps(payload).encode(),
                    {"Content-Type": "application/json", **(headers or {})},
                )

            def _send_raw(self, status, data, headers):
                try:
                    self.send_response(status)
                    for key, value in (headers or {}).items():
                        self.send_header(key, value)
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (a timeout test, or a killed worker)

        return Handler
