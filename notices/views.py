"""The email preferences page and the one-click unsubscribe link."""

from django.contrib import messages
from django.contrib.auth import get_user_model
from django.contrib.auth.decorators import login_required
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods

from .kinds import KINDS
from .selectors import notice_kinds_state
from .services import notice_preferences_set
from .tokens import unsubscribe_token_read


@login_required
@require_http_methods(["GET", "POST"])
def preferences(request):
    if request.method == "POST":
        wanted = {
            kind.name: request.POST.get(kind.name) == "on"
            for kind, _ in notice_kinds_state(user=request.user)
        }
        notice_preferences_set(user=request.user, wanted=wanted)
        messages.success(request, "Your email preferences were saved.")
        return redirect("notices:preferences")
    return render(
        request,
        "notices/preferences.html",
        {"kinds": notice_kinds_state(user=request.user)},
    )


@csrf_exempt  # RFC 8058: mail clients POST here with no session and no CSRF token.
@require_http_methods(["GET", "POST"])
def unsubscribe(request, token: str):
    """GET asks to confirm (link scanners fetch links); POST turns the kind off at once."""
    found = unsubscribe_token_read(token)
    user = kind = None
    if found is not None and found[1] in KINDS and KINDS[found[1]].optional:
        user = get_user_model().objects.filter(pk=found[0], is_active=True).first()
        kind = KINDS[found[1]]
    if user is None:
        return render(request, "notices/unsubscribe.html", {"invalid": True}, status=404)
    if request.method == "POST":
        notice_preferences_set(user=user, wanted={kind.name: False})
        if request.POST.get("List-Unsubscribe") == "One-Click":
            return HttpResponse("Unsubscribed.", content_type="text/plain")
        return render(request, "notices/unsubscribe.html", {"kind": kind, "done": True})
    return render(request, "notices/unsubscribe.html", {"kind": kind, "token": token})
