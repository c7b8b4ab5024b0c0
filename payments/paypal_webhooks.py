"""Verifying PayPal webhook signatures ourselves.

PayPal signs ``transmission_id|transmission_time|webhook_id|crc32(raw body)`` (the CRC as an
unsigned decimal) with RSA PKCS#1 v1.5 over SHA-256, and says in ``PAYPAL-CERT-URL`` where
the certificate holding the public key is. We check, in order:

1. every signature header is present and the algorithm is SHA256withRSA;
2. the transmission time is a timestamp no more than ``PAYPAL_WEBHOOK_TOLERANCE`` ahead of
   now (clock skew). Its age alone refuses nothing: PayPal resends an unacknowledged event
   up to 25 times over three days, and nothing it documents promises a fresh transmission
   time on each resend (a resend from the dashboard or the API may come later still), so an
   age limit would refuse exactly the retries that carry the events we missed. Replaying a
   genuine old delivery gains an attacker nothing: the signature binds the body to PayPal,
   the event id is stored once (a replay is a duplicate), and processing asks PayPal for
   the payment's state now rather than trusting the event's. The time is still part of the
   signed message, so it cannot be changed;
3. the certificate URL is ``https`` on a ``paypal.com`` host (nothing else is ever fetched;
   a test-only origin list is honoured outside the live environment);
4. the signature, with the certificate fetched with a timeout, without redirects, and cached.

Only when the certificate cannot be fetched at all do we ask PayPal itself, through the
``verify-webhook-signature`` postback. Every refusal is ``WebhookRejected`` with a reason.
"""

import base64
import binascii
import hashlib
import json
import logging
import zlib
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

import requests
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from django.core.cache import cache
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from .exceptions import ProviderError, WebhookRejected
from .providers.paypal_settings import PayPalSettings, paypal_settings

logger = logging.getLogger(__name__)

HEADERS = (
    "paypal-transmission-id",
    "paypal-transmission-time",
    "paypal-transmission-sig",
    "paypal-cert-url",
    "paypal-auth-algo",
)
ALGORITHM = "SHA256WITHRSA"
MAX_CERT_BYTES = 64 * 1024


class CertificateUnavailable(Exception):
    """The certificate could not be fetched or read (network, HTTP error, not a certificate)."""


def verify_paypal_webhook(
    *,
    body: bytes,
    headers: Mapping[str, str],
    conf: PayPalSettings | None = None,
    now: datetime | None = None,
) -> dict:
    """Check the signature of a PayPal webhook and return its parsed body. Raises WebhookRejected."""
    conf = conf or paypal_settings()
    if not conf.webhook_id:
        raise WebhookRejected("PayPal webhooks are not configured (PAYPAL_WEBHOOK_ID is empty).")
    h = {str(key).lower(): str(value).strip() for key, value in headers.items()}
    missing = [name for name in HEADERS if not h.get(name)]
    if missing:
        raise WebhookRejected(f"Missing PayPal signature headers: {', '.join(missing)}.")
    if h["paypal-auth-algo"].upper() != ALGORITHM:
        raise WebhookRejected(f"Unsupported signature algorithm {h['paypal-auth-algo']!r}.")
    _check_fresh(h["paypal-transmission-time"], tolerance=conf.webhook_tolerance, now=now)
    cert_url = h["paypal-cert-url"]
    if not cert_url_allowed(cert_url, conf=conf):
        raise WebhookRejected("The signing certificate is not on a PayPal host.")
    try:
        event = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise WebhookRejected("The body is not JSON.") from exc
    if not isinstance(event, dict):
        raise WebhookRejected("The body is not a JSON object.")
    try:
        signature = base64.b64decode(h["paypal-transmission-sig"], validate=True)
    except (binascii.Error, ValueError) as exc:
        raise WebhookRejected("The signature is not base64.") from exc
    message = signed_message(
        transmission_id=h["paypal-transmission-id"],
        transmission_time=h["paypal-transmission-time"],
        webhook_id=conf.webhook_id,
        body=body,
    )
    try:
        certificate = signing_certificate(cert_url, conf=conf, now=now)
    except CertificateUnavailable as exc:
        logger.warning(
            "PayPal certificate unavailable (%s); asking PayPal to verify the webhook", exc
        )
        _verify_by_postback(h, event=event, conf=conf)
        return event
    public_key = certificate.public_key()
    if not isinstance(public_key, rsa.RSAPublicKey):
        raise WebhookRejected("The signing certificate does not hold an RSA key.")
    try:
        public_key.verify(signature, message, padding.PKCS1v15(), hashes.SHA256())
    except InvalidSignature as exc:
        raise WebhookRejected("The PayPal signature does not match the body.") from exc
    return event


def signed_message(
    *, transmission_id: str, transmission_time: str, webhook_id: str, body: bytes
) -> bytes:
    """What PayPal signs: the CRC32 of the raw body as an unsigned decimal, after three headers."""
    return f"{transmission_id}|{transmission_time}|{webhook_id}|{zlib.crc32(body) & 0xFFFFFFFF}".encode()


def cert_url_allowed(url: str, *, conf: PayPalSettings) -> bool:
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return False
    host = (parts.hostname or "").lower()
    if parts.username or parts.password or not host:
        return False
    if (
        parts.scheme == "https"
        and port in (None, 443)
        and (host == "paypal.com" or host.endswith(".paypal.com"))
    ):
        return True
    if conf.live:
        return False
    origin = f"{parts.scheme}://{host}" + (f":{port}" if port else "")
    return origin in conf.cert_extra_origins


def signing_certificate(
    url: str, *, conf: PayPalSettings, now: datetime | None = None
) -> x509.Certificate:
    """The certificate at ``url`` (an allowed PayPal URL), from the cache or fetched once."""
    key = "payments:paypal:cert:" + hashlib.sha256(url.encode()).hexdigest()
    now = now or timezone.now()
    pem = cache.get(key)
    if pem is None:
        pem = _fetch_certificate(url, timeout=conf.cert_timeout)
        certificate = _load_certificate(pem)
        ttl = min(
            conf.cert_cache_seconds, int((certificate.not_valid_after_utc - now).total_seconds())
        )
        if ttl > 0:
            cache.set(key, pem, ttl)
    else:
        certificate = _load_certificate(pem)
    if not (certificate.not_valid_before_utc <= now <= certificate.not_valid_after_utc):
        cache.delete(key)
        raise WebhookRejected("The PayPal signing certificate is not valid now.")
    return certificate


# --- internals ----------------------------------------------------------------------------


def _check_fresh(value: str, *, tolerance: int, now: datetime | None) -> None:
    """A transmission time must parse and not lie in the future; an old one is accepted
    (see the module's docstring: PayPal's retries for up to three days)."""
    sent = parse_datetime(value)
    if sent is None:
        raise WebhookRejected("The transmission time is not a timestamp.")
    if timezone.is_naive(sent):
        sent = sent.replace(tzinfo=UTC)
    age = (now or timezone.now()) - sent
    if age < -timedelta(seconds=tolerance):
        raise WebhookRejected("The transmission time is in the future.")


def _fetch_certificate(url: str, *, timeout: float) -> bytes:
    try:
        with requests.get(url, timeout=timeout, allow_redirects=False, stream=True) as response:
            if response.status_code != 200:
                raise CertificateUnavailable(
                    f"HTTP {response.status_code} from the certificate URL"
                )
            data = b""
            for chunk in response.iter_content(8192):
                data += chunk
                if len(data) > MAX_CERT_BYTES:
                    raise CertificateUnavailable("the certificate response is too large")
    except requests.RequestException as exc:
        raise CertificateUnavailable(f"{type(exc).__name__} fetching the certificate") from exc
    _load_certificate(data)  # refuse to cache something that is not a certificate
    return data


def _load_certificate(pem: bytes) -> x509.Certificate:
    try:
        certificates = x509.load_pem_x509_certificates(pem)
    except ValueError as exc:
        raise CertificateUnavailable(
            "the certificate URL did not return a PEM certificate"
        ) from exc
    return certificates[0]  # the leaf comes first; any chain after it is not needed for the key


def _verify_by_postback(h: dict, *, event: dict, conf: PayPalSettings) -> None:
    """Ask PayPal whether it sent this (``POST /v1/notifications/verify-webhook-signature``)."""
    from .providers.paypal_client import paypal_request

    payload = {
        "auth_algo": h["paypal-auth-algo"],
        "cert_url": h["paypal-cert-url"],
        "transmission_id": h["paypal-transmission-id"],
        "transmission_sig": h["paypal-transmission-sig"],
        "transmission_time": h["paypal-transmission-time"],
        "webhook_id": conf.webhook_id,
        "webhook_event": event,
    }
    try:
        response = paypal_request(
            conf,
            "POST",
            "/v1/notifications/verify-webhook-signature",
            action="verify a webhook signature",
            json=payload,
        )
    except ProviderError as exc:
        raise WebhookRejected(
            "The signature could not be verified now (PayPal unreachable); PayPal will retry."
        ) from exc
    if response.status_code != 200:
        raise WebhookRejected(
            f"PayPal could not verify the signature (HTTP {response.status_code})."
        )
    try:
        status = response.json().get("verification_status")
    except ValueError:
        status = None
    if status != "SUCCESS":
        raise WebhookRejected("PayPal says the signature is not valid.")
