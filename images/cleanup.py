"""The periodic sweep of stored files nothing names any more.

Pictures and results are written to storage before the transaction that records them; if
the process dies in between (a worker killed after saving a job's result, a web process
killed during an upload) the file stays behind with no row naming it. Deleting a picture
deletes its files after commit; a process that dies just then leaves them too. The sweep
lists the stored files under the pictures' and the jobs' folders, keeps every file a row
names and every file younger than ``IMAGES_ORPHAN_GRACE_SECONDS`` (its row may still be
committing), and deletes the rest. It also deletes the results still held by FAILED or
CANCELLED jobs. Running it twice changes nothing the second time.
"""

import logging
from collections.abc import Iterator
from datetime import datetime, timedelta

from django.core.files.storage import default_storage
from django.db import transaction
from django.utils import timezone

from generations.models import GenerationJob

from .app_settings import app_settings
from .models import EnhancedImage, ImageView
from .storage import delete_files

logger = logging.getLogger(__name__)

#: The folders swept, each with the rows that name its files.
PREFIXES = ("images/", "generations/")
CHUNK = 500


def files_sweep(*, now: datetime | None = None) -> dict:
    now = now or timezone.now()
    before = now - timedelta(seconds=app_settings.ORPHAN_GRACE_SECONDS)
    unlinked = _failed_job_results()
    report = {"seen": 0, "deleted": 0, "failed_job_results": len(unlinked)}
    candidates = []
    for name, modified in _stored_files(PREFIXES):
        report["seen"] += 1
        if (modified is not None and modified >= before) or name in unlinked:
            continue
        candidates.append(name)
    for start in range(0, len(candidates), CHUNK):
        chunk = candidates[start : start + CHUNK]
        named = set(
            EnhancedImage.objects.filter(original__in=chunk).values_list("original", flat=True)
        ) | set(
            GenerationJob.objects.filter(result_file__in=chunk).values_list(
                "result_file", flat=True
            )
        )
        orphans = [name for name in chunk if name not in named]
        report["deleted"] += delete_files(orphans)
    window = int(now.timestamp()) // app_settings.VIEW_WINDOW_SECONDS
    report["views_forgotten"] = ImageView.objects.filter(window__lt=window - 1).delete()[0]
    if report["deleted"] or report["failed_job_results"]:
        logger.warning("Swept stored files: %s", report)
    return report


def _failed_job_results() -> set[str]:
    """Results held by FAILED or CANCELLED jobs: unlinked, then deleted after commit."""
    with transaction.atomic(durable=True):
        jobs = list(
            GenerationJob.objects.select_for_update(skip_locked=True)
            .filter(status__in=[GenerationJob.Status.FAILED, GenerationJob.Status.CANCELLED])
            .exclude(result_file="")
            .only("pk", "result_file")[:CHUNK]
        )
        names = [job.result_file.name for job in jobs]
        GenerationJob.objects.filter(pk__in=[job.pk for job in jobs]).update(result_file="")
        transaction.on_commit(lambda: delete_files(names))
    return set(names)


def _stored_files(prefixes) -> Iterator[tuple[str, datetime | None]]:
    storage = default_storage
    bucket = getattr(storage, "bucket", None) if hasattr(storage, "bucket_name") else None
    for prefix in prefixes:
        if bucket is not None:
            location = (storage.location or "").strip("/")
            base = f"{location}/" if location else ""
            for obj in bucket.objects.filter(Prefix=base + prefix):
                yield obj.key[len(base) :], obj.last_modified
        else:
            yield from _walk(storage, prefix.rstrip("/"))


def _walk(storage, folder: str) -> Iterator[tuple[str, datetime | None]]:
    try:
        folders, files = storage.listdir(folder)
    except FileNotFoundError:
        return
    for name in files:
        path = f"{folder}/{name}"
        try:
            modified = storage.get_modified_time(path)
        except FileNotFoundError:
            continue
        yield path, modified
    for sub in folders:
        yield from _walk(storage, f"{folder}/{sub}")
