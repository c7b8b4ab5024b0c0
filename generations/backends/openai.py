"""The OpenAI-compatible HTTP backend: text from /v1/chat/completions, pictures from
/v1/images/generations, against any server that speaks that API (OPENAI_BASE_URL).

Errors are sorted for the retry policy: timeouts, connection failures, 408, 429 and 5xx
answers may succeed later; any other 4xx (a bad key, a refused prompt, an unknown model)
will not. Responses are read up to a size limit; nothing is ever logged with the key.
"""

import base64
import binascii
import json
from email.utils import parsedate_to_datetime

import requests
from django.utils import timezone

from ..app_settings import app_settings
from ..exceptions import InvalidRequest
from ..prompts import chat_messages
from .base import (
    BackendOutput,
    BackendRequest,
    JobDraft,
    Offering,
    PermanentBackendError,
    RetryableBackendError,
)

USER_AGENT = "credits-generations/1"
#: Seconds to wait for the answer to a key check (a page waits for it).
KEY_CHECK_TIMEOUT = 10.0
#: The shortest answer a text job may ask for, in tokens.
MIN_OUTPUT_TOKENS = 16
IMAGE_SIGNATURES = (
    (b"\x89PNG\r\n\x1a\n", "png"),
    (b"\xff\xd8\xff", "jpg"),
)


class OpenAICompatibleBackend:
    name = "openai"

    def offerings(self, *, user_has_key: bool) -> list[Offering]:
        """Its models, when the platform has a key for the endpoint or the user has one."""
        if not (app_settings.OPENAI_API_KEY or user_has_key):
            return []
        return [
            Offering(
                "image",
                app_settings.OPENAI_IMAGE_MODEL,
                f"{app_settings.OPENAI_IMAGE_MODEL} (picture)",
                self.name,
                remote=True,
            ),
            Offering(
                "text",
                app_settings.OPENAI_MODEL,
                app_settings.OPENAI_MODEL,
                self.name,
                supports_edit=True,
                remote=True,
            ),
        ]

    def form_fields(self, *, operation: str) -> frozenset[str]:
        return frozenset({"max_output_tokens"}) if operation == "text" else frozenset()

    def prepare(self, draft: JobDraft) -> dict:
        """Text: the longest answer asked for (priced as the most it may cost). Pictures: the size."""
        if draft.operation == "text":
            tokens = draft.max_output_tokens or app_settings.DEFAULT_OUTPUT_TOKENS
            if not (MIN_OUTPUT_TOKENS <= tokens <= app_settings.MAX_OUTPUT_TOKENS):
                raise InvalidRequest(
                    f"Ask for {MIN_OUTPUT_TOKENS} to {app_settings.MAX_OUTPUT_TOKENS} output tokens.",
                    field="max_output_tokens",
                )
            return {"max_output_tokens": tokens}
        if draft.operation == "image":
            return {"size": app_settings.OPENAI_IMAGE_SIZE}
        return {}

    def run(self, request: BackendRequest) -> BackendOutput:
        key = request.api_key or app_settings.OPENAI_API_KEY
        if not key:
            raise PermanentBackendError("No API key is configured for this model.")
        if request.operation == "text":
            return self._text(request, key)
        if request.operation == "image":
            return self._image(request, key)
        raise PermanentBackendError(f"This backend does not do {request.operation!r} jobs.")

    # --- operations -------------------------------------------------------------------------

    def _text(self, request: BackendRequest, key: str) -> BackendOutput:
        payload = {
            "model": request.model,
            "messages": chat_messages(prompt=request.prompt, source_text=request.source_text),
            "max_tokens": int(
                request.parameters.get("max_output_tokens") or app_settings.DEFAULT_OUTPUT_TOKENS
            ),
        }
        body = self._post("/v1/chat/completions", payload, key)
        try:
            choice = body["choices"][0]
            text = choice["message"]["content"]
        except (KeyError, IndexError, TypeError) as exc:
            raise PermanentBackendError(
                "The model service sent an answer without text.",
                detail=f"unexpected body: {_excerpt(body)}",
            ) from exc
        if not isinstance(text, str) or not text.strip():
            refusal = (
                (choice.get("message") or {}).get("refusal") if isinstance(choice, dict) else None
            )
            raise PermanentBackendError(
                f"The model declined: {refusal}" if refusal else "The model returned no text.",
                detail=f"empty content: {_excerpt(body)}",
            )
        usage = {
            "finish_reason": choice.get("finish_reason") or "",
            "model_reported": body.get("model", ""),
        }
        reported = body.get("usage") or {}
        if isinstance(reported.get("prompt_tokens"), int) and isinstance(
            reported.get("completion_tokens"), int
        ):
            usage["input_tokens"] = reported["prompt_tokens"]
            usage["output_tokens"] = reported["completion_tokens"]
        return BackendOutput(content=text.encode("utf-8"), extension="txt", usage=usage)

    def _image(self, request: BackendRequest, key: str) -> BackendOutput:
        payload = {
            "model": request.model,
            "prompt": request.prompt,
            "n": 1,
            "size": request.parameters.get("size") or app_settings.OPENAI_IMAGE_SIZE,
        }
        if request.model.startswith("dall-e"):
            payload["response_format"] = "b64_json"
        body = self._post("/v1/images/generations", payload, key)
        content = self._picture(body)
        extension = next(
            (ext for magic, ext in IMAGE_SIGNATURES if content.startswith(magic)), None
        )
        if extension is None and content[:4] == b"RIFF" and content[8:12] == b"WEBP":
            extension = "webp"
        if extension is None:
            raise PermanentBackendError("The model service sent a file that is not a picture.")
        usage = {"model_reported": body.get("model", request.model)}
        reported = body.get("usage") or {}
        for ours, theirs in (("input_tokens", "input_tokens"), ("output_tokens", "output_tokens")):
            if isinstance(reported.get(theirs), int):
                usage[ours] = reported[theirs]
        return BackendOutput(content=content, extension=extension, usage=usage)

    def check_key(self, key: str) -> None:
        """A cheap authenticated call (GET /v1/models) to learn whether the endpoint accepts
        ``key``. Raises PermanentBackendError when it refuses the key (401 or 403), and
        RetryableBackendError when it cannot be reached or answers anything else."""
        path = "/v1/models"
        try:
            response = requests.get(
                self._url(path),
                headers={"Authorization": f"Bearer {key}", "User-Agent": USER_AGENT},
                timeout=(app_settings.OPENAI_CONNECT_TIMEOUT, KEY_CHECK_TIMEOUT),
                stream=True,
            )
            raw = _read_limited(response)
        except requests.RequestException as exc:
            raise RetryableBackendError(
                "The model service could not be reached.",
                detail=f"{type(exc).__name__} on {path}: {exc}",
            ) from exc
        status = response.status_code
        if 200 <= status < 300:
            return
        detail = f"HTTP {status} on {path}: {raw[:300].decode('utf-8', 'replace')}"
        if status in (401, 403):
            reason = _provider_message(raw)
            raise PermanentBackendError(
                f"The model service refused this key (HTTP {status}){': ' + reason if reason else '.'}",
                detail=detail,
            )
        raise RetryableBackendError(
            f"The model service did not confirm the key (HTTP {status}).", detail=detail
        )

    # --- HTTP -------------------------------------------------------------------------------

    def _url(self, path: str) -> str:
        base = app_settings.OPENAI_BASE_URL
        if base.endswith("/v1"):
            base = base[: -len("/v1")]
        return base + path

    def _timeout(self) -> tuple[float, float]:
        return (app_settings.OPENAI_CONNECT_TIMEOUT, app_settings.OPENAI_TIMEOUT)

    def _post(self, path: str, payload: dict, key: str) -> dict:
        return self._send(path, key, json=payload)

    def _send(self, path: str, key: str, **body) -> dict:
        """POST ``body`` (``json=`` or ``data=`` and ``files=``, as requests takes them) to
        ``path`` and return the JSON object answered, mapping every failure to a retryable or
        permanent backend error."""
        try:
            response = requests.post(
                self._url(path),
                **body,
                headers={"Authorization": f"Bearer {key}", "User-Agent": USER_AGENT},
                timeout=self._timeout(),
                stream=True,
            )
            raw = _read_limited(response)
        except requests.Timeout as exc:
            raise RetryableBackendError(
                "The model service did not answer in time.", detail=f"timeout on {path}: {exc}"
            ) from exc
        except requests.ConnectionError as exc:
            raise RetryableBackendError(
                "The model service could not be reached.",
                detail=f"connection error on {path}: {exc}",
            ) from exc
        except requests.RequestException as exc:
            raise RetryableBackendError(
                "The request to the model service failed.", detail=repr(exc)
            ) from exc
        _raise_for_status(response, raw, path)
        try:
            body = json.loads(raw)
        except ValueError as exc:
            raise PermanentBackendError(
                "The model service sent an answer that could not be read.",
                detail=f"HTTP {response.status_code} non-JSON body on {path}: {raw[:300]!r}",
            ) from exc
        if not isinstance(body, dict):
            raise PermanentBackendError(
                "The model service sent an unexpected answer.", detail=_excerpt(body)
            )
        return body

    def _picture(self, body: dict) -> bytes:
        """The picture of an images answer: inline (``b64_json``) or at its ``url``."""
        try:
            item = body["data"][0]
        except (KeyError, IndexError, TypeError) as exc:
            raise PermanentBackendError(
                "The model service sent no picture.", detail=f"unexpected body: {_excerpt(body)}"
            ) from exc
        if item.get("b64_json"):
            try:
                return base64.b64decode(item["b64_json"], validate=True)
            except (binascii.Error, ValueError) as exc:
                raise PermanentBackendError(
                    "The picture sent by the model service is damaged."
                ) from exc
        if item.get("url"):
            return self._download(item["url"])
        raise PermanentBackendError("The model service sent no picture.", detail=_excerpt(body))

    def _download(self, url: str) -> bytes:
        if not url.startswith(("https://", "http://")):
            raise PermanentBackendError(
                "The model service sent a picture address that cannot be fetched."
            )
        try:
            response = requests.get(
                url, timeout=self._timeout(), stream=True, headers={"User-Agent": USER_AGENT}
            )
            raw = _read_limited(response)
        except requests.RequestException as exc:
            raise RetryableBackendError(
                "The picture could not be downloaded.", detail=repr(exc)
            ) from exc
        _raise_for_status(response, raw, "image download")
        return raw


def _read_limited(response: requests.Response) -> bytes:
    limit = app_settings.OPENAI_MAX_RESPONSE_BYTES
    chunks, size = [], 0
    try:
        for chunk in response.iter_content(chunk_size=64 * 1024):
            size += len(chunk)
            if size > limit:
                raise PermanentBackendError(
                    "The model service sent more data than allowed.",
                    detail=f"response over {limit} bytes",
                )
            chunks.append(chunk)
    finally:
        response.close()
    return b"".join(chunks)


def _raise_for_status(response: requests.Response, raw: bytes, what: str) -> None:
    status = response.status_code
    if 200 <= status < 300:
        return
    reason = _provider_message(raw)
    detail = f"HTTP {status} on {what}: {raw[:500].decode('utf-8', 'replace')}"
    if status in (408, 409, 425, 429) or status >= 500:
        busy = "is rate limiting requests" if status == 429 else "is unavailable"
        raise RetryableBackendError(
            f"The model service {busy} (HTTP {status}).",
            detail=detail,
            retry_after=_retry_after(response),
        )
    if status in (401, 403):
        message = f"The API key was rejected (HTTP {status})."
    else:
        message = f"The model service refused the request (HTTP {status})"
        message += f": {reason}" if reason else "."
    raise PermanentBackendError(message, detail=detail)


def _provider_message(raw: bytes) -> str:
    try:
        body = json.loads(raw)
    except ValueError:
        return ""
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict) and isinstance(error.get("message"), str):
        return error["message"][:300]
    if isinstance(error, str):
        return error[:300]
    return ""


def _retry_after(response: requests.Response) -> float | None:
    value = response.headers.get("Retry-After")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, (parsedate_to_datetime(value) - timezone.now()).total_seconds())
    except (TypeError, ValueError):
        return None


def _excerpt(body) -> str:
    return json.dumps(body)[:500] if not isinstance(body, str) else body[:500]
