"""The official PayPal SDK (``paypal-server-sdk``), configured from our settings.

The SDK has no base-URL option, so ``PayPalConfiguration`` overrides ``get_base_uri``:
``PAYPAL_BASE_URL`` (tests point it at a local fake) wins over the environment's URL.

OAuth tokens are shared by every process through the Django cache (one token request per
expiry, not one per worker), and every SDK failure comes out as ``ProviderError`` with
``retryable`` telling the caller whether trying again may help.
"""

import hashlib
import json
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

import requests
from apimatic_core.exceptions.auth_validation_exception import AuthValidationException
from django.core.cache import cache
from paypalserversdk.configuration import Configuration, Environment, Server
from paypalserversdk.exceptions.api_exception import ApiException
from paypalserversdk.exceptions.o_auth_provider_exception import OAuthProviderException
from paypalserversdk.http.auth.o_auth_2 import ClientCredentialsAuthCredentials
from paypalserversdk.models.o_auth_token import OAuthToken
from paypalserversdk.paypal_serversdk_client import PaypalServersdkClient

from ..exceptions import ProviderError, ProviderNotConfigured
from .paypal_settings import PayPalSettings

logger = logging.getLogger(__name__)
T = TypeVar("T")

PROVIDER = "PAYPAL"
#: A cached token is dropped this many seconds before PayPal says it expires.
TOKEN_EXPIRY_MARGIN = 300
RETRYABLE_STATUSES = frozenset({408, 409, 425, 429})
#: The code of a ProviderError for an API call PayPal refused with our (cached) token.
TOKEN_REJECTED = "TOKEN_REJECTED"


class PayPalConfiguration(Configuration):
    """``Configuration`` whose API base URL comes from our settings."""

    def __init__(self, *, base_url: str, **kwargs):
        self._base_url = base_url.rstrip("/")
        super().__init__(**kwargs)

    def get_base_uri(self, server=Server.DEFAULT):
        return self._base_url

    def clone_with(self, **overrides):
        clone = super().clone_with(**overrides)
        clone.__class__ = PayPalConfiguration
        clone._base_url = self._base_url
        return clone


def paypal_client(conf: PayPalSettings) -> PaypalServersdkClient:
    """An SDK client for ``conf``. Cheap to build: the token lives in the shared cache."""
    if not (conf.client_id and conf.client_secret):
        raise ProviderNotConfigured(
            "PayPal is not configured: set PAYPAL_CLIENT_ID and PAYPAL_CLIENT_SECRET."
        )
    config = PayPalConfiguration(
        base_url=conf.base_url,
        timeout=conf.timeout,
        max_retries=0,  # retries are ours to decide: a capture or refund is never blindly resent
        environment=Environment.PRODUCTION if conf.live else Environment.SANDBOX,
        client_credentials_auth_credentials=ClientCredentialsAuthCredentials(
            o_auth_client_id=conf.client_id,
            o_auth_client_secret=conf.client_secret,
            o_auth_token_provider=_shared_token_provider(conf),
        ),
    )
    return PaypalServersdkClient(config=config)


def paypal_call(conf: PayPalSettings, action: str, call: Callable[[PaypalServersdkClient], T]) -> T:
    """``call(client)`` with errors as ProviderError. A token PayPal no longer accepts (revoked,
    or cached past its life) is dropped and the call made once more with a fresh one; every
    call we make is a read or carries a PayPal-Request-Id, so making it again is safe."""
    for attempt in (1, 2):
        client = paypal_client(conf)
        try:
            with paypal_errors(action, conf=conf):
                return call(client)
        except ProviderError as exc:
            if attempt == 1 and exc.code == TOKEN_REJECTED:
                continue
            raise
    raise AssertionError("unreachable")


def access_token(conf: PayPalSettings) -> str:
    """A bearer token for calls the SDK does not cover (the webhook-signature postback)."""
    client = paypal_client(conf)
    with paypal_errors("token", conf=conf):
        token = _shared_token_provider(conf)(None, client.oauth_2)
    return token.access_token


def forget_token(conf: PayPalSettings) -> None:
    cache.delete(_token_cache_key(conf))


def paypal_request(
    conf: PayPalSettings,
    method: str,
    path: str,
    *,
    action: str,
    headers: dict | None = None,
    **kwargs,
) -> requests.Response:
    """A plain ``requests`` call to ``PAYPAL_BASE_URL`` for what the SDK does not cover, with the
    shared token, ``PAYPAL_TIMEOUT`` and no redirects. A token PayPal no longer accepts (revoked,
    or cached from before a restart of the other side) is dropped and the call made once more
    with a fresh one, as ``paypal_call`` does. The answer is returned whatever its status; a
    network failure, or a fresh token refused too, is a retryable ``ProviderError``."""
    for _attempt in range(2):
        token = access_token(conf)
        with paypal_errors(action, conf=conf):
            response = requests.request(
                method,
                f"{conf.base_url.rstrip('/')}{path}",
                timeout=conf.timeout,
                allow_redirects=False,
                headers={
                    "Authorization": f"Bearer {token}",
                    "Accept": "application/json",
                    **(headers or {}),
                },
                **kwargs,
            )
        if response.status_code != 401:
            return response
        forget_token(conf)
    raise ProviderError(
        f"PayPal {action} failed: the access token was refused twice.",
        retryable=True,
        provider=PROVIDER,
        code="AUTHENTICATION_FAILURE",
    )


def response_json(response) -> dict:
    """The body of an SDK ``ApiResponse`` as plain JSON (we read PayPal's wire format, not models)."""
    try:
        data = json.loads(response.text or "{}")
    except ValueError as exc:
        raise ProviderError(
            "PayPal answered with something that is not JSON.", retryable=True, provider=PROVIDER
        ) from exc
    if not isinstance(data, dict):
        raise ProviderError(
            "PayPal answered with an unexpected body.", retryable=True, provider=PROVIDER
        )
    return data


@contextmanager
def paypal_errors(action: str, *, conf: PayPalSettings | None = None) -> Iterator[None]:
    """Turn whatever the SDK or the network raises into ``ProviderError``."""
    try:
        yield
    except (ProviderError, ProviderNotConfigured):
        raise
    except ApiException as exc:
        status = exc.response_code or 0
        issue, name, debug_id = _error_details(exc)
        token_refused = isinstance(exc, OAuthProviderException)
        if status == 401 and conf is not None and not token_refused:
            forget_token(conf)  # a revoked or expired token: the next call fetches a new one
        retryable = (
            status >= 500 or status in RETRYABLE_STATUSES or (status == 401 and not token_refused)
        )
        if token_refused:
            action = f"{action} (access token)"
        message = f"PayPal {action} failed: HTTP {status} {name or ''} {issue or ''}".rstrip()
        if debug_id:
            message += f" (debug id {debug_id})"
        logger.warning("%s", message)
        code = (
            TOKEN_REJECTED
            if status == 401 and not token_refused
            else (issue or name or str(status))
        )
        raise ProviderError(message, retryable=retryable, provider=PROVIDER, code=code) from exc
    except AuthValidationException as exc:
        raise ProviderError(
            f"PayPal {action} failed: no valid access token.",
            retryable=True,
            provider=PROVIDER,
            code="AUTHENTICATION_FAILURE",
        ) from exc
    except (requests.Timeout, requests.ConnectionError) as exc:
        raise ProviderError(
            f"PayPal {action} failed: {type(exc).__name__}: PayPal could not be reached.",
            retryable=True,
            provider=PROVIDER,
            code="NETWORK",
        ) from exc
    except requests.RequestException as exc:
        raise ProviderError(
            f"PayPal {action} failed: {exc}", retryable=True, provider=PROVIDER, code="NETWORK"
        ) from exc


# --- internals ----------------------------------------------------------------------------


def _error_details(exc: ApiException) -> tuple[str, str, str]:
    """(first detail's issue, error name, debug id) from PayPal's error body, where present."""
    try:
        body = json.loads(exc.response.text or "{}")
    except (ValueError, AttributeError):
        body = {}
    if not isinstance(body, dict):
        body = {}
    details = body.get("details") or []
    issue = details[0].get("issue", "") if details and isinstance(details[0], dict) else ""
    name = body.get("name") or body.get("error") or ""
    return issue, name, body.get("debug_id") or ""


def _token_cache_key(conf: PayPalSettings) -> str:
    digest = hashlib.sha256(f"{conf.base_url}|{conf.client_id}".encode()).hexdigest()[:32]
    return f"payments:paypal:token:{digest}"


def _shared_token_provider(conf: PayPalSettings):
    key = _token_cache_key(conf)

    def provide(last_token, auth_manager) -> OAuthToken:
        cached = cache.get(key)
        if cached:
            return OAuthToken.from_dictionary(cached)
        token = auth_manager.fetch_token()
        expires_in = int(getattr(token, "expires_in", 0) or 0)
        ttl = expires_in - TOKEN_EXPIRY_MARGIN
        if ttl > 0:
            cache.set(
                key,
                {
                    "access_token": token.access_token,
                    "token_type": token.token_type,
                    "expires_in": expires_in,
                    "expiry": getattr(token, "expiry", None),
                },
                ttl,
            )
        return token

    return provide
