"""Project hooks into allauth's flows."""

from allauth.account.adapter import DefaultAccountAdapter
from allauth.account.internal.flows.signup import prevent_enumeration
from allauth.core import context as allauth_context
from allauth.core.exceptions import ImmediateHttpResponse
from django.contrib import messages
from django.contrib.sites.shortcuts import get_current_site
from django.core.exceptions import PermissionDenied
from django.db import IntegrityError, transaction

from .net import client_ip
from .outbox import outbound_email_queue


class AccountAdapter(DefaultAccountAdapter):
    error_messages = {
        **DefaultAccountAdapter.error_messages,
        "too_many_login_attempts": (
            "Too many failed log-in attempts. For your security, logging in is paused for a "
            "few minutes. Try again later, or reset your password."
        ),
        "email_password_mismatch": "The email address or password is not correct.",
    }

    def get_client_ip(self, request) -> str:
        """The same address the login record uses, so rate limits and records agree."""
        ip = client_ip(request)
        if not ip:
            raise PermissionDenied("Unable to determine the client's IP address")
        return ip

    def save_user(self, request, user, form, commit=True):
        user = super().save_user(request, user, form, commit=False)
        user.name = (form.cleaned_data.get("name") or "").strip()
        if commit:
            try:
                with transaction.atomic():
                    user.save()
            except IntegrityError:
                # Another sign-up with the same address won the race between the form's
                # uniqueness check and this insert: answer as for any taken address.
                raise ImmediateHttpResponse(
                    prevent_enumeration(request, email=user.email)
                ) from None
        return user

    def send_mail(self, template_prefix: str, email: str, context: dict) -> None:
        """Render allauth's email as allauth does, then queue it in the outbox.

        It is sent after the request's work commits, by a task that retries: a mail server
        that is down or refuses never fails the request.
        """
        request = allauth_context.request
        ctx = {
            "request": request,
            "email": email,
            "current_site": get_current_site(request),
            **context,
        }
        outbound_email_queue(
            message=self.render_mail(template_prefix, email, ctx), kind=template_prefix
        )

    def respond_email_verification_sent(self, request, user):
        match = getattr(request, "resolver_match", None)
        if match is not None and match.url_name == "account_login":
            messages.warning(
                request,
                "You need to confirm your email address before you can log in. "
                "Open the link in the email we sent you.",
            )
        return super().respond_email_verification_sent(request, user)

    def pre_login(self, request, user, **kwargs):
        if getattr(user, "status", None) == "SUSPENDED":
            from allauth.account.internal.stagekit import clear_login

            clear_login(request)
            return self.respond_user_inactive(request, user)
        return super().pre_login(request, user, **kwargs)
