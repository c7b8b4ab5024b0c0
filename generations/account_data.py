"""The generations part of a user's data export and account deletion (see ``accounts.lifecycle``).

Jobs are exported with their prompts. On deletion the job rows stay (the ledger's spends and
refunds point at them) but what the person wrote or got is erased: prompts (and the prompt
chain kept in the parameters), result files, and the stored API key. An account with a job
still pending or running cannot be deleted until it has finished.
"""

import logging

from django.db import transaction
from django.urls import reverse

from accounts.lifecycle import register_account_data

from .models import ApiCredential, GenerationJob

logger = logging.getLogger(__name__)


def export_jobs(user):
    jobs = GenerationJob.objects.filter(user_id=user.pk).order_by("created_at", "pk")
    for job in jobs.iterator(chunk_size=500):
        yield {
            "id": job.pk,
            "created_at": job.created_at,
            "completed_at": job.completed_at,
            "operation": job.operation,
            "model": job.model,
            "status": job.status,
            "prompt": job.prompt,
            "parameters": job.parameters,
            "estimated_credits": job.estimated_credits,
            "credits_charged": job.credits_charged,
            "error_message": job.error_message,
            "result": reverse("generations:download", args=[job.pk]) if job.result_file else None,
        }


def export_api_key(user) -> list[dict]:
    return [
        {"provider": c.provider, "key_ends_with": c.key_hint, "created_at": c.created_at}
        for c in ApiCredential.objects.filter(user_id=user.pk)
    ]


def deletion_blockers(user) -> list[str]:
    running = list(
        GenerationJob.objects.filter(user_id=user.pk, status__in=GenerationJob.ACTIVE_STATUSES)
        .order_by("pk")
        .values_list("pk", flat=True)
    )
    if not running:
        return []
    numbers = ", ".join(f"#{pk}" for pk in running)
    return [
        f"Job {numbers} is still running: wait until it has finished (or cancel it), then try again."
    ]


def erase(*, user, actor, reason: str) -> None:
    ApiCredential.objects.filter(user_id=user.pk).delete()
    files = []
    jobs = list(
        GenerationJob.objects.filter(user_id=user.pk).only(
            "pk", "prompt", "parameters", "result_file"
        )
    )
    for job in jobs:
        if job.result_file:
            files.append((job.result_file.storage, job.result_file.name))
        job.prompt = ""
        job.parameters = {k: v for k, v in (job.parameters or {}).items() if k != "chain"}
        job.result_file = ""
    GenerationJob.objects.bulk_update(jobs, ["prompt", "parameters", "result_file"], batch_size=500)

    def delete_files() -> None:
        for storage, name in files:
            try:
                storage.delete(name)
            except Exception:  # a file left behind must not hide the others; staff see the log
                logger.exception(
                    "could not delete result file %s of deleted user %s", name, user.pk
                )

    transaction.on_commit(delete_files)


def register() -> None:
    register_account_data("jobs", export=export_jobs, blockers=deletion_blockers, erase=erase)
    register_account_data("api_key", export=export_api_key)
