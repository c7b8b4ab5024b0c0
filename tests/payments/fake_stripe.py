"""A small fake of Stripe's API and webhooks, speaking Stripe's wire format over real HTTP.

The real ``stripe`` client talks to it through ``base_addresses``. It keeps Checkout
Sessions, PaymentIntents, Charges and Refunds in memory (refunds listed by PaymentIntent),
honours ``Idempotency-Key`` the way Stripe does (same key and parameters: the first
response again; other parameters: a 400), enforces ``expires_at`` bounds and refund
limits, and builds events signed with ``stripe.WebhookSignature.generate_signature_header``
exactly as Stripe signs them.
"""

import json
import re
import secrets
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlsplit

import stripe

API_VERSION = "2026-10-28.endive"


def _decode_form(body: str) -> dict:
    """Stripe's form encoding (``a[b][0][c]=1``) back into nested dicts and lists."""
    root: dict = {}
    for key, value in parse_qsl(body, keep_blank_values=True):
        parts = re.findall(r"[^\[\]]+", key)
        node = root
        for i, part in enumerate(parts):
            last = i == len(parts) - 1
            if last:
                node[part] = value
            else:
                node = node.setdefault(part, {})
    return _listify(root)


def _listify(node):
    if isinstance(node, dict):
        node = {k: _listify(v) for k, v in node.items()}
        if node and all(k.isdigit() for k in node):
            return [node[k] for k in sorted(node, key=int)]
    return node


class Hold:
    """A request the fake keeps waiting: ``arrived`` once it came in, answered once ``release`` is set."""

    def __init__(self):
        self.arrived, self.release = threading.Event(), threading.Event()


class FakeStripe:
    def __init__(self, *, webhook_secret: str = "whsec_fake_secret"):
        self.webhook_secret = webhook_secret
        self.sessions: dict[str, dict] = {}
        self.payment_intents: dict[str, dict] = {}
        self.charges: dict[str, dict] = {}
        self.refunds: dict[str, dict] = {}
        self.customers: dict[str, dict] = {}
        self.setup_intents: dict[str, dict] = {}
        #: Saved cards: id -> the PaymentMethod, with ``_behaviour`` off-session: "pays",
        #: "declines" or "needs_auth".
        self.payment_methods: dict[str, dict] = {}
        self.requests: list[dict] = []
        self._idempotency: dict[str, tuple[dict, int, dict]] = {}
        self._failures: list[tuple[str, str, int, dict]] = []
        self._holds: list[tuple[str, str, Hold]] = []
        self.refund_outcome = (
            "succeeded"  # the status new refunds get: pending, requires_action, ...
        )
        self.lock = threading.RLock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                fake._handle(self, "GET")

            def do_POST(self):
                fake._handle(self, "POST")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def start(self) -> "FakeStripe":
        self._thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    # --- test controls ----------------------------------------------------------------------

    def fail_next(
        self, method: str, path_prefix: str, *, status: int = 500, message: str = "Stripe is down"
    ) -> None:
        """Answer the next matching request with an error (500: APIError; 400: InvalidRequestError)."""
        error_type = "api_error" if status >= 500 else "invalid_request_error"
        self._failures.append(
            (method, path_prefix, status, {"error": {"type": error_type, "message": message}})
        )

    def hold_next(self, method: str, path_prefix: str) -> "Hold":
        """Keep the next matching request waiting (a slow Stripe): ``hold.arrived`` is set when it
        comes in; it is answered as usual once ``hold.release`` is set."""
        hold = Hold()
        with self.lock:
            self._holds.append((method, path_prefix, hold))
        return hold

    def calls(self, method: str, path_prefix: str) -> list[dict]:
        return [
            r for r in self.requests if r["method"] == method and r["path"].startswith(path_prefix)
        ]

    def pay(
        self, session_id: str, *, payment_status: str = "paid", amount_total: int | None = None
    ) -> dict:
        """The buyer completes the checkout: a PaymentIntent and a Charge appear."""
        with self.lock:
            session = self.sessions[session_id]
            pi_id = session["payment_intent"] or f"pi_{secrets.token_hex(8)}"
            amount = session["amount_total"] if amount_total is None else amount_total
            metadata = dict(session.get("_payment_intent_metadata") or {})
            charge_id = f"ch_{secrets.token_hex(8)}"
            succeeded = payment_status == "paid"
            self.payment_intents[pi_id] = {
                "id": pi_id,
                "object": "payment_intent",
                "amount": amount,
                "currency": session["currency"],
                "status": "succeeded" if succeeded else "processing",
                "metadata": metadata,
                "latest_charge": charge_id,
            }
            self.charges[charge_id] = {
                "id": charge_id,
                "object": "charge",
                "amount": amount,
                "amount_refunded": 0,
                "currency": session["currency"],
                "payment_intent": pi_id,
                "metadata": metadata,
                "refunded": False,
                "paid": succeeded,
                "status": "succeeded" if succeeded else "pending",
            }
            session.update(
                status="complete",
                payment_status=payment_status,
                payment_intent=pi_id,
                amount_total=amount,
            )
            return self.public(session)

    def complete_setup(
        self, session_id: str, *, behaviour: str = "pays", last4: str = "4242"
    ) -> dict:
        """The buyer saves a card at a setup-mode checkout: a SetupIntent with a PaymentMethod
        attached to the session's customer. ``behaviour``: what the card does off-session."""
        with self.lock:
            session = self.sessions[session_id]
            pm_id = f"pm_{secrets.token_hex(8)}"
            self.payment_methods[pm_id] = {
                "id": pm_id,
                "object": "payment_method",
                "type": "card",
                "card": {"brand": "visa", "last4": last4, "exp_month": 12, "exp_year": 2030},
                "customer": session["customer"],
                "_behaviour": behaviour,
            }
            seti_id = f"seti_{secrets.token_hex(8)}"
            self.setup_intents[seti_id] = {
                "id": seti_id,
                "object": "setup_intent",
                "status": "succeeded",
                "usage": "off_session",
                "customer": session["customer"],
                "payment_method": pm_id,
                "metadata": (session.get("_setup_intent_metadata") or {}),
            }
            session.update(status="complete", setup_intent=seti_id)
            return self.public(session)

    def settle(self, session_id: str, *, succeeded: bool = True) -> dict:
        """A delayed payment method settles (or fails) after the checkout completed unpaid."""
        with self.lock:
            session = self.sessions[session_id]
            session["payment_status"] = "paid" if succeeded else "unpaid"
            pi = self.payment_intents[session["payment_intent"]]
            pi["status"] = "succeeded" if succeeded else "requires_payment_method"
            return self.public(session)

    def expire(self, session_id: str) -> dict:
        with self.lock:
            session = self.sessions[session_id]
            session.update(status="expired")
            return self.public(session)

    def refund(self, payment_intent: str, amount: int) -> dict:
        """A refund made outside the app (the Stripe dashboard): returns the updated charge."""
        with self.lock:
            self._create_refund({"payment_intent": payment_intent, "amount": str(amount)})
            return dict(self._charge_of(payment_intent))

    def set_refund_status(self, refund_id: str, status: str) -> dict:
        """A refund moves on at Stripe (a pending one succeeds, fails or is canceled): returns it.
        A failed or canceled refund's amount goes back onto the charge, as Stripe does."""
        with self.lock:
            refund = self.refunds[refund_id]
            if status in ("failed", "canceled") and refund["status"] not in ("failed", "canceled"):
                charge = self.charges[refund["charge"]]
                charge["amount_refunded"] -= refund["amount"]
                charge["refunded"] = charge["amount_refunded"] >= charge["amount"]
                if status == "failed":
                    refund["failure_reason"] = "expired_or_canceled_card"
            refund["status"] = status
            return self.public(refund)

    def charge_for(self, payment_intent: str) -> dict:
        return dict(self._charge_of(payment_intent))

    def dispute(
        self, payment_intent: str, *, status: str = "needs_response", dispute_id: str | None = None
    ) -> dict:
        charge = self._charge_of(payment_intent)
        return {
            "id": dispute_id or f"dp_{secrets.token_hex(8)}",
            "object": "dispute",
            "amount": charge["amount"],
            "currency": charge["currency"],
            "charge": charge["id"],
            "payment_intent": payment_intent,
            "reason": "fraudulent",
            "status": status,
            "metadata": {},
        }

    def public(self, obj: dict) -> dict:
        return {k: v for k, v in obj.items() if not k.startswith("_")}

    # --- events -----------------------------------------------------------------------------

    def event(self, event_type: str, obj: dict, *, event_id: str | None = None) -> str:
        """A Stripe event body (a JSON string) carrying ``obj``."""
        return json.dumps(
            {
                "id": event_id or f"evt_{secrets.token_hex(12)}",
                "object": "event",
                "api_version": API_VERSION,
                "created": int(time.time()),
                "type": event_type,
                "livemode": False,
                "pending_webhooks": 1,
                "request": {"id": None, "idempotency_key": None},
                "data": {"object": self.public(obj)},
            }
        )

    def sign(self, payload: str, *, secret: str | None = None, timestamp: int | None = None) -> str:
        return stripe.WebhookSignature.generate_signature_header(
            payload, secret or self.webhook_secret, timestamp
        )

    # --- the HTTP side ----------------------------------------------------------------------

    def _handle(self, request: BaseHTTPRequestHandler, method: str) -> None:
        length = int(request.headers.get("Content-Length") or 0)
        raw = request.rfile.read(length).decode() if length else ""
        path = urlsplit(request.path).path
        params = _decode_form(raw if method == "POST" else urlsplit(request.path).query)
        key = request.headers.get("Idempotency-Key", "")
        with self.lock:
            hold = next((h for h in self._holds if h[0] == method and path.startswith(h[1])), None)
            if hold is not None:
                self._holds.remove(hold)
        if hold is not None:
            hold[2].arrived.set()
            hold[2].release.wait(120)
        with self.lock:
            self.requests.append(
                {
                    "method": method,
                    "path": path,
                    "params": params,
                    "idempotency_key": key,
                    "authorization": request.headers.get("Authorization", ""),
                }
            )
            failure = next(
                (f for f in self._failures if f[0] == method and path.startswith(f[1])), None
            )
            if failure is not None:
                self._failures.remove(failure)
                status, body = failure[2], failure[3]
            elif method == "POST" and key and key in self._idempotency:
                first_params, status, body = self._idempotency[key]
                if first_params != params:
                    status, body = (
                        400,
                        {
                            "error": {
                                "type": "idempotency_error",
                                "message": "Keys for idempotent requests can only be used with the same parameters.",
                            }
                        },
                    )
            else:
                status, body = self._route(method, path, params)
                if method == "POST" and key and status < 500:
                    self._idempotency[key] = (params, status, body)
        payload = json.dumps(body).encode()
        request.send_response(status)
        request.send_header("Content-Type", "application/json")
        request.send_header("Content-Length", str(len(payload)))
        request.send_header("Request-Id", f"req_{secrets.token_hex(6)}")
        request.end_headers()
        request.wfile.write(payload)

    def _route(self, method: str, path: str, params: dict) -> tuple[int, dict]:
        if method == "POST" and path == "/v1/checkout/sessions":
            return self._create_session(params)
        match = re.fullmatch(r"/v1/checkout/sessions/([^/]+)", path)
        if method == "GET" and match:
            session = self.sessions.get(match.group(1))
            if session is None:
                return self._error(
                    404, f"No such checkout.session: '{match.group(1)}'", "resource_missing"
                )
            body = self.public(session)
            expand = params.get("expand") or []
            if session.get("setup_intent") and any(e.startswith("setup_intent") for e in expand):
                intent = dict(self.setup_intents[session["setup_intent"]])
                if "setup_intent.payment_method" in expand:
                    intent["payment_method"] = self.public(
                        self.payment_methods[intent["payment_method"]]
                    )
                body["setup_intent"] = intent
            return 200, body
        if method == "POST" and path == "/v1/customers":
            customer_id = f"cus_{secrets.token_hex(7)}"
            self.customers[customer_id] = {
                "id": customer_id,
                "object": "customer",
                "email": params.get("email"),
                "metadata": params.get("metadata", {}),
            }
            return 200, self.customers[customer_id]
        if method == "POST" and path == "/v1/payment_intents":
            return self._create_payment_intent(params)
        if method == "POST" and path == "/v1/refunds":
            return self._create_refund(params)
        if method == "GET" and path == "/v1/refunds":
            return self._list_refunds(params)
        match = re.fullmatch(r"/v1/refunds/([^/]+)", path)
        if method == "GET" and match:
            refund = self.refunds.get(match.group(1))
            if refund is None:
                return self._error(404, f"No such refund: '{match.group(1)}'", "resource_missing")
            return 200, self.public(refund)
        match = re.fullmatch(r"/v1/payment_intents/([^/]+)", path)
        if method == "GET" and match and match.group(1) in self.payment_intents:
            return 200, self.payment_intents[match.group(1)]
        return self._error(404, f"Unrecognized request URL ({method}: {path}).")

    def _list_refunds(self, params: dict) -> tuple[int, dict]:
        """``GET /v1/refunds``: newest first, by ``payment_intent``, one page of ``limit``."""
        items = [
            self.public(r)
            for r in reversed(list(self.refunds.values()))
            if not params.get("payment_intent") or r["payment_intent"] == params["payment_intent"]
        ]
        limit = int(params.get("limit") or 10)
        return 200, {
            "object": "list",
            "data": items[:limit],
            "has_more": len(items) > limit,
            "url": "/v1/refunds",
        }

    def _error(self, status: int, message: str, code: str = "") -> tuple[int, dict]:
        return status, {
            "error": {"type": "invalid_request_error", "message": message, "code": code}
        }

    def _create_payment_intent(self, params: dict) -> tuple[int, dict]:
        """``POST /v1/payment_intents`` with ``confirm`` and ``off_session``: the saved card
        pays at once, or Stripe answers 402 with a card_error carrying the failed intent."""
        for required in ("amount", "currency", "customer", "payment_method"):
            if required not in params:
                return self._error(400, f"Missing required param: {required}.", "parameter_missing")
        method = self.payment_methods.get(params["payment_method"])
        if method is None or method["customer"] != params["customer"]:
            return self._error(400, f"No such PaymentMethod: '{params['payment_method']}'")
        if params.get("confirm") != "true" or params.get("off_session") != "true":
            return self._error(400, "This fake confirms off-session payments only.")
        pi_id = f"pi_{secrets.token_hex(8)}"
        amount = int(params["amount"])
        intent = {
            "id": pi_id,
            "object": "payment_intent",
            "amount": amount,
            "currency": params["currency"],
            "customer": params["customer"],
            "payment_method": method["id"],
            "metadata": params.get("metadata", {}),
            "status": "succeeded",
            "latest_charge": None,
            "last_payment_error": None,
        }
        behaviour = method["_behaviour"]
        if behaviour == "pays":
            charge_id = f"ch_{secrets.token_hex(8)}"
            intent["latest_charge"] = charge_id
            self.charges[charge_id] = {
                "id": charge_id,
                "object": "charge",
                "amount": amount,
                "amount_refunded": 0,
                "currency": params["currency"],
                "payment_intent": pi_id,
                "metadata": intent["metadata"],
                "refunded": False,
                "paid": True,
                "status": "succeeded",
            }
            self.payment_intents[pi_id] = intent
            return 200, intent
        code, decline, message = {
            "declines": (
                "card_declined",
                "insufficient_funds",
                "Your card has insufficient funds.",
            ),
            "needs_auth": (
                "authentication_required",
                "authentication_required",
                "Your card was declined. This transaction requires authentication.",
            ),
        }[behaviour]
        error = {"type": "card_error", "code": code, "decline_code": decline, "message": message}
        intent.update(status="requires_payment_method", last_payment_error=error)
        self.payment_intents[pi_id] = intent
        return 402, {"error": {**error, "payment_intent": intent}}

    def _create_session(self, params: dict) -> tuple[int, dict]:
        if params.get("mode") == "setup":
            return self._create_setup_session(params)
        for required in ("mode", "line_items", "success_url"):
            if required not in params:
                return self._error(400, f"Missing required param: {required}.", "parameter_missing")
        now = int(time.time())
        expires_at = int(params.get("expires_at") or now + 86400)
        if not now + 30 * 60 - 5 <= expires_at <= now + 24 * 3600:
            return self._error(400, "expires_at must be between 30 minutes and 24 hours from now.")
        item = params["line_items"][0]
        amount = int(item["price_data"]["unit_amount"]) * int(item.get("quantity", 1))
        session_id = f"cs_test_{secrets.token_hex(12)}"
        session = {
            "id": session_id,
            "object": "checkout.session",
            "mode": params["mode"],
            "url": f"{self.url}/pay/{session_id}",
            "status": "open",
            "payment_status": "unpaid",
            "amount_total": amount,
            "currency": item["price_data"]["currency"],
            "client_reference_id": params.get("client_reference_id"),
            "metadata": params.get("metadata", {}),
            "payment_intent": None,
            "expires_at": expires_at,
            "success_url": params["success_url"],
            "cancel_url": params.get("cancel_url"),
            "customer": params.get("customer"),
            "customer_email": params.get("customer_email"),
            "_payment_intent_metadata": (params.get("payment_intent_data") or {}).get(
                "metadata", {}
            ),
        }
        self.sessions[session_id] = session
        return 200, self.public(session)

    def _create_setup_session(self, params: dict) -> tuple[int, dict]:
        for required in ("customer", "currency", "success_url"):
            if required not in params:
                return self._error(400, f"Missing required param: {required}.", "parameter_missing")
        if params["customer"] not in self.customers:
            return self._error(400, f"No such customer: '{params['customer']}'")
        session_id = f"cs_test_{secrets.token_hex(12)}"
        session = {
            "id": session_id,
            "object": "checkout.session",
            "mode": "setup",
            "url": f"{self.url}/setup/{session_id}",
            "status": "open",
            "payment_status": "no_payment_required",
            "amount_total": None,
            "currency": params["currency"],
            "customer": params["customer"],
            "metadata": params.get("metadata", {}),
            "setup_intent": None,
            "payment_intent": None,
            "success_url": params["success_url"],
            "cancel_url": params.get("cancel_url"),
            "_setup_intent_metadata": (params.get("setup_intent_data") or {}).get("metadata", {}),
        }
        self.sessions[session_id] = session
        return 200, self.public(session)

    def _charge_of(self, payment_intent: str) -> dict:
        return self.charges[self.payment_intents[payment_intent]["latest_charge"]]

    def _create_refund(self, params: dict) -> tuple[int, dict]:
        pi = self.payment_intents.get(params.get("payment_intent", ""))
        if pi is None or pi["status"] != "succeeded":
            return self._error(400, "This PaymentIntent has no successful charge to refund.")
        charge = self._charge_of(pi["id"])
        amount = int(params.get("amount") or charge["amount"] - charge["amount_refunded"])
        if amount <= 0 or amount > charge["amount"] - charge["amount_refunded"]:
            return self._error(
                400,
                f"Refund amount ({amount}) is greater than unrefunded amount on charge.",
                "amount_too_large",
            )
        refund_id = f"re_{secrets.token_hex(8)}"
        charge["amount_refunded"] += amount
        charge["refunded"] = charge["amount_refunded"] >= charge["amount"]
        refund = {
            "id": refund_id,
            "object": "refund",
            "amount": amount,
            "currency": charge["currency"],
            "status": self.refund_outcome,
            "payment_intent": pi["id"],
            "charge": charge["id"],
            "reason": params.get("reason"),
            "metadata": params.get("metadata", {}),
        }
        self.refunds[refund_id] = refund
        return 200, refund
