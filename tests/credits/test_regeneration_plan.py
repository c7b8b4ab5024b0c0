"""A free-tier spend with no regeneration due costs what a paid user's spend costs.

The due check rides on the spend statement: when nothing is due it must not change how the
statement runs (the same plan as a paid spend, but for the never-run check of the
period's key), only a due period adds the regeneration's entry and lot.
"""

import json
import re

import pytest
from django.db import connection

from credits.ledger_sql import DRAW, Movement, statement_for
from credits.services import regen_policy_for

_KEY_CHECK = "credits_ledgerentry_idempotency_key"


def plan_nodes(sql: str, params: dict) -> list[str]:
    """The statement's plan (node types and filters, in order), without executing it."""
    with connection.cursor() as cursor:
        cursor.execute("EXPLAIN (VERBOSE, COSTS false, FORMAT JSON) " + sql, params)
        [[plan]] = cursor.fetchone()
    nodes = []

    def walk(node):
        if node.get("Parent Relationship") == "SubPlan" and _KEY_CHECK in json.dumps(node):
            return  # the due period's key check: not run when nothing is due
        filters = " ".join(node.get(f, "") for f in ("Filter", "Join Filter", "One-Time Filter"))
        # Without the numbers of the plan's parameters ($19): the key check above shifts them.
        nodes.append(f"{node['Node Type']} {re.sub(r'[$][0-9]+', '$', filters)}")
        for child in node.get("Plans", []):
            walk(child)

    walk(plan["Plan"])
    return nodes


@pytest.mark.django_db
def test_a_free_tier_spend_plans_like_a_paid_one(make_user):
    user = make_user(credits=50)
    policy = regen_policy_for(user)
    assert policy is not None
    spend = Movement(
        user_id=user.pk,
        delta=-1,
        kind="SPEND",
        idempotency_key="plan-check",
        action="credits.spend",
        needs_no_holds=True,
    )

    paid = plan_nodes(*statement_for(spend, mode=DRAW))
    free = plan_nodes(*statement_for(spend, mode=DRAW, regen=policy))

    assert free == paid
