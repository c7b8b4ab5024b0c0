"""PayPal's Disputes API (``/v1/customer/disputes``), read for reconciliation.

``paypal-server-sdk`` has no disputes controller, so these are plain ``requests`` calls to
the configured ``PAYPAL_BASE_URL`` with the SDK's shared OAuth token (a token PayPal no
longer accepts is dropped and the call made once more), ``PAYPAL_TIMEOUT`` and no
redirects. Reads only. Every failure is a ``ProviderError`` (``retryable`` for the network,
429 and 5xx), so a reconciliation run reports it instead of deciding on half a picture.
"""

from datetime import UTC, datetime
from urllib.parse import parse_qs, quote, urlsplit

from ..exceptions import ProviderError
from .paypal_client import PROVIDER, RETRYABLE_STATUSES, paypal_request
from .paypal_settings import PayPalSettings, paypal_settings

#: PayPal's largest page of disputes.
PAGE_SIZE = 50
#: At most this many disputes are read per run (a runaway listing is an error).
MAX_DISPUTES = 5_000


def list_disputes(*, since: datetime, conf: PayPalSettings | None = None) -> list[dict]:
    """Every dispute created since ``since`` (PayPal's summaries: id, status, outcome, amount),
    following ``next`` pages."""
    conf = conf or paypal_settings()
    params = {"start_time": _iso(since), "page_size": str(PAGE_SIZE)}
    items: list[dict] = []
    while True:
        page = _get(conf, "/v1/customer/disputes", params=params, action="list disputes")
        items.extend(item for item in page.get("items") or [] if isinstance(item, dict))
        if len(items) > MAX_DISPUTES:
            raise ProviderError(
                f"PayPal listed more than {MAX_DISPUTES} disputes; narrow the window.",
                provider=PROVIDER,
                code="TOO_MANY",
            )
        token = _next_page_token(page)
        if not token:
            return items
        params = {**params, "next_page_token": token}


def get_dispute(*, dispute_id: str, conf: PayPalSettings | None = None) -> dict | None:
    """The full dispute (disputed transactions, outcome); None when PayPal does not know it."""
    conf = conf or paypal_settings()
    try:
        return _get(
            conf, f"/v1/customer/disputes/{quote(dispute_id, safe='')}", action="get dispute"
        )
    except ProviderError as exc:
        if exc.code in ("404", "RESOURCE_NOT_FOUND", "INVALID_RESOURCE_ID"):
            return None
        raise


def _get(conf: PayPalSettings, path: str, *, action: str, params: dict | None = None) -> dict:
    response = paypal_request(conf, "GET", path, action=action, params=params)
    if response.status_code != 200:
        body = _json(response)
        details = body.get("details") or [{}]
        issue = details[0].get("issue", "") if isinstance(details[0], dict) else ""
        code = issue or body.get("name") or str(response.status_code)
        if response.status_code == 404:
            code = "404"
        status = response.status_code
        raise ProviderError(
            f"PayPal {action} failed: HTTP {status} {body.get('name') or ''} {issue}".rstrip()
            + (f" (debug id {body['debug_id']})" if body.get("debug_id") else ""),
            retryable=status >= 500 or status in RETRYABLE_STATUSES,
            provider=PROVIDER,
            code=code,
        )
    body = _json(response)
    if not body and response.content:
        raise ProviderError(
            f"PayPal {action}: the answer is not JSON.", retryable=True, provider=PROVIDER
        )
    return body


def _json(response) -> dict:
    try:
        data = response.json()
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def _next_page_token(page: dict) -> str:
    """The ``next_page_token`` of the page's ``next`` link (only the token is used: the next
    request goes to the configured base URL, never to a host named in the answer)."""
    for link in page.get("links") or []:
        if isinstance(link, dict) and link.get("rel") == "next":
            return (
                parse_qs(urlsplit(str(link.get("href") or "")).query).get("next_page_token") or [""]
            )[0]
    return ""


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")
