"""The account page: who you are, your plan, your credits, your last login; and leaving."""

from allauth.account.models import EmailAddress
from django.contrib import messages
from django.contrib.auth import logout
from django.contrib.auth.decorators import login_required
from django.http import StreamingHttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_GET, require_http_methods

from .exceptions import AccountNotDeletable
from .forms import AccountDeleteForm, ProfileForm
from .lifecycle import account_summaries
from .services import account_delete, account_deletion_blockers, account_export_chunks


@login_required
@require_http_methods(["GET", "POST"])
def profile(request):
    user = request.user
    if request.method == "POST":
        form = ProfileForm(request.POST, instance=user)
        if form.is_valid():
            form.save()
            messages.success(request, "Your details were saved.")
            return redirect("accounts:profile")
    else:
        form = ProfileForm(instance=user)
    context = {
        "form": form,
        **account_summaries(user),
        "email_addresses": list(
            EmailAddress.objects.filter(user=user).order_by("-primary", "email")
        ),
    }
    return render(request, "accounts/profile.html", context, status=400 if form.errors else 200)


def export_response(user) -> StreamingHttpResponse:
    """The user's data as a JSON download, streamed (constant memory however long the history)."""
    response = StreamingHttpResponse(
        account_export_chunks(user=user), content_type="application/json"
    )
    filename = f"account-{user.pk}-{timezone.localdate():%Y-%m-%d}.json"
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    response["Cache-Control"] = "no-store"
    return response


@login_required
@require_GET
def account_export(request):
    return export_response(request.user)


@login_required
@require_http_methods(["GET", "POST"])
def account_delete_view(request):
    user = request.user
    form = AccountDeleteForm(request.POST or None, user=user)
    blockers = account_deletion_blockers(user=user)
    if request.method == "POST" and form.is_valid():
        try:
            account_delete(user=user, actor=user, reason="Deleted by the account holder")
        except AccountNotDeletable as exc:
            blockers = exc.reasons
        else:
            logout(request)
            messages.success(
                request, "Your account is deleted and your personal data erased. Goodbye."
            )
            return redirect("/")
    context = {"form": form, "blockers": blockers, **account_summaries(user)}
    status = 200
    if request.method == "POST":
        status = 409 if blockers and form.is_valid() else 400
    return render(request, "accounts/delete.html", context, status=status)
