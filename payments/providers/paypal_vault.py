"""Saving a buyer's PayPal account for auto top-up, through ``paypal-server-sdk``'s vault
controller (Payment Method Tokens v3), mixed into ``PayPalProvider``.

The flow, without a purchase: ``setup_start`` creates a setup token for a PayPal wallet
(``usage_type`` MERCHANT, ``usage_pattern`` THRESHOLD_PREPAID: charged when a balance runs
low) and returns its ``approve`` link; PayPal sends the buyer back to our return page with
``approval_token_id`` (the setup token); ``setup_result`` turns the approved setup token into
a payment token, whose id is the ``vault_id`` an order names to be paid without the buyer
(``PayPalProvider.charge_saved``). Both calls carry a PayPal-Request-Id, so a retried call
or a reloaded return page gets the first answer back, not a second token.
"""

import secrets

from paypalserversdk.models.experience_context_shipping_preference import (
    ExperienceContextShippingPreference,
)
from paypalserversdk.models.payment_token_request import PaymentTokenRequest
from paypalserversdk.models.payment_token_request_payment_source import (
    PaymentTokenRequestPaymentSource,
)
from paypalserversdk.models.paypal_payment_token_customer_type import (
    PaypalPaymentTokenCustomerType,
)
from paypalserversdk.models.paypal_payment_token_usage_type import PaypalPaymentTokenUsageType
from paypalserversdk.models.setup_token_request import SetupTokenRequest
from paypalserversdk.models.setup_token_request_payment_source import (
    SetupTokenRequestPaymentSource,
)
from paypalserversdk.models.usage_pattern import UsagePattern
from paypalserversdk.models.vault_customer import VaultCustomer
from paypalserversdk.models.vault_experience_context import VaultExperienceContext
from paypalserversdk.models.vault_paypal_wallet_request import VaultPaypalWalletRequest
from paypalserversdk.models.vault_token_request import VaultTokenRequest
from paypalserversdk.models.vault_token_request_type import VaultTokenRequestType
from paypalserversdk.models.vault_user_action import VaultUserAction

from ..exceptions import ProviderError
from .base import SavedMethod
from .paypal_client import PROVIDER, paypal_call, response_json

#: PayPal's answers to a payment-token request for a setup token the buyer did not approve
#: (or one that expired): nothing was saved.
NOT_APPROVED = frozenset(
    {
        "SETUP_TOKEN_NOT_APPROVED",
        "TOKEN_NOT_APPROVED",
        "INVALID_RESOURCE_ID",
        "RESOURCE_NOT_FOUND",
        "UNPROCESSABLE_ENTITY",
    }
)


class PayPalVault:
    """The adapter's saved-payment-method calls (mixed into ``PayPalProvider``)."""

    def setup_start(
        self, *, user, customer_id: str, currency: str, success_url: str, cancel_url: str
    ) -> tuple[str, str, str]:
        """Open a setup token that saves ``user``'s PayPal account; returns (PayPal customer
        id, setup token id, the approval URL). ``customer_id`` (a PayPal customer made by an
        earlier save) links the new token to the same customer."""
        wallet = VaultPaypalWalletRequest(
            description=f"{self.conf.brand_name} auto top-up"[:128],
            usage_pattern=UsagePattern.THRESHOLD_PREPAID,
            usage_type=PaypalPaymentTokenUsageType.MERCHANT,
            customer_type=PaypalPaymentTokenCustomerType.CONSUMER,
            permit_multiple_payment_tokens=False,
            experience_context=VaultExperienceContext(
                brand_name=self.conf.brand_name[:127],
                return_url=success_url,
                cancel_url=cancel_url,
                shipping_preference=ExperienceContextShippingPreference.NO_SHIPPING,
                user_action=VaultUserAction.SETUP_NOW,
            ),
        )
        source = SetupTokenRequestPaymentSource(paypal=wallet)
        body = (
            SetupTokenRequest(payment_source=source, customer=VaultCustomer(id=customer_id))
            if customer_id
            else SetupTokenRequest(payment_source=source)
        )
        request_id = f"setup-{user.pk}-{secrets.token_hex(8)}"
        response = paypal_call(
            self.conf,
            "create setup token",
            lambda client: client.vault.create_setup_token(
                {"body": body, "paypal_request_id": request_id}
            ),
        )
        data = response_json(response)
        approve = _link(data, "approve")
        if not data.get("id") or not approve:
            raise ProviderError(
                "PayPal made a setup token without an approval link.",
                retryable=True,
                provider=PROVIDER,
            )
        return str((data.get("customer") or {}).get("id") or customer_id), data["id"], approve

    def setup_result(self, *, session_id: str) -> SavedMethod | None:
        """The PayPal account the buyer approved for setup token ``session_id``, saved as a
        payment token; None when the buyer did not approve it. Raises a retryable
        ProviderError while PayPal cannot be reached."""
        body = PaymentTokenRequest(
            payment_source=PaymentTokenRequestPaymentSource(
                token=VaultTokenRequest(id=session_id, mtype=VaultTokenRequestType.SETUP_TOKEN)
            )
        )
        try:
            response = paypal_call(
                self.conf,
                "create payment token",
                lambda client: client.vault.create_payment_token(
                    {"body": body, "paypal_request_id": f"vault-{session_id}"[:108]}
                ),
            )
        except ProviderError as exc:
            if not exc.retryable and exc.code in NOT_APPROVED:
                return None
            raise
        data = response_json(response)
        wallet = (data.get("payment_source") or {}).get("paypal") or {}
        if not data.get("id"):
            return None
        email = str(wallet.get("email_address") or "")
        return SavedMethod(
            customer_id=str((data.get("customer") or {}).get("id") or ""),
            payment_method_id=str(data["id"]),
            label=f"PayPal: {email}" if email else "PayPal account",
        )


def _link(data: dict, rel: str) -> str:
    return next(
        (link.get("href", "") for link in data.get("links") or [] if link.get("rel") == rel), ""
    )
