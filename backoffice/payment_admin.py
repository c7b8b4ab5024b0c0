"""The staff actions on payments, added to the payments app's read-only admins: refund an
order (from the list or the order's page), replay a webhook event."""

from django.contrib import admin, messages
from django.urls import path
from django.utils.html import format_html

from core.admin_actions import ConfirmActionForm, action_on_one, confirmed_action, submission_key
from payments import admin as payments_admin
from payments.models import Order, WebhookEvent
from payments.templatetags.money import money

from .forms import RefundOrderForm
from .payment_actions import (
    REFUND_PERMISSION,
    REPLAY_PERMISSION,
    staff_order_refund,
    staff_webhook_replay,
)

admin.site.unregister(Order)
admin.site.unregister(WebhookEvent)


@admin.register(Order)
class StaffOrderAdmin(payments_admin.OrderAdmin):
    actions = ("refund",)

    def has_refund_order_permission(self, request):
        return request.user.has_perm(REFUND_PERMISSION)

    def get_urls(self):
        return [
            path(
                "<path:object_id>/refund/",
                self.admin_site.admin_view(self.refund_view),
                name="payments_order_refund",
            ),
        ] + super().get_urls()

    def change_view(self, request, object_id, form_url="", extra_context=None):
        extra_context = {
            **(extra_context or {}),
            "can_refund": self.has_refund_order_permission(request),
        }
        return super().change_view(request, object_id, form_url, extra_context)

    @admin.action(description="Refund the selected orders…", permissions=["refund_order"])
    def refund(self, request, queryset, *, done_url=None, form_url=""):
        orders = list(queryset.select_related("user"))
        return confirmed_action(
            self,
            request,
            orders,
            action="refund",
            title="Refund orders",
            form_class=RefundOrderForm,
            form_kwargs={"orders": orders},
            perform=_refund_one,
            columns=[
                ("Order", lambda o: f"#{o.pk}"),
                ("User", lambda o: o.user),
                ("Status", lambda o: o.get_status_display()),
                ("Paid", lambda o: money(o.amount, o.currency)),
                ("Refunded so far", lambda o: money(o.amount_refunded, o.currency)),
                ("Credits", lambda o: o.credits),
            ],
            submit_label="Refund",
            intro=(
                "The provider refunds the buyer first; then the matching share of the order's credits is "
                "taken back from the balance (never below zero: what was already spent is recorded as "
                "unrecovered). If the provider refuses, nothing changes."
            ),
            done_url=done_url,
            form_url=form_url,
            label=lambda o: f"Order #{o.pk}",
        )

    def refund_view(self, request, object_id):
        return action_on_one(
            self,
            request,
            object_id,
            action=self.refund,
            allowed=self.has_refund_order_permission(request),
        )


def _refund_one(request, order, data):
    done, refund = staff_order_refund(
        order=order,
        amount=data.get("amount"),
        reason=data["reason"],
        staff_user=request.user,
        idempotency_key=submission_key(data, "refund", order),
    )
    in_flight = refund is not None and refund.status != refund.Status.SUCCEEDED
    text = format_html(
        "Order #{}: refunded {} {} (provider refund {}{}); {} {} refunded in all, status {}; "
        "{} credits taken back{}.",
        order.pk,
        refund.amount if refund else data.get("amount"),
        refund.currency if refund else order.currency,
        refund.provider_refund_id if refund else "–",
        f", {refund.get_status_display().lower()} at the provider: credits come back if it fails"
        if in_flight
        else "",
        done.amount_refunded,
        done.currency,
        done.get_status_display().lower(),
        done.credits_clawed_back,
        f", {done.credits_unrecovered} already spent and unrecovered"
        if done.credits_unrecovered
        else "",
    )
    return (messages.WARNING if done.credits_unrecovered else messages.SUCCESS), text


@admin.register(WebhookEvent)
class StaffWebhookEventAdmin(payments_admin.WebhookEventAdmin):
    actions = ("replay",)

    def has_replay_permission(self, request):
        return request.user.has_perm(REPLAY_PERMISSION)

    @admin.action(description="Replay the selected events…", permissions=["replay"])
    def replay(self, request, queryset):
        return confirmed_action(
            self,
            request,
            queryset,
            action="replay",
            title="Replay webhook events",
            form_class=ConfirmActionForm,
            perform=_replay_one,
            columns=[
                ("Event", lambda e: e.event_id),
                ("Provider", lambda e: e.get_provider_display()),
                ("Type", lambda e: e.type),
                ("Status", lambda e: e.get_status_display()),
                ("Attempts", lambda e: e.attempts),
                ("Last error", lambda e: e.last_error[:120] or "–"),
            ],
            submit_label="Replay",
            intro=(
                "Each event is queued for processing again; a failed one gets a fresh set of attempts. "
                "Processing is idempotent, and events already processed are left alone."
            ),
            label=lambda e: f"Event {e.event_id}",
        )


def _replay_one(request, event, data):
    staff_webhook_replay(event=event, reason=data["reason"], staff_user=request.user)
    return messages.SUCCESS, f"Event {event.event_id} ({event.type}) queued for processing again."
