"""A fake PayPal that speaks the REST wire format the app uses, on a local port.

It serves OAuth tokens (``/v1/oauth2/token``), Orders v2 (create / get / capture, with
``PayPal-Request-Id`` replay and PayPal's 422 issues; an order naming a saved account's
``payment_source.paypal.vault_id`` is captured as it is made, declined, or left waiting for
its payer, as the test chose when the account was saved), the vault (``/v3/vault/setup-tokens``
and ``/v3/vault/payment-tokens``, with an approval page at ``/agreements/approve`` that sends
the payer back with ``approval_token_id``), captures and refunds
(``/v2/payments/...``), disputes (``/v1/customer/disputes``: listed by ``start_time`` in
pages with a ``next`` link, and read one by one), the ``verify-webhook-signature`` postback, a signing certificate
made with ``cryptography`` from its own RSA key, and an approval page that sends the buyer
back to the order's return or cancel URL. Webhooks are signed exactly as PayPal signs them:
RSA PKCS#1 v1.5 SHA-256 over ``transmission_id|transmission_time|webhook_id|crc32(body)``.

The real ``paypal-server-sdk`` talks to it through ``PAYPAL_BASE_URL``.
"""

import base64
import html
import json
import re
import secrets
import threading
import time
import uuid
import zlib
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlencode, urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID

CLIENT_ID = "fake-client-id"
#: What orders paid with a saved account get (chosen when the payer approves saving it).
VAULT_BEHAVIOURS = ("pays", "declines", "needs_auth")
CLIENT_SECRET = "fake-client-secret"
WEBHOOK_ID = "8PT597110X687430LKGECATA"


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _id(prefix: str = "") -> str:
    alphabet = "ABCDEFGHJKLMNPRSTUVWXY0123456789"
    return prefix + "".join(secrets.choice(alphabet) for _ in range(17 - len(prefix)))


def make_signing_identity(
    common_name: str = "messageverificationcerts.sandbox.paypal.com", *, valid_days: int = 30
):
    """An RSA key and a self-signed certificate for it, as PayPal's signing certificate."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Fake PayPal"),
        ]
    )
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=valid_days))
        .sign(key, hashes.SHA256())
    )
    return key, cert.public_bytes(serialization.Encoding.PEM)


def sign_body(
    body: bytes,
    *,
    key,
    webhook_id: str,
    cert_url: str,
    transmission_id: str | None = None,
    transmission_time: str | None = None,
) -> dict:
    """The headers PayPal sends with ``body``."""
    transmission_id = transmission_id or str(uuid.uuid4())
    transmission_time = transmission_time or _now()
    message = f"{transmission_id}|{transmission_time}|{webhook_id}|{zlib.crc32(body) & 0xFFFFFFFF}".encode()
    signature = key.sign(message, padding.PKCS1v15(), hashes.SHA256())
    return {
        "PAYPAL-TRANSMISSION-ID": transmission_id,
        "PAYPAL-TRANSMISSION-TIME": transmission_time,
        "PAYPAL-TRANSMISSION-SIG": base64.b64encode(signature).decode(),
        "PAYPAL-CERT-URL": cert_url,
        "PAYPAL-AUTH-ALGO": "SHA256withRSA",
        "Content-Type": "application/json",
    }


@dataclass
class Fault:
    method: str
    path: re.Pattern
    status: int
    times: int


@dataclass
class Call:
    method: str
    path: str
    headers: dict
    body: dict | None = None


@dataclass
class Delivery:
    body: bytes
    headers: dict
    event: dict = field(default_factory=dict)


class FakePayPal:
    def __init__(
        self,
        *,
        client_id: str = CLIENT_ID,
        client_secret: str = CLIENT_SECRET,
        webhook_id: str = WEBHOOK_ID,
    ):
        self.client_id, self.client_secret, self.webhook_id = client_id, client_secret, webhook_id
        self.key, self.cert_pem = make_signing_identity()
        self.lock = threading.RLock()
        self.tokens: set[str] = set()
        self.orders: dict[str, dict] = {}
        self.captures: dict[str, dict] = {}  # capture id -> capture
        self.refunds: dict[str, dict] = {}
        self.disputes: dict[str, dict] = {}
        self.dispute_page_size = 50  # PayPal's largest page; tests lower it to make the client page
        self.capture_order_of: dict[str, str] = {}  # capture id -> order id
        self.setup_tokens: dict[str, dict] = {}
        self.payment_tokens: dict[str, dict] = {}  # vault id -> payment token
        self.replies: dict[
            tuple[str, str], tuple[int, dict]
        ] = {}  # (endpoint, request id) -> reply
        self.sent_events: dict[str, bytes] = {}
        self.calls: list[Call] = []
        self.faults: list[Fault] = []
        self.capture_outcome = "COMPLETED"  # or PENDING, DECLINED, INSTRUMENT_DECLINED
        self.refund_outcome = "COMPLETED"  # the status new refunds get: or PENDING
        self.capture_delay = 0.0  # seconds a capture takes (to widen races)
        self.cert_requests = 0
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        # Each certificate has an address of its own, as at PayPal: a later fake on the same port
        # (with another key) never meets this one's certificate in the shared cache.
        self.cert_url = f"{self.url}/v1/notifications/certs/CERT-{uuid.uuid4().hex[:17]}-fake"
        self._thread: threading.Thread | None = None

    # --- lifecycle ---------------------------------------------------------------------------

    def start(self) -> "FakePayPal":
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def settings(self) -> dict:
        """Django settings that point the app at this fake."""
        return {
            "PAYPAL_CLIENT_ID": self.client_id,
            "PAYPAL_CLIENT_SECRET": self.client_secret,
            "PAYPAL_WEBHOOK_ID": self.webhook_id,
            "PAYPAL_ENVIRONMENT": "sandbox",
            "PAYPAL_BASE_URL": self.url,
            "PAYPAL_WEBHOOK_CERT_EXTRA_ORIGINS": [self.url],
            "PAYPAL_TIMEOUT": 5,
            "PAYPAL_CERT_TIMEOUT": 2,
        }

    # --- what a test does to PayPal's side -----------------------------------------------------

    def fail(self, method: str, path_pattern: str, *, status: int = 500, times: int = 1) -> None:
        """Answer the next ``times`` matching calls with ``status`` (PayPal's INTERNAL_SERVER_ERROR)."""
        with self.lock:
            self.faults.append(Fault(method.upper(), re.compile(path_pattern), status, times))

    def approve(self, order_id: str, *, payer_id: str = "FAKEPAYER1234") -> dict:
        """The buyer approves on PayPal's page."""
        with self.lock:
            order = self.orders[order_id]
            if order["status"] in ("CREATED", "PAYER_ACTION_REQUIRED"):
                order["status"] = "APPROVED"
                order["payer"] = {
                    "payer_id": payer_id,
                    "email_address": "buyer@example.com",
                    "name": {"given_name": "Test", "surname": "Buyer"},
                }
                order["payment_source"] = {
                    "paypal": {"email_address": "buyer@example.com", "account_id": payer_id}
                }
                order["update_time"] = _now()
            return order

    def approve_setup(
        self, setup_token_id: str, *, behaviour: str = "pays", email: str = "payer@example.com"
    ) -> str:
        """The payer approves saving their PayPal account: returns where PayPal sends them
        back. ``behaviour`` is what orders paid with the saved account then get: "pays"
        (captured at once), "declines" (INSTRUMENT_DECLINED) or "needs_auth" (the order waits
        for its payer: PAYER_ACTION_REQUIRED)."""
        assert behaviour in VAULT_BEHAVIOURS, behaviour
        with self.lock:
            token = self.setup_tokens[setup_token_id]
            if token["status"] == "PAYER_ACTION_REQUIRED":
                token["status"] = "APPROVED"
                token["_behaviour"] = behaviour
                token["payment_source"]["paypal"].update(
                    email_address=email, payer_id="FAKEPAYER1234"
                )
            context = token["_experience"]
            return _with_query(
                context["return_url"],
                approval_token_id=setup_token_id,
                approval_session_id=token["_session"],
            )

    def capture_directly(self, order_id: str) -> dict:
        """PayPal's side captures (as another of our processes would have): returns the capture."""
        status, body = self._capture(order_id)
        assert status == 201, body
        return body["purchase_units"][0]["payments"]["captures"][0]

    def settle_capture(self, capture_id: str, status: str = "COMPLETED") -> dict:
        """A PENDING capture clears (or is DECLINED)."""
        with self.lock:
            capture = self.captures[capture_id]
            capture["status"] = status
            capture.pop("status_details", None)
            capture["update_time"] = _now()
            return capture

    def refund_externally(self, capture_id: str, amount: str | None = None) -> dict:
        """A refund made in PayPal's dashboard, not through our API call."""
        status, body = self._refund(capture_id, {"amount": {"value": amount}} if amount else {})
        assert status == 201, body
        return body

    def set_refund_status(self, refund_id: str, status: str) -> dict:
        """A PENDING refund moves on at PayPal (COMPLETED, FAILED or CANCELLED): returns it. A
        refund that failed or was canceled no longer counts against the capture."""
        with self.lock:
            refund = self.refunds[refund_id]
            refund["status"] = status
            refund.pop("status_details", None)
            refund["update_time"] = _now()
            self._settle_capture_refunds(refund["_capture_id"])
            return _public(refund)

    def _settle_capture_refunds(self, capture_id: str) -> None:
        capture = self.captures[capture_id]
        refunded = self._refunded(capture_id, ("COMPLETED",))
        total = Decimal(capture["amount"]["value"])
        capture["status"] = (
            "REFUNDED" if refunded >= total else "PARTIALLY_REFUNDED" if refunded else "COMPLETED"
        )
        capture["update_time"] = _now()

    def _refunded(self, capture_id: str, statuses=("COMPLETED", "PENDING")) -> Decimal:
        return sum(
            (
                Decimal(r["amount"]["value"])
                for r in self.refunds.values()
                if r["_capture_id"] == capture_id and r["status"] in statuses
            ),
            Decimal("0"),
        )

    def forget_order(self, order_id: str) -> None:
        with self.lock:
            self.orders.pop(order_id, None)

    def order_for(self, custom_id) -> dict:
        with self.lock:
            return next(
                o
                for o in self.orders.values()
                if o["purchase_units"][0].get("custom_id") == str(custom_id)
            )

    def calls_to(self, method: str, pattern: str) -> list[Call]:
        rx = re.compile(pattern)
        with self.lock:
            return [c for c in self.calls if c.method == method and rx.search(c.path)]

    # --- webhooks ------------------------------------------------------------------------------

    def event(self, event_type: str, resource: dict, *, resource_type: str = "") -> dict:
        event_id = "WH-" + _id()[:10] + "-" + _id()[:10]
        return {
            "id": event_id,
            "event_version": "1.0",
            "create_time": _now(),
            "resource_type": resource_type or _resource_type(event_type),
            "resource_version": "2.0",
            "event_type": event_type,
            "summary": f"Fake {event_type}",
            "resource": json.loads(json.dumps(resource)),
            "links": [
                {
                    "href": f"{self.url}/v1/notifications/webhooks-events/{event_id}",
                    "rel": "self",
                    "method": "GET",
                }
            ],
        }

    def capture_event(self, event_type: str, capture_id: str) -> dict:
        with self.lock:
            resource = dict(self.captures[capture_id])
            resource["supplementary_data"] = {
                "related_ids": {"order_id": self.capture_order_of[capture_id]}
            }
        return self.event(event_type, resource)

    def order_event(self, event_type: str, order_id: str) -> dict:
        with self.lock:
            return self.event(event_type, self.orders[order_id])

    def refund_event(self, refund: dict, event_type: str = "PAYMENT.CAPTURE.REFUNDED") -> dict:
        return self.event(event_type, refund)

    def open_dispute(
        self,
        capture_id: str,
        *,
        status: str = "WAITING_FOR_SELLER_RESPONSE",
        stage: str = "CHARGEBACK",
        age: timedelta = timedelta(0),
    ) -> dict:
        """A buyer disputes a capture at PayPal (whether or not its webhook reaches us)."""
        with self.lock:
            capture = self.captures[capture_id]
            created = (datetime.now(UTC) - age).strftime("%Y-%m-%dT%H:%M:%S.000Z")
            dispute_id = "PP-D-" + _id()[:8]
            self.disputes[dispute_id] = {
                "dispute_id": dispute_id,
                "create_time": created,
                "update_time": created,
                "disputed_transactions": [
                    {
                        "seller_transaction_id": capture_id,
                        "create_time": capture["create_time"],
                        "transaction_status": "COMPLETED",
                        "gross_amount": capture["amount"],
                        "invoice_number": capture.get("invoice_id", ""),
                        "custom": capture.get("custom_id", ""),
                        "buyer": {"name": "Test Buyer"},
                        "seller": {"merchant_id": "FAKEMERCHANT1", "name": "Credits"},
                    }
                ],
                "reason": "MERCHANDISE_OR_SERVICE_NOT_RECEIVED",
                "status": status,
                "dispute_amount": dict(capture["amount"]),
                "dispute_life_cycle_stage": stage,
                "dispute_channel": "INTERNAL",
                "links": [
                    {
                        "href": f"{self.url}/v1/customer/disputes/{dispute_id}",
                        "rel": "self",
                        "method": "GET",
                    }
                ],
            }
            return json.loads(json.dumps(self.disputes[dispute_id]))

    def resolve_dispute(self, dispute_id: str, outcome: str, *, status: str = "RESOLVED") -> dict:
        """PayPal decides: the dispute is RESOLVED with ``outcome`` (an ``outcome_code``)."""
        with self.lock:
            dispute = self.disputes[dispute_id]
            dispute["status"] = status
            dispute["update_time"] = _now()
            dispute["dispute_outcome"] = {"outcome_code": outcome}
            if outcome in ("RESOLVED_BUYER_FAVOUR", "ACCEPTED", "RESOLVED_WITH_PAYOUT"):
                dispute["dispute_outcome"]["amount_refunded"] = dict(dispute["dispute_amount"])
            return json.loads(json.dumps(dispute))

    def dispute_event(
        self, event_type: str, capture_id: str = "", *, outcome: str = "", dispute_id: str = ""
    ) -> dict:
        """A CUSTOMER.DISPUTE.* event for a dispute: ``dispute_id``'s as it stands, or a new
        one on ``capture_id`` (RESOLVED with ``outcome`` when one is given)."""
        if not dispute_id:
            dispute_id = self.open_dispute(capture_id, stage="INQUIRY", status="OPEN")["dispute_id"]
            if outcome:
                self.resolve_dispute(dispute_id, outcome)
        with self.lock:
            resource = {k: v for k, v in self.disputes[dispute_id].items() if k != "links"}
        return self.event(event_type, resource)

    def sign(
        self,
        event: dict | bytes,
        *,
        transmission_time: str | None = None,
        cert_url: str | None = None,
        key=None,
        webhook_id: str | None = None,
    ) -> Delivery:
        body = (
            event if isinstance(event, bytes) else json.dumps(event, separators=(",", ":")).encode()
        )
        headers = sign_body(
            body,
            key=key or self.key,
            webhook_id=webhook_id or self.webhook_id,
            cert_url=cert_url or self.cert_url,
            transmission_time=transmission_time,
        )
        parsed = json.loads(body)
        with self.lock:
            self.sent_events[parsed.get("id", "")] = body
        return Delivery(body=body, headers=headers, event=parsed)

    # --- the API -------------------------------------------------------------------------------

    def handle(
        self, method: str, path: str, query: dict, headers: dict, raw: bytes
    ) -> tuple[int, dict | str, dict]:
        """(status, JSON body or HTML, extra headers) for one request."""
        body = None
        if raw and "json" in headers.get("content-type", ""):
            try:
                body = json.loads(raw)
            except ValueError:
                return 400, _error("INVALID_REQUEST", "MALFORMED_REQUEST_JSON"), {}
        with self.lock:
            self.calls.append(Call(method, path, headers, body))
            for fault in self.faults:
                if fault.times > 0 and fault.method == method and fault.path.search(path):
                    fault.times -= 1
                    return (
                        fault.status,
                        {
                            "name": "INTERNAL_SERVER_ERROR",
                            "message": "An internal server error occurred.",
                            "debug_id": _id().lower()[:13],
                        },
                        {},
                    )

        if method == "GET" and path.startswith("/v1/notifications/certs/"):
            with self.lock:
                self.cert_requests += 1
            return 200, self.cert_pem.decode(), {"Content-Type": "application/x-pem-file"}
        if path == "/checkoutnow" or path.startswith("/checkoutnow/"):
            return self._approval_page(method, path, query, raw)
        if path.startswith("/agreements/"):
            return self._agreement_page(method, path, query, raw)
        if method == "POST" and path == "/v1/oauth2/token":
            return self._token(headers, raw)

        if not self._authorized(headers):
            return (
                401,
                {
                    "error": "invalid_token",
                    "error_description": "Token signature verification failed",
                },
                {},
            )

        request_id = headers.get("paypal-request-id", "")
        if method == "POST" and path == "/v2/checkout/orders":
            return self._replayable(("create", request_id), lambda: self._create(body or {}))
        if method == "POST" and path == "/v3/vault/setup-tokens":
            return self._replayable(("setup-token", request_id), lambda: self._setup_token(body))
        if method == "POST" and path == "/v3/vault/payment-tokens":
            return self._replayable(
                ("payment-token", request_id), lambda: self._payment_token(body or {})
            )
        match = re.fullmatch(r"/v3/vault/(setup|payment)-tokens/([A-Za-z0-9]+)", path)
        if match and method == "GET":
            with self.lock:
                kind, token_id = match.groups()
                found = (self.setup_tokens if kind == "setup" else self.payment_tokens).get(
                    token_id
                )
                return (200, _public(json.loads(json.dumps(found))), {}) if found else _not_found()
        match = re.fullmatch(r"/v2/checkout/orders/([A-Z0-9]+)(/capture)?", path)
        if match:
            order_id, capture = match.groups()
            if method == "GET" and not capture:
                with self.lock:
                    return (
                        (200, self._order_view(order_id), {})
                        if order_id in self.orders
                        else _not_found()
                    )
            if method == "POST" and capture:
                return self._replayable(
                    (f"capture:{order_id}", request_id), lambda: self._capture(order_id)
                )
        match = re.fullmatch(r"/v2/payments/captures/([A-Z0-9]+)(/refund)?", path)
        if match:
            capture_id, refund = match.groups()
            if method == "GET" and not refund:
                with self.lock:
                    capture = self.captures.get(capture_id)
                    if capture is None:
                        return _not_found()
                    view = json.loads(json.dumps(capture))
                    view["supplementary_data"] = {
                        "related_ids": {"order_id": self.capture_order_of[capture_id]}
                    }
                    return 200, view, {}
            if method == "POST" and refund:
                return self._replayable(
                    (f"refund:{capture_id}", request_id),
                    lambda: self._refund(capture_id, body or {}),
                )
        match = re.fullmatch(r"/v2/payments/refunds/([A-Z0-9]+)", path)
        if match and method == "GET":
            with self.lock:
                refund = self.refunds.get(match.group(1))
                return (200, json.loads(json.dumps(refund)), {}) if refund else _not_found()
        if method == "POST" and path == "/v1/notifications/verify-webhook-signature":
            return self._verify_postback(body or {})
        if method == "GET" and path == "/v1/customer/disputes":
            return self._list_disputes(query)
        match = re.fullmatch(r"/v1/customer/disputes/([A-Za-z0-9-]+)", path)
        if match and method == "GET":
            with self.lock:
                dispute = self.disputes.get(match.group(1))
                return (200, json.loads(json.dumps(dispute)), {}) if dispute else _not_found()
        return _not_found()

    def _list_disputes(self, query: dict) -> tuple[int, dict, dict]:
        """Summaries, newest first, created at or after ``start_time``; ``next_page_token`` pages."""
        start = (query.get("start_time") or [""])[0]
        try:
            since = datetime.fromisoformat(start.replace("Z", "+00:00")) if start else None
        except ValueError:
            return 400, _error("INVALID_REQUEST", "INVALID_PARAMETER_VALUE", "start_time"), {}
        size = min(int((query.get("page_size") or ["10"])[0]), 50, self.dispute_page_size)
        offset = int((query.get("next_page_token") or ["0"])[0] or 0)
        with self.lock:
            found = sorted(self.disputes.values(), key=lambda d: d["create_time"], reverse=True)
            if since is not None:
                found = [
                    d
                    for d in found
                    if datetime.fromisoformat(d["create_time"].replace("Z", "+00:00")) >= since
                ]
            page = found[offset : offset + size]
            items = [
                {
                    k: d[k]
                    for k in (
                        "dispute_id",
                        "create_time",
                        "update_time",
                        "reason",
                        "status",
                        "dispute_amount",
                        "dispute_life_cycle_stage",
                        "dispute_channel",
                        "links",
                    )
                }
                | (
                    {"outcome": d["dispute_outcome"]["outcome_code"]}
                    if d.get("dispute_outcome")
                    else {}
                )
                for d in page
            ]
        links = [
            {
                "href": f"{self.url}/v1/customer/disputes?{urlencode({'start_time': start, 'page_size': size})}",
                "rel": "self",
                "method": "GET",
            }
        ]
        if offset + size < len(found):
            links.append(
                {
                    "href": f"{self.url}/v1/customer/disputes?"
                    + urlencode(
                        {
                            "start_time": start,
                            "page_size": size,
                            "next_page_token": str(offset + size),
                        }
                    ),
                    "rel": "next",
                    "method": "GET",
                }
            )
        return 200, {"items": json.loads(json.dumps(items)), "links": links}, {}

    def _token(self, headers: dict, raw: bytes) -> tuple[int, dict, dict]:
        expected = (
            "Basic " + base64.b64encode(f"{self.client_id}:{self.client_secret}".encode()).decode()
        )
        form = parse_qs(raw.decode())
        if headers.get("authorization") != expected:
            return (
                401,
                {"error": "invalid_client", "error_description": "Client Authentication failed"},
                {},
            )
        if form.get("grant_type") != ["client_credentials"]:
            return (
                400,
                {"error": "unsupported_grant_type", "error_description": "Grant Type is NULL"},
                {},
            )
        token = "A21AA" + secrets.token_urlsafe(40)
        with self.lock:
            self.tokens.add(token)
        return (
            200,
            {
                "scope": "https://uri.paypal.com/services/payments/payment",
                "access_token": token,
                "token_type": "Bearer",
                "app_id": "APP-80W284485P519543T",
                "expires_in": 32400,
                "nonce": _now() + secrets.token_hex(8),
            },
            {},
        )

    def _authorized(self, headers: dict) -> bool:
        value = headers.get("authorization", "")
        with self.lock:
            return value.startswith("Bearer ") and value[7:] in self.tokens

    def _replayable(self, key: tuple[str, str], make) -> tuple[int, dict, dict]:
        """PayPal-Request-Id: a repeated id gets the first answer, not a second effect."""
        if not key[1]:
            status, body = make()
            return status, body, {}
        with self.lock:
            if key in self.replies:
                status, body = self.replies[key]
                return status, json.loads(json.dumps(body)), {}
        status, body = make()
        with self.lock:
            if 200 <= status < 300:  # PayPal replays the first successful answer
                self.replies.setdefault(key, (status, body))
                status, body = self.replies[key]
        return status, json.loads(json.dumps(body)), {}

    def _create(self, body: dict) -> tuple[int, dict]:
        units = body.get("purchase_units") or []
        if body.get("intent") != "CAPTURE" or len(units) != 1:
            return 400, _error(
                "INVALID_REQUEST", "INVALID_PARAMETER_VALUE", "intent or purchase_units"
            )
        unit = units[0]
        amount = unit.get("amount") or {}
        if (
            not re.fullmatch(r"\d+(\.\d{2})?", str(amount.get("value", "")))
            or len(amount.get("currency_code", "")) != 3
        ):
            return 400, _error("INVALID_REQUEST", "INVALID_PARAMETER_VALUE", "amount")
        wallet = (body.get("payment_source") or {}).get("paypal") or {}
        if wallet.get("vault_id"):
            return self._create_vaulted(unit, amount, wallet)
        context = wallet.get("experience_context") or {}
        if not context.get("return_url") or not context.get("cancel_url"):
            return 422, _error("UNPROCESSABLE_ENTITY", "MISSING_REQUIRED_PARAMETER", "return_url")
        with self.lock:
            if self._duplicate_invoice(unit):
                return 422, _error("UNPROCESSABLE_ENTITY", "DUPLICATE_INVOICE_ID")
            order = self._new_order(
                unit, amount, status="PAYER_ACTION_REQUIRED", payment_source={"paypal": {}}
            )
            order["_experience"] = context
            return 200, _public(order)

    def _duplicate_invoice(self, unit: dict) -> bool:
        invoice = unit.get("invoice_id")
        return bool(invoice) and any(
            o["purchase_units"][0].get("invoice_id") == invoice for o in self.orders.values()
        )

    def _new_order(self, unit: dict, amount: dict, *, status: str, payment_source: dict) -> dict:
        """A PayPal order for one purchase unit (the lock held; the invoice id checked)."""
        order_id = _id()
        order = {
            "id": order_id,
            "intent": "CAPTURE",
            "status": status,
            "payment_source": payment_source,
            "purchase_units": [
                {
                    "reference_id": unit.get("reference_id", "default"),
                    "amount": {
                        "currency_code": amount["currency_code"],
                        "value": amount["value"],
                    },
                    "payee": {
                        "email_address": "merchant@example.com",
                        "merchant_id": "FAKEMERCHANT1",
                    },
                    "description": unit.get("description", ""),
                    "custom_id": unit.get("custom_id", ""),
                    "invoice_id": unit.get("invoice_id") or "",
                }
            ],
            "create_time": _now(),
            "update_time": _now(),
            "links": [
                {
                    "href": f"{self.url}/v2/checkout/orders/{order_id}",
                    "rel": "self",
                    "method": "GET",
                },
                {
                    "href": f"{self.url}/checkoutnow?token={order_id}",
                    "rel": "payer-action",
                    "method": "GET",
                },
            ],
            "_experience": {},
        }
        self.orders[order_id] = order
        return order

    def _create_vaulted(self, unit: dict, amount: dict, wallet: dict) -> tuple[int, dict]:
        """An order paid with a saved account, the payer away: captured as it is made (as
        ``capture_outcome`` says), declined, or waiting for its payer."""
        with self.lock:
            token = self.payment_tokens.get(wallet["vault_id"])
            if token is None:
                return 422, _error(
                    "UNPROCESSABLE_ENTITY", "INVALID_RESOURCE_ID", "payment_source/paypal/vault_id"
                )
            if token["_behaviour"] == "declines":
                return 422, _error("UNPROCESSABLE_ENTITY", "INSTRUMENT_DECLINED")
            if self._duplicate_invoice(unit):
                return 422, _error("UNPROCESSABLE_ENTITY", "DUPLICATE_INVOICE_ID")
            payer = token["payment_source"]["paypal"]
            source = {
                "paypal": {
                    "email_address": payer["email_address"],
                    "account_id": payer["payer_id"],
                    "attributes": {
                        "vault": {
                            "id": token["id"],
                            "status": "VAULTED",
                            "customer": dict(token["customer"]),
                        }
                    },
                }
            }
            waits = token["_behaviour"] == "needs_auth"
            order = self._new_order(
                unit,
                amount,
                status="PAYER_ACTION_REQUIRED" if waits else "APPROVED",
                payment_source=source,
            )
            if waits:
                return 200, _public(order)
        return self._capture(order["id"])

    def _setup_token(self, body: dict | None) -> tuple[int, dict]:
        wallet = ((body or {}).get("payment_source") or {}).get("paypal")
        if not isinstance(wallet, dict):
            return 400, _error("INVALID_REQUEST", "MISSING_REQUIRED_PARAMETER", "payment_source")
        context = wallet.get("experience_context") or {}
        if not context.get("return_url") or not context.get("cancel_url"):
            return 422, _error("UNPROCESSABLE_ENTITY", "MISSING_REQUIRED_PARAMETER", "return_url")
        if wallet.get("usage_type") not in ("MERCHANT", "PLATFORM"):
            return 400, _error("INVALID_REQUEST", "INVALID_PARAMETER_VALUE", "usage_type")
        customer = ((body or {}).get("customer") or {}).get("id") or "customer_" + "".join(
            secrets.choice("0123456789") for _ in range(10)
        )
        with self.lock:
            token_id, session = _id(), secrets.token_hex(12)
            self.setup_tokens[token_id] = {
                "id": token_id,
                "customer": {"id": customer},
                "status": "PAYER_ACTION_REQUIRED",
                "payment_source": {
                    "paypal": {
                        k: wallet[k]
                        for k in ("description", "usage_pattern", "usage_type", "customer_type")
                        if k in wallet
                    }
                },
                "links": [
                    {
                        "href": f"{self.url}/agreements/approve?approval_session_id={session}",
                        "rel": "approve",
                        "method": "GET",
                    },
                    {
                        "href": f"{self.url}/v3/vault/setup-tokens/{token_id}",
                        "rel": "self",
                        "method": "GET",
                    },
                ],
                "_experience": context,
                "_session": session,
            }
            return 200, _public(self.setup_tokens[token_id])

    def _payment_token(self, body: dict) -> tuple[int, dict]:
        ref = (body.get("payment_source") or {}).get("token") or {}
        if ref.get("type") != "SETUP_TOKEN" or not ref.get("id"):
            return 400, _error("INVALID_REQUEST", "INVALID_PARAMETER_VALUE", "payment_source/token")
        with self.lock:
            setup = self.setup_tokens.get(ref["id"])
            if setup is None:
                return _not_found()[:2]
            if setup["status"] != "APPROVED":
                return 422, _error("UNPROCESSABLE_ENTITY", "SETUP_TOKEN_NOT_APPROVED")
            setup["status"] = "VAULTED"
            token_id = secrets.token_hex(4)
            self.payment_tokens[token_id] = {
                "id": token_id,
                "customer": dict(setup["customer"]),
                "payment_source": {"paypal": dict(setup["payment_source"]["paypal"])},
                "links": [
                    {
                        "href": f"{self.url}/v3/vault/payment-tokens/{token_id}",
                        "rel": "self",
                        "method": "GET",
                    },
                    {
                        "href": f"{self.url}/v3/vault/payment-tokens/{token_id}",
                        "rel": "delete",
                        "method": "DELETE",
                    },
                ],
                "_behaviour": setup["_behaviour"],
            }
            return 201, _public(self.payment_tokens[token_id])

    def _agreement_page(
        self, method: str, path: str, query: dict, raw: bytes
    ) -> tuple[int, str, dict]:
        """PayPal's page where the payer agrees to be charged later (a setup token's approve
        link): Agree sends them to the return URL, Cancel to the cancel URL."""
        form = parse_qs(raw.decode()) if raw else {}
        session = (query.get("approval_session_id") or form.get("approval_session_id") or [""])[0]
        with self.lock:
            token = next((t for t in self.setup_tokens.values() if t["_session"] == session), None)
        if token is None:
            return 404, "<h1>This agreement does not exist.</h1>", {"Content-Type": "text/html"}
        if method == "POST" and path == "/agreements/approve":
            return 303, "", {"Location": self.approve_setup(token["id"])}
        if method == "POST" and path == "/agreements/cancel":
            target = _with_query(token["_experience"]["cancel_url"], approval_token_id=token["id"])
            return 303, "", {"Location": target}
        page = f"""<!doctype html><html lang="en"><head><meta charset="utf-8"><title>PayPal (fake)</title></head>
<body><main><h1>PayPal <small>(test double)</small></h1>
<p>{html.escape(token["_experience"].get("brand_name") or "Merchant")} asks to charge your PayPal account
without asking you each time ({html.escape(token["payment_source"]["paypal"].get("description", ""))}).</p>
<form method="post" action="/agreements/approve"><input type="hidden" name="approval_session_id" value="{html.escape(session)}">
<button type="submit">Agree and continue</button></form>
<form method="post" action="/agreements/cancel"><input type="hidden" name="approval_session_id" value="{html.escape(session)}">
<button type="submit">Cancel and return to merchant</button></form></main></body></html>"""
        return 200, page, {"Content-Type": "text/html; charset=utf-8"}

    def _capture(self, order_id: str) -> tuple[int, dict]:
        if self.capture_delay:
            time.sleep(self.capture_delay)
        with self.lock:
            order = self.orders.get(order_id)
            if order is None:
                return _not_found()[:2]
            if order["status"] == "COMPLETED":
                return 422, _error("UNPROCESSABLE_ENTITY", "ORDER_ALREADY_CAPTURED")
            if order["status"] != "APPROVED":
                return 422, _error("UNPROCESSABLE_ENTITY", "ORDER_NOT_APPROVED")
            if self.capture_outcome == "INSTRUMENT_DECLINED":
                return 422, _error("UNPROCESSABLE_ENTITY", "INSTRUMENT_DECLINED")
            unit = order["purchase_units"][0]
            capture_id = _id()
            capture = {
                "id": capture_id,
                "status": self.capture_outcome,
                "amount": dict(unit["amount"]),
                "final_capture": True,
                "seller_protection": {
                    "status": "ELIGIBLE",
                    "dispute_categories": ["ITEM_NOT_RECEIVED", "UNAUTHORIZED_TRANSACTION"],
                },
                "seller_receivable_breakdown": _breakdown(unit["amount"]),
                "invoice_id": unit.get("invoice_id", ""),
                "custom_id": unit.get("custom_id", ""),
                "links": [
                    {
                        "href": f"{self.url}/v2/payments/captures/{capture_id}",
                        "rel": "self",
                        "method": "GET",
                    },
                    {
                        "href": f"{self.url}/v2/payments/captures/{capture_id}/refund",
                        "rel": "refund",
                        "method": "POST",
                    },
                    {
                        "href": f"{self.url}/v2/checkout/orders/{order_id}",
                        "rel": "up",
                        "method": "GET",
                    },
                ],
                "create_time": _now(),
                "update_time": _now(),
            }
            if self.capture_outcome == "PENDING":
                capture["status_details"] = {"reason": "PENDING_REVIEW"}
            self.captures[capture_id] = capture
            self.capture_order_of[capture_id] = order_id
            order["status"] = "COMPLETED"
            order["update_time"] = _now()
            return 201, self._order_view(order_id)

    def _order_view(self, order_id: str) -> dict:
        order = json.loads(json.dumps(_public(self.orders[order_id])))
        captures = [self.captures[c] for c, o in self.capture_order_of.items() if o == order_id]
        refunds = [
            r
            for r in self.refunds.values()
            if self.capture_order_of.get(r["_capture_id"]) == order_id
        ]
        if captures:
            order["purchase_units"][0]["payments"] = {"captures": json.loads(json.dumps(captures))}
            if refunds:
                order["purchase_units"][0]["payments"]["refunds"] = [_public(r) for r in refunds]
        return order

    def _refund(self, capture_id: str, body: dict) -> tuple[int, dict]:
        with self.lock:
            capture = self.captures.get(capture_id)
            if capture is None:
                return _not_found()[:2]
            if capture["status"] not in ("COMPLETED", "PARTIALLY_REFUNDED"):
                return 422, _error(
                    "UNPROCESSABLE_ENTITY",
                    "CAPTURE_FULLY_REFUNDED"
                    if capture["status"] == "REFUNDED"
                    else "REFUND_NOT_ALLOWED",
                )
            total = Decimal(capture["amount"]["value"])
            done = self._refunded(capture_id)
            value = (body.get("amount") or {}).get("value")
            amount = Decimal(value) if value else total - done
            if amount <= 0 or done + amount > total:
                return 422, _error("UNPROCESSABLE_ENTITY", "REFUND_AMOUNT_EXCEEDED")
            currency = capture["amount"]["currency_code"]
            refund_id = _id()
            refunded = done + amount
            refund = {
                "id": refund_id,
                "amount": {"currency_code": currency, "value": f"{amount:.2f}"},
                "seller_payable_breakdown": {
                    "gross_amount": {"currency_code": currency, "value": f"{amount:.2f}"},
                    "paypal_fee": {"currency_code": currency, "value": "0.00"},
                    "net_amount": {"currency_code": currency, "value": f"{amount:.2f}"},
                    "total_refunded_amount": {
                        "currency_code": currency,
                        "value": f"{refunded:.2f}",
                    },
                },
                "invoice_id": body.get("invoice_id", ""),
                "custom_id": capture.get("custom_id", ""),
                "note_to_payer": body.get("note_to_payer", ""),
                "status": self.refund_outcome,
                "create_time": _now(),
                "update_time": _now(),
                "links": [
                    {
                        "href": f"{self.url}/v2/payments/refunds/{refund_id}",
                        "rel": "self",
                        "method": "GET",
                    },
                    {
                        "href": f"{self.url}/v2/payments/captures/{capture_id}",
                        "rel": "up",
                        "method": "GET",
                    },
                ],
                "_capture_id": capture_id,
            }
            if self.refund_outcome == "PENDING":
                refund["status_details"] = {"reason": "ECHECK"}
            self.refunds[refund_id] = refund
            self._settle_capture_refunds(capture_id)
            return 201, _public(refund)

    def _verify_postback(self, body: dict) -> tuple[int, dict, dict]:
        event = body.get("webhook_event") or {}
        with self.lock:
            sent = self.sent_events.get(event.get("id", ""))
        ok = False
        if (
            sent is not None
            and body.get("webhook_id") == self.webhook_id
            and body.get("cert_url") == self.cert_url
        ):
            message = (
                f"{body.get('transmission_id')}|{body.get('transmission_time')}|{self.webhook_id}|"
                f"{zlib.crc32(sent) & 0xFFFFFFFF}"
            ).encode()
            try:
                self.key.public_key().verify(
                    base64.b64decode(body.get("transmission_sig", "")),
                    message,
                    padding.PKCS1v15(),
                    hashes.SHA256(),
                )
                ok = json.loads(sent) == event
            except Exception:  # noqa: BLE001 - any failure means "not ours"
                ok = False
        return 200, {"verification_status": "SUCCESS" if ok else "FAILURE"}, {}

    def _approval_page(
        self, method: str, path: str, query: dict, raw: bytes
    ) -> tuple[int, str, dict]:
        form = parse_qs(raw.decode()) if raw else {}
        token = (query.get("token") or form.get("token") or [""])[0]
        with self.lock:
            order = self.orders.get(token)
        if order is None:
            return 404, "<h1>This PayPal order does not exist.</h1>", {"Content-Type": "text/html"}
        context = order["_experience"]
        if method == "POST" and path == "/checkoutnow/approve":
            self.approve(token)
            target = _with_query(context["return_url"], token=token, PayerID="FAKEPAYER1234")
            return 303, "", {"Location": target}
        if method == "POST" and path == "/checkoutnow/cancel":
            return 303, "", {"Location": _with_query(context["cancel_url"], token=token)}
        unit = order["purchase_units"][0]
        page = f"""<!doctype html><html lang="en"><head><meta charset="utf-8"><title>PayPal Checkout (fake)</title>
<style>body{{font-family:system-ui,sans-serif;background:#f5f7fa;margin:0}}main{{max-width:420px;margin:4rem auto;
background:#fff;border-radius:12px;padding:2rem;box-shadow:0 2px 12px #0001}}h1{{color:#003087;font-size:1.4rem}}
button{{width:100%;padding:.8rem;border:0;border-radius:24px;font-size:1rem;margin-top:.6rem;cursor:pointer}}
.pay{{background:#ffc439;color:#111}}.cancel{{background:#eee}}</style></head><body><main>
<h1>PayPal <small>(test double)</small></h1>
<p>{html.escape(context.get("brand_name") or "Merchant")} is asking for</p>
<p data-testid="paypal-amount" style="font-size:2rem;font-weight:700">{html.escape(unit["amount"]["value"])}
{html.escape(unit["amount"]["currency_code"])}</p><p>{html.escape(unit.get("description", ""))}</p>
<form method="post" action="/checkoutnow/approve"><input type="hidden" name="token" value="{html.escape(token)}">
<button class="pay" type="submit">Pay Now</button></form>
<form method="post" action="/checkoutnow/cancel"><input type="hidden" name="token" value="{html.escape(token)}">
<button class="cancel" type="submit">Cancel and return to merchant</button></form></main></body></html>"""
        return 200, page, {"Content-Type": "text/html; charset=utf-8"}


def _handler(fake: FakePayPal):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _serve(self, method: str) -> None:
            parts = urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            headers = {k.lower(): v for k, v in self.headers.items()}
            status, body, extra = fake.handle(
                method, parts.path, parse_qs(parts.query), headers, raw
            )
            if isinstance(body, (dict, list)):
                data = json.dumps(body).encode()
                content_type = "application/json"
            else:
                data = body.encode()
                content_type = extra.get("Content-Type", "text/plain")
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            self.send_header("Paypal-Debug-Id", _id().lower()[:13])
            for name, value in extra.items():
                if name != "Content-Type":
                    self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self):  # noqa: N802
            self._serve("GET")

        def do_POST(self):  # noqa: N802
            self._serve("POST")

        def log_message(self, *args):
            pass

    return Handler


def _public(obj: dict) -> dict:
    return {k: v for k, v in obj.items() if not k.startswith("_")}


def _error(name: str, issue: str, field_name: str = "") -> dict:
    detail = {"issue": issue, "description": issue.replace("_", " ").capitalize() + "."}
    if field_name:
        detail["field"] = field_name
    return {
        "name": name,
        "details": [detail],
        "message": "The requested action could not be performed.",
        "debug_id": _id().lower()[:13],
    }


def _not_found() -> tuple[int, dict, dict]:
    return (
        404,
        {
            "name": "RESOURCE_NOT_FOUND",
            "details": [
                {
                    "issue": "INVALID_RESOURCE_ID",
                    "description": "Specified resource ID does not exist.",
                }
            ],
            "message": "The specified resource does not exist.",
            "debug_id": _id().lower()[:13],
        },
        {},
    )


def _breakdown(amount: dict) -> dict:
    value = Decimal(amount["value"])
    fee = (value * Decimal("0.0349") + Decimal("0.49")).quantize(Decimal("0.01"))
    currency = amount["currency_code"]
    return {
        "gross_amount": dict(amount),
        "paypal_fee": {"currency_code": currency, "value": f"{fee}"},
        "net_amount": {"currency_code": currency, "value": f"{value - fee}"},
    }


def _resource_type(event_type: str) -> str:
    if event_type.startswith("CHECKOUT.ORDER"):
        return "checkout-order"
    if event_type in ("PAYMENT.CAPTURE.REFUNDED",):
        return "refund"
    if event_type.startswith("CUSTOMER.DISPUTE"):
        return "dispute"
    return "capture"


def _with_query(url: str, **params) -> str:
    return url + ("&" if "?" in url else "?") + urlencode(params)


# --- pytest fixtures (imported by the PayPal test modules) --------------------------------------

import pytest  # noqa: E402


@pytest.fixture
def fake_paypal(settings):
    """A running fake PayPal with the app's settings pointed at it."""
    fake = FakePayPal().start()
    for name, value in fake.settings().items():
        setattr(settings, name, value)
    settings.PAYMENTS_SANDBOX_ENABLED = False
    try:
        yield fake
    finally:
        fake.stop()


@pytest.fixture
def demo_packages(db):
    """The four demo packages (a transactional test's flush removes the migration's copies)."""
    import io

    from payments.demo import seed

    return {p.name: p for p in seed(stdout=io.StringIO())}
