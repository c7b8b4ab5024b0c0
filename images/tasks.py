"""Celery tasks of the images app. Thin: each calls one service."""

from celery import shared_task

from .cleanup import files_sweep


@shared_task(name="images.tasks.sweep_orphan_files", ignore_result=True)
def sweep_orphan_files() -> dict:
    """Beat, hourly: delete stored files no row names (see ``cleanup``)."""
    return files_sweep()
