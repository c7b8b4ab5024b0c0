"""The webhook endpoints: one thin view per provider over the provider-neutral pipeline."""

import logging

from django.http import Http404, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from core.metrics import WEBHOOKS_RECEIVED, count_safely

from .exceptions import IngestBusy, ProviderNotConfigured, WebhookRejected
from .webhooks import webhook_ingest

logger = logging.getLogger(__name__)


@csrf_exempt
@require_POST
def provider_webhook(request, provider: str):
    """Verify and store one delivery, answer at once; a Celery task processes it. A provider
    that is not configured here is a 404 (``webhook_ingest`` asks for its adapter first)."""
    try:
        result = webhook_ingest(provider_name=provider, body=request.body, headers=request.headers)
    except WebhookRejected as exc:
        logger.warning("%s webhook rejected: %s", provider, exc.reason)
        count_safely(WEBHOOKS_RECEIVED, provider, "rejected")
        return JsonResponse({"error": exc.reason}, status=exc.status)
    except IngestBusy as exc:  # logged where it happened, with the event's id
        return JsonResponse({"error": exc.message}, status=exc.status)
    except ProviderNotConfigured as exc:
        raise Http404(str(exc)) from None
    return JsonResponse(
        {"status": "duplicate" if result.duplicate else "received", "id": result.event_id}
    )
