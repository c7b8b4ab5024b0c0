"""Health of the Celery worker(s) on this host, for a container's health check.

Exits 0 when a worker whose node name ends in ``@<this host name>`` (or the one given with
``--node``) answers a ping within ``--timeout`` seconds, and the database and the broker
answer; 1 otherwise, saying what failed.
"""

import socket

from celery import current_app
from django.core.management.base import BaseCommand, CommandError

from core.health import check_broker, check_database


class Command(BaseCommand):
    help = "Exit 0 when this host's Celery worker, the database and the broker answer."

    def add_arguments(self, parser):
        parser.add_argument("--node", help="the worker's node name (default: any on this host)")
        parser.add_argument("--timeout", type=float, default=10.0)

    def handle(self, *args, node=None, timeout=10.0, **options):
        problems = []
        for name, check in (("database", check_database), ("broker", check_broker)):
            try:
                check()
            except Exception as exc:  # noqa: BLE001 - reported below
                problems.append(f"{name}: {type(exc).__name__}: {exc}")
        suffix = f"@{socket.gethostname()}"
        answered = []
        if not problems:
            destination = [node] if node else None
            replies = current_app.control.ping(destination=destination, timeout=timeout) or []
            for reply in replies:
                for name, answer in reply.items():
                    if (name == node if node else name.endswith(suffix)) and answer.get("ok"):
                        answered.append(name)
            if not answered:
                problems.append(f"no worker {node or '*' + suffix} answered within {timeout:g} s")
        if problems:
            raise CommandError("; ".join(problems))
        self.stdout.write(f"ok: {', '.join(sorted(answered))}")
