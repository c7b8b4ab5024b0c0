"""The staff actions on memberships, added to the payments app's read-only admins: end a
subscription now, refund a paid period (from the list or the object's page)."""

from django.contrib import admin, messages

from core.admin_actions import ConfirmActionForm, confirmed_action, submission_key
from payments import subscription_admin
from payments.models import Subscription, SubscriptionPeriod
from payments.templatetags.money import money

from .subscription_actions import (
    CANCEL_PERMISSION,
    REFUND_PERMISSION,
    staff_period_refund,
    staff_subscription_cancel,
)

admin.site.unregister(Subscription)
admin.site.unregister(SubscriptionPeriod)


@admin.register(Subscription)
class StaffSubscriptionAdmin(subscription_admin.SubscriptionAdmin):
    actions = ("end_now",)

    def has_cancel_subscription_permission(self, request):
        return request.user.has_perm(CANCEL_PERMISSION)

    @admin.action(
        description="End the selected subscriptions now…", permissions=["cancel_subscription"]
    )
    def end_now(self, request, queryset):
        return confirmed_action(
            self,
            request,
            queryset.select_related("user", "plan"),
            action="end_now",
            title="End subscriptions now",
            form_class=ConfirmActionForm,
            perform=_end_one,
            columns=[
                ("Subscription", lambda s: f"#{s.pk}"),
                ("User", lambda s: s.user),
                ("Plan", lambda s: s.plan.name),
                ("Status", lambda s: s.get_status_display()),
            ],
            submit_label="End now",
            intro=(
                "The provider ends each subscription at once: no further renewals. The member keeps "
                "the credits already paid for until their period's end; refund a period to take them back."
            ),
            label=lambda s: f"Subscription #{s.pk}",
        )


def _end_one(request, sub, data):
    done = staff_subscription_cancel(
        subscription=sub, reason=data["reason"], staff_user=request.user
    )
    return messages.SUCCESS, f"Subscription #{sub.pk}: {done.get_status_display().lower()}."


@admin.register(SubscriptionPeriod)
class StaffSubscriptionPeriodAdmin(subscription_admin.SubscriptionPeriodAdmin):
    actions = ("refund",)

    def has_refund_order_permission(self, request):
        return request.user.has_perm(REFUND_PERMISSION)

    @admin.action(description="Refund the selected periods…", permissions=["refund_order"])
    def refund(self, request, queryset):
        return confirmed_action(
            self,
            request,
            queryset.select_related("subscription__user", "plan"),
            action="refund",
            title="Refund membership periods",
            form_class=ConfirmActionForm,
            perform=_refund_one,
            columns=[
                ("Invoice", lambda p: p.invoice_number),
                ("User", lambda p: p.subscription.user),
                ("Plan", lambda p: p.plan.name),
                ("Paid", lambda p: money(p.amount, p.currency)),
                ("Credits", lambda p: p.credits),
                ("Status", lambda p: p.get_status_display()),
            ],
            submit_label="Refund",
            intro=(
                "The provider refunds the period's payment in full first; then its credits are taken "
                "back (never below zero: what was already spent is recorded as unrecovered). If the "
                "provider refuses, nothing changes."
            ),
            label=lambda p: p.invoice_number,
        )


def _refund_one(request, period, data):
    done = staff_period_refund(
        period=period,
        reason=data["reason"],
        staff_user=request.user,
        idempotency_key=submission_key(data, "period-refund", period),
    )
    level = messages.WARNING if done.credits_unrecovered else messages.SUCCESS
    return level, (
        f"{done.invoice_number}: refunded {money(done.amount_refunded, done.currency)}; "
        f"{done.credits_clawed_back} credits taken back"
        + (f", {done.credits_unrecovered} already spent" if done.credits_unrecovered else "")
        + "."
    )
