"""The statements that move a balance and append its ledger entry and audit row.

A movement is ONE statement over the balance row and the user's lots, feeding the ledger,
lot and audit inserts and the balance row's update in the same CTE (see ``_lots_statement``).
The balance row's lock (``SELECT ... FOR UPDATE``, the per-user lock) is taken first, by a
statement of its own sent in the same round trip (``_run_locked``), after queueing for it in
arrival order on the user's advisory lock (``USER_QUEUE``): the movement's statement
then starts with the lock held, on a snapshot that has everything the previous holder
committed. The lock is held only while the server runs the two statements and the commit
right after them: there is no client round trip in between. The UNIQUE idempotency key makes
a repeated movement fail as a whole, so it never moves money.

Free-tier regeneration rides on the same statement: under the balance row's lock it works out
the credits due since ``regen_checked_at`` (whole periods, topping up to the cap and never
beyond), and writes the regeneration entry and the movement's entry, in that order, in one
statement. All times come from the database clock (the statement's start, not the
transaction's), so web servers with different clocks agree and a long transaction does not
judge time by when it began. The catch-up statement (``CATCH_UP``) does the same for a read
of the balance: when nothing is due it is a plain read and takes no lock.

Every movement keeps ``balance == lifetime_earned - lifetime_spent``: spends and their
refunds count on the spent side, every other kind on the earned side.
"""

import functools
import re
import weakref
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from json.encoder import encode_basestring_ascii

from django.core.serializers.json import DjangoJSONEncoder
from django.db import DEFAULT_DB_ALIAS, connections, transaction
from django.db.backends.utils import CursorDebugWrapper, CursorWrapper

from core.audit import AuditAction
from core.db import loaded, preparing_cursor
from core.queue import task_send

from .app_settings import app_settings
from .models import (
    SPENT_SIDE_KINDS,
    LedgerEntry,
    LedgerKind,
    LotCategory,
    LotSource,
)

SPENT_SIDE = SPENT_SIDE_KINDS
REGEN_ACTION = AuditAction.REGENERATE
REGEN_DESCRIPTION = "Free-tier regeneration"
EXPIRY_DESCRIPTION = "Credits expired"
VOID_DESCRIPTION = "Bonus credits voided with their purchase"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

_INSERT_COLUMNS = """
    INSERT INTO credits_ledgerentry
           (user_id, amount, kind, balance_before, balance_after, description, internal_note, metadata,
            idempotency_key, source_type, source_id, reverses_id, created_by_id, created_at)
"""

# The credits due for a locked row ``cur`` (columns balance, regen_checked_at, now_ts): whole
# periods since regen_checked_at, times the amount, topped up to the cap and never beyond.
# regen_checked_at advances by the whole periods only (the part of a period already waited
# is kept), also at the cap (time at the cap is not banked). A row never checked starts
# counting now; a regen_checked_at in the future (a clock that went backwards) is kept, and
# nothing is due until the clock has caught up with it and a whole period has passed.
# ``regen`` is a bigint like every other credit count, and so is ``cur.balance`` (the balance
# less a sum() of lapsed lots, cast back from numeric): a numeric ``regen`` would turn the pool
# of lots, its running sums and the draws numeric too, for free-tier users only.
_REGEN_CALC = """
    SELECT marked.*,
           CASE WHEN marked.balance >= %(regen_cap)s OR marked.periods = 0
                  -- the period's entry exists already (regen_checked_at was moved back by hand)
                  OR EXISTS (SELECT 1 FROM credits_ledgerentry e WHERE e.idempotency_key = marked.regen_key)
                THEN 0
                ELSE LEAST(%(regen_cap)s - marked.balance, %(regen_amount)s * marked.periods)
           END::bigint AS regen
      FROM (SELECT due.*,
                   'regen:' || %(uid)s::bigint || ':'
                     || (extract(epoch FROM due.checked_to) * 1000000)::bigint AS regen_key
              FROM (SELECT periods.*,
                           CASE WHEN periods.regen_checked_at IS NULL THEN periods.now_ts
                                ELSE periods.regen_checked_at + periods.periods * %(regen_every)s * interval '1 second'
                           END AS checked_to
                      FROM (SELECT cur.*,
                                   CASE WHEN cur.regen_checked_at IS NULL
                                          OR cur.regen_checked_at > cur.now_ts - %(regen_every)s * interval '1 second'
                                        THEN 0
                                        ELSE floor(extract(epoch FROM cur.now_ts - cur.regen_checked_at)
                                                   / %(regen_every)s)::bigint
                                   END AS periods
                              FROM cur) AS periods) AS due) AS marked
"""
# Something to write: a first check, or at least one whole period elapsed.
# --- lots -------------------------------------------------------------------------------------
#
# Every movement is one statement over the user's balance row and lots:
#
#   bal     the balance row, FOR UPDATE (the per-user lock every movement takes first);
#   held    then locks the user's lots holding credits, in burn order (and, for a refund, the
#           lots its spend drew from);
#   due     the held lots that have expired with credits left: the statement expires them
#           first (one EXPIRY entry per lot, key ``expire:<lot id>``), so whatever the
#           periodic expiry task has not reached yet is written before anything is judged
#           against the balance, and the balance row stays equal to the sum of the lots;
#   calc    free-tier regeneration due (a new promotional lot), judged on the balance
#           without the expired credits;
#   pool    the live lots (``effective_at <= t < expires_at``, t = the statement's clock)
#           in burn order, the regenerated lot (not written yet) among them; running sums
#           over the locked rows (a window cannot share a SELECT with FOR UPDATE);
#   gate    one row when the movement may go ahead (a spend: the live lots cover it and
#           spending is not frozen): every write below joins it, so a refused movement
#           writes nothing at all;
#   then the ledger entries (in id order: expiries, regeneration, the movement, voids, the
#   expiry of returned credits whose lot has lapsed), their lots and lot movements, the lots'
#   new ``remaining`` (one UPDATE per lot), the balance row and the audit rows.
#
# A movement's statement runs after a statement of its own has locked the balance row, in
# the same transaction (``_run_locked``): its snapshot then has everything the lock's previous
# holder committed, so it judges the current lots (a lot granted while it waited included)
# and updates current rows, never re-checking rows that changed while it waited. The
# catch-up statement locks the row itself (queueing for it first, as every locker does), and
# only when something is due: its lots are read FOR UPDATE, which reads their latest versions.

#: How a movement treats the lots.
GRANT = "grant"  # a new lot of ``delta`` credits
DRAW = "draw"  # take ``-delta`` in burn order, refused unless the live lots cover it
CLAW = "claw"  # take up to ``requested`` (the paid lot of its source first), never below zero
TAKE_ALL = "take_all"  # take every live credit (FORFEIT)
RETURN = "return"  # give ``delta`` back to the lots the spend ``reverses_id`` drew from
CATCH_UP = "catch_up"  # only what is due: expiries (and regeneration)

# The queue in front of the per-user lock. Whoever is going to lock a balance row first
# waits for the user's transaction-scoped advisory lock, then takes the row lock (free by
# then, unless a writer outside this module holds it). Waiting on a row lock alone, every
# waiter wakes at each commit (the row moves to a new version and they all queue again on
# it), so a user with many spends in flight gets slower the more there are; the advisory
# lock hands over to the next waiter in arrival order and wakes no other. The key is
# (CREDITS, user id), taken modulo 2^31 (ids beyond that share a queue with another user's,
# which only makes them wait in turn).
USER_QUEUE = "pg_advisory_xact_lock(1129465156, (%(uid)s::bigint & 2147483647)::int)"

_BURN_ORDER = "priority, expires_at ASC NULLS LAST, category DESC, effective_at, id NULLS LAST"
_EARNED_SIDE = "kind NOT IN ('SPEND', 'REFUND')"


def _lots_statement(mode: str, *, regen: bool) -> str:
    if mode == RETURN:
        held_filter = (
            "(l.has_remaining OR l.id IN (SELECT m.lot_id FROM credits_lotmovement m"
            " WHERE m.entry_id = %(reverses_id)s::bigint AND m.credits < 0))"
        )
    else:
        held_filter = "l.has_remaining"
    if regen:
        calc = _REGEN_CALC
    else:
        calc = """
    SELECT cur.*, 0::bigint AS periods, cur.regen_checked_at AS checked_to, NULL::text AS regen_key,
           0::bigint AS regen
      FROM cur"""
    drawing = mode in (DRAW, CLAW, TAKE_ALL)
    if mode == CATCH_UP:
        # A read of the balance: the row is locked (and what is due written) only when a
        # plain read of it says something is due; otherwise nothing below has a row to work
        # on and the statement is a plain read.
        regen_due = (
            "b.regen_checked_at IS NULL"
            " OR b.regen_checked_at <= statement_timestamp() - %(regen_every)s * interval '1 second'"
            if regen
            else "false"
        )
        head = f"""
WITH peek AS (
    SELECT b.balance, b.lifetime_earned, b.lifetime_spent, b.spend_holds, b.regen_checked_at,
           b.low_balance_threshold,
           ({regen_due})
           OR EXISTS (SELECT 1 FROM credits_creditlot l
                       WHERE l.user_id = b.user_id AND l.has_remaining
                         AND l.expires_at <= statement_timestamp()) AS due
      FROM credits_creditbalance b
     WHERE b.user_id = %(uid)s
), queue AS MATERIALIZED (
    SELECT {USER_QUEUE} FROM peek WHERE peek.due
), bal AS MATERIALIZED (
    SELECT b.balance, b.lifetime_earned, b.lifetime_spent, b.regen_checked_at, b.spend_holds,
           b.daily_cap, b.monthly_cap, b.spent_day, b.spent_in_day, b.spent_month, b.spent_in_month,
           b.low_balance_threshold, b.low_balance_armed, b.top_up_threshold, b.top_up_armed,
           statement_timestamp() AS now_ts
      FROM credits_creditbalance b
     WHERE b.user_id = %(uid)s AND EXISTS (SELECT FROM queue)
       FOR UPDATE
)"""
    else:
        head = """
WITH bal AS MATERIALIZED (
    SELECT b.balance, b.regen_checked_at, b.spend_holds,
           b.daily_cap, b.monthly_cap, b.spent_day, b.spent_in_day, b.spent_month, b.spent_in_month,
           b.low_balance_threshold, b.low_balance_armed, b.top_up_threshold, b.top_up_armed,
           statement_timestamp() AS now_ts
      FROM credits_creditbalance b
     WHERE b.user_id = %(uid)s
       FOR UPDATE
)"""
    parts = [
        head
        + f"""
, held AS MATERIALIZED (
    SELECT l.id, l.remaining, l.priority, l.expires_at, l.category, l.effective_at, l.source,
           l.source_type, l.source_id
      FROM credits_creditlot l
     WHERE l.user_id = (SELECT %(uid)s::bigint FROM bal)
       AND {held_filter}
     ORDER BY l.priority, l.expires_at, l.category DESC, l.effective_at, l.id
       FOR UPDATE OF l
), due AS MATERIALIZED (
    SELECT held.id, held.remaining, held.source_type, held.source_id
      FROM held, bal
     WHERE held.remaining > 0 AND held.expires_at <= bal.now_ts
), cur AS MATERIALIZED (
    SELECT bal.balance - coalesce((SELECT sum(due.remaining) FROM due), 0)::bigint AS balance,
           bal.regen_checked_at, bal.now_ts, bal.spend_holds, bal.balance AS row_balance,
           win.day_now, win.month_now,
           CASE WHEN bal.spent_day = win.day_now THEN bal.spent_in_day ELSE 0 END AS day_spent,
           CASE WHEN bal.spent_month = win.month_now THEN bal.spent_in_month ELSE 0 END AS month_spent,
           bal.daily_cap, bal.monthly_cap, bal.low_balance_threshold, bal.low_balance_armed,
           bal.top_up_threshold, bal.top_up_armed
      FROM bal
     CROSS JOIN LATERAL (
           SELECT (bal.now_ts AT TIME ZONE %(cap_tz)s)::date AS day_now,
                  date_trunc('month', bal.now_ts AT TIME ZONE %(cap_tz)s)::date AS month_now) AS win
), calc AS MATERIALIZED ({calc}
)"""
    ]
    if mode == CLAW:
        parts.append("""
, voided AS MATERIALIZED (
    SELECT held.id, held.remaining
      FROM held, bal
     WHERE held.remaining > 0 AND held.source = 'bonus'
       AND held.source_type = %(source_type)s::varchar AND held.source_id = %(source_id)s::bigint
       AND (held.expires_at IS NULL OR held.expires_at > bal.now_ts)
)""")
    if drawing:
        # A clawback takes from its source's own paid lots first: the purchase's (or the
        # subscription period's) lot, then that period's rollover lot; then the rest.
        first = (
            "CASE WHEN held.source_type = %(source_type)s::varchar"
            " AND held.source_id = %(source_id)s::bigint"
            " THEN CASE WHEN held.source IN ('purchase', 'subscription') THEN -1"
            " WHEN held.source = 'rollover' THEN 0 ELSE 1 END ELSE 1 END"
            if mode == CLAW
            else "1"
        )
        not_voided = "AND held.id NOT IN (SELECT id FROM voided)" if mode == CLAW else ""
        need = {
            DRAW: "%(need)s::bigint",
            CLAW: "least(%(need)s::bigint, total.live)",
            TAKE_ALL: "total.live",
        }[mode]
        allowed = (
            "total.live >= %(need)s::bigint AND (calc.spend_holds = 0 OR NOT %(needs_no_holds)s::boolean)"
            " AND (NOT %(capped)s::boolean"
            " OR ((calc.daily_cap IS NULL OR calc.day_spent + %(need)s::bigint <= calc.daily_cap)"
            " AND (calc.monthly_cap IS NULL OR calc.month_spent + %(need)s::bigint <= calc.monthly_cap)))"
            if mode == DRAW
            else "true"
        )
        parts.append(f"""
, pool AS (
    SELECT held.id, held.remaining, held.priority, held.expires_at, held.category, held.effective_at,
           {first} AS first
      FROM held, bal
     WHERE held.remaining > 0 AND held.effective_at <= bal.now_ts
       AND (held.expires_at IS NULL OR held.expires_at > bal.now_ts) {not_voided}
    UNION ALL
    SELECT NULL::bigint, calc.regen, %(regen_priority)s::smallint, NULL::timestamptz,
           'promotional'::varchar, calc.now_ts, 1
      FROM calc
     WHERE calc.regen > 0
), ranked AS (
    SELECT pool.*, sum(pool.remaining) OVER (ORDER BY first, {_BURN_ORDER} ROWS UNBOUNDED PRECEDING) AS upto
      FROM pool
), total AS (
    SELECT coalesce(sum(remaining), 0) AS live FROM pool
), gate AS MATERIALIZED (
    SELECT calc.*, {need} AS n
      FROM calc, total
     WHERE {allowed}
), draws AS MATERIALIZED (
    SELECT ranked.id AS lot_id, least(ranked.remaining, gate.n - (ranked.upto - ranked.remaining)) AS take
      FROM ranked, gate
     WHERE ranked.upto - ranked.remaining < gate.n
)""")
    else:
        parts.append("""
, gate AS MATERIALIZED (
    SELECT calc.*, 0::bigint AS n FROM calc
)""")
    if mode == RETURN:
        parts.append("""
, drawn AS (
    SELECT m.id AS move_id, m.lot_id,
           -m.credits - coalesce((SELECT sum(r.credits) FROM credits_lotmovement r WHERE r.returns_id = m.id), 0)
             AS open
      FROM credits_lotmovement m
     WHERE m.entry_id = %(reverses_id)s::bigint AND m.credits < 0
), back AS (
    SELECT drawn.*, sum(drawn.open) OVER (ORDER BY drawn.move_id DESC ROWS UNBOUNDED PRECEDING) AS upto
      FROM drawn
     WHERE drawn.open > 0
), gives AS MATERIALIZED (
    SELECT back.move_id, back.lot_id,
           least(back.open, %(delta)s::bigint - (back.upto - back.open)) AS give,
           (held.expires_at IS NOT NULL AND held.expires_at <= bal.now_ts) AS lapsed
      FROM back
      JOIN held ON held.id = back.lot_id
     CROSS JOIN bal
     WHERE back.upto - back.open < %(delta)s::bigint
), unmatched AS (
    SELECT %(delta)s::bigint - coalesce((SELECT sum(give) FROM gives), 0) AS credits
), refunded AS (
    -- the windows the refunded spend counted in: a refund takes it out of them again
    SELECT (s.created_at AT TIME ZONE %(cap_tz)s)::date AS day,
           date_trunc('month', s.created_at AT TIME ZONE %(cap_tz)s)::date AS month
      FROM credits_ledgerentry s
     WHERE s.id = %(reverses_id)s::bigint AND s.kind = 'SPEND'
)""")
    # The entries, in the order their ids are given (the balance chain follows it).
    no_source = "NULL::varchar, NULL::bigint, NULL::bigint, NULL::bigint"
    rows = [
        """
    SELECT 0 AS ord, due.id AS sub, 'EXPIRY'::varchar AS kind, -due.remaining AS amount,
           %(expiry_description)s::varchar AS description, ''::text AS internal_note,
           jsonb_build_object('lot_id', due.id) AS metadata, 'expire:' || due.id AS key,
           due.source_type, due.source_id, NULL::bigint AS reverses_id, NULL::bigint AS created_by_id
      FROM due, gate""",
        f"""
    SELECT 1, 0, 'REGENERATION'::varchar, gate.regen, %(regen_description)s::varchar, ''::text,
           jsonb_build_object('periods', gate.periods, 'from', gate.regen_checked_at, 'to', gate.checked_to),
           gate.regen_key, {no_source}
      FROM gate
     WHERE gate.regen > 0""",
    ]
    main_amount = {
        GRANT: "%(delta)s::bigint",
        DRAW: "%(delta)s::bigint",
        RETURN: "%(delta)s::bigint",
        CLAW: "-gate.n",
        TAKE_ALL: "-gate.n",
    }
    if mode != CATCH_UP:
        metadata = "%(metadata)s::jsonb"
        if mode == CLAW:
            metadata += " || jsonb_build_object('requested', %(need)s::bigint, 'unrecovered', %(need)s::bigint - gate.n)"
        when = "WHERE gate.n > 0" if mode == TAKE_ALL else ""
        rows.append(f"""
    SELECT 2, 0, %(kind)s::varchar, {main_amount[mode]}, %(description)s::varchar, %(internal_note)s::text,
           {metadata}, %(key)s::varchar, %(source_type)s::varchar, %(source_id)s::bigint,
           %(reverses_id)s::bigint, %(created_by_id)s::bigint
      FROM gate {when}""")
    if mode == CLAW:
        rows.append("""
    SELECT 3, voided.id, 'VOID'::varchar, -voided.remaining, %(void_description)s::varchar, ''::text,
           jsonb_build_object('lot_id', voided.id), %(key)s::varchar || ':void:' || voided.id,
           %(source_type)s::varchar, %(source_id)s::bigint, NULL::bigint, %(created_by_id)s::bigint
      FROM voided, gate""")
    if mode == RETURN:
        rows.append("""
    SELECT 4, 0, 'EXPIRY'::varchar, -lapsed.credits, %(expiry_description)s::varchar, ''::text,
           jsonb_build_object('returned_by', %(key)s::varchar), %(key)s::varchar || ':expired',
           %(source_type)s::varchar, %(source_id)s::bigint, NULL::bigint, %(created_by_id)s::bigint
      FROM (SELECT sum(give) AS credits FROM gives WHERE lapsed) AS lapsed, gate
     WHERE lapsed.credits > 0""")
    parts.append(f"""
, rows AS MATERIALIZED ({" UNION ALL ".join(rows)}
), chained AS (
    SELECT rows.*,
           gate.row_balance + coalesce(sum(rows.amount) OVER (ORDER BY rows.ord, rows.sub
                                        ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING), 0) AS bb
      FROM rows, gate
), entry AS (
    {_INSERT_COLUMNS}
    SELECT %(uid)s, amount, kind, bb, bb + amount, description, internal_note, metadata, key,
           source_type, source_id, reverses_id, created_by_id, now_ts
      FROM (SELECT chained.*, gate.now_ts FROM chained, gate ORDER BY chained.ord, chained.sub) AS ordered
    RETURNING id, kind, amount, balance_before, balance_after, created_at, idempotency_key, created_by_id
), tagged AS MATERIALIZED (
    SELECT entry.*, rows.ord, rows.sub FROM entry JOIN rows ON rows.key = entry.idempotency_key
)""")
    # New lots: the regenerated one (less what this statement drew from it), the grant's.
    regen_drawn = "coalesce((SELECT take FROM draws WHERE lot_id IS NULL), 0)" if drawing else "0"
    lot_rows = [
        f"""
    SELECT 'promotional'::varchar AS category, 'regeneration'::varchar AS source, tagged.amount AS original,
           tagged.amount - {regen_drawn} AS remaining, %(regen_priority)s::smallint AS priority,
           NULL::timestamptz AS expires_at, 0::numeric AS cost_basis, ''::varchar AS currency,
           NULL::varchar AS source_type, NULL::bigint AS source_id, tagged.id AS grant_entry_id
      FROM tagged
     WHERE tagged.ord = 1"""
    ]
    if mode == GRANT:
        lot_rows.append("""
    SELECT %(lot_category)s::varchar, %(lot_source)s::varchar, tagged.amount, tagged.amount,
           %(lot_priority)s::smallint,
           coalesce(%(lot_expires_at)s::timestamptz, gate.now_ts + %(lot_expires_in)s::float8 * interval '1 second'),
           CASE WHEN %(lot_category)s::varchar = 'promotional' THEN 0
                ELSE coalesce(%(lot_cost_basis)s::numeric, same.cost_basis, 0) END,
           CASE WHEN %(lot_category)s::varchar = 'promotional' THEN ''
                ELSE coalesce(%(lot_currency)s::varchar, same.currency, '') END,
           %(source_type)s::varchar, %(source_id)s::bigint, tagged.id
      FROM tagged
     CROSS JOIN gate
      LEFT JOIN LATERAL (
           -- a purchase granted again (a refund reversed) keeps the purchase's cost basis
           SELECT o.cost_basis, o.currency FROM credits_creditlot o
            WHERE o.source_type = %(source_type)s::varchar AND o.source_id = %(source_id)s::bigint
              AND o.source = %(lot_source)s::varchar AND o.user_id = %(uid)s
            ORDER BY o.id LIMIT 1) AS same ON true
     WHERE tagged.ord = 2""")
    if mode == RETURN:
        # Credits a spend drew before lots existed have no lot to go back to: they come back
        # as an opening lot of their own, created by the refund.
        lot_rows.append("""
    SELECT 'promotional'::varchar, 'opening'::varchar, unmatched.credits, unmatched.credits,
           %(opening_priority)s::smallint, NULL::timestamptz, 0::numeric, ''::varchar,
           %(source_type)s::varchar, %(source_id)s::bigint, tagged.id
      FROM tagged, unmatched
     WHERE tagged.ord = 2 AND unmatched.credits > 0""")
    parts.append(f"""
, new_lot AS (
    INSERT INTO credits_creditlot
           (user_id, category, source, original, remaining, priority, effective_at, expires_at,
            cost_basis, currency, source_type, source_id, grant_entry_id, created_at)
    SELECT %(uid)s, category, source, original, remaining, priority, gate.now_ts, expires_at,
           cost_basis, currency, source_type, source_id, grant_entry_id, gate.now_ts
      FROM ({" UNION ALL ".join(lot_rows)}) AS lots, gate
    RETURNING id, grant_entry_id
)""")
    moves = [
        """
    SELECT tagged.id AS entry_id, tagged.sub AS lot_id, tagged.amount AS credits, NULL::bigint AS returns_id
      FROM tagged
     WHERE tagged.ord IN (0, 3)"""
    ]
    changes = ["SELECT due.id AS lot_id, -due.remaining AS d FROM due"]
    if drawing:
        moves.append("""
    SELECT main.id, coalesce(draws.lot_id, (SELECT new_lot.id FROM new_lot JOIN tagged r ON r.id = new_lot.grant_entry_id
                                            WHERE r.ord = 1)),
           -draws.take, NULL::bigint
      FROM draws, tagged AS main
     WHERE main.ord = 2 AND draws.take > 0""")
        changes.append("SELECT draws.lot_id, -draws.take FROM draws WHERE draws.lot_id IS NOT NULL")
    if mode == CLAW:
        changes.append("SELECT voided.id, -voided.remaining FROM voided")
    if mode == RETURN:
        moves.append("""
    SELECT main.id, gives.lot_id, gives.give, gives.move_id
      FROM gives, tagged AS main
     WHERE main.ord = 2 AND gives.give > 0
    UNION ALL
    SELECT lapse.id, gives.lot_id, -gives.give, NULL::bigint
      FROM gives, tagged AS lapse
     WHERE lapse.ord = 4 AND gives.give > 0 AND gives.lapsed""")
        changes.append("SELECT gives.lot_id, gives.give FROM gives WHERE NOT gives.lapsed")
    if mode == DRAW:
        day_delta = month_delta = "CASE WHEN %(capped)s::boolean THEN gate.n ELSE 0 END"
    elif mode == RETURN:
        day_delta = "-coalesce((SELECT %(delta)s::bigint FROM refunded WHERE refunded.day = gate.day_now), 0)"
        month_delta = "-coalesce((SELECT %(delta)s::bigint FROM refunded WHERE refunded.month = gate.month_now), 0)"
    else:
        day_delta = month_delta = "0"
    parts.append(f"""
, moves AS (
    INSERT INTO credits_lotmovement (entry_id, lot_id, credits, returns_id, created_at)
    SELECT entry_id, lot_id, credits, returns_id, gate.now_ts
      FROM ({" UNION ALL ".join(moves)}) AS m, gate
), changes AS (
    SELECT c.lot_id, sum(c.d) AS d
      FROM ({" UNION ALL ".join(changes)}) AS c
     GROUP BY c.lot_id
), lots_moved AS (
    UPDATE credits_creditlot l
       SET remaining = l.remaining + changes.d
      FROM changes, gate
     WHERE l.id = changes.lot_id AND changes.d <> 0
), sums AS (
    SELECT count(*) AS entries, coalesce(sum(amount), 0) AS total,
           coalesce(sum(amount) FILTER (WHERE {_EARNED_SIDE}), 0) AS earned,
           coalesce(-sum(amount) FILTER (WHERE NOT ({_EARNED_SIDE})), 0) AS spent
      FROM rows
), moved AS (
    UPDATE credits_creditbalance b
       SET balance = gate.row_balance + sums.total,
           lifetime_earned = b.lifetime_earned + sums.earned,
           lifetime_spent = b.lifetime_spent + sums.spent,
           regen_checked_at = gate.checked_to,
           spent_day = gate.day_now,
           spent_in_day = greatest(0, gate.day_spent + {day_delta}),
           spent_month = gate.month_now,
           spent_in_month = greatest(0, gate.month_spent + {month_delta}),
           low_balance_armed = (gate.low_balance_threshold IS NULL
                                OR gate.row_balance + sums.total >= gate.low_balance_threshold),
           top_up_armed = (gate.top_up_threshold IS NULL OR gate.row_balance + sums.total >= gate.top_up_threshold),
           version = b.version + 1,
           updated_at = now()
      FROM gate, sums
     WHERE b.user_id = %(uid)s
       AND (sums.entries > 0 OR gate.checked_to IS DISTINCT FROM gate.regen_checked_at)
    RETURNING b.balance, b.lifetime_earned, b.lifetime_spent, b.spend_holds, b.regen_checked_at,
              b.low_balance_threshold
), crossing AS (
    -- an armed threshold the balance has just fallen below: due work, once per fall
    INSERT INTO credits_balancecrossing
           (user_id, kind, threshold, balance_before, balance_after, entry_id, created_at,
            handled_at, attempts, last_error)
    SELECT %(uid)s, c.kind, c.threshold, gate.row_balance, moved.balance,
           (SELECT max(tagged.id) FROM tagged), gate.now_ts, NULL, 0, ''
      FROM moved, gate
     CROSS JOIN LATERAL (VALUES ('low_balance', gate.low_balance_threshold, gate.low_balance_armed),
                                ('top_up', gate.top_up_threshold, gate.top_up_armed)) AS c(kind, threshold, armed)
     WHERE c.armed AND moved.balance < c.threshold
    RETURNING id
), audit AS (
    INSERT INTO credits_auditlog (user_id, actor_id, action, success, metadata, error_message, created_at)
    SELECT %(uid)s, tagged.created_by_id,
           CASE tagged.ord WHEN 2 THEN %(action)s::varchar WHEN 1 THEN %(regen_action)s::varchar
                           WHEN 3 THEN %(void_action)s::varchar ELSE %(expire_action)s::varchar END,
           true,
           CASE WHEN tagged.ord = 2 THEN %(audit)s::jsonb ELSE jsonb_build_object('kind', tagged.kind) END
             || jsonb_build_object('amount', tagged.amount, 'ledger_entry_id', tagged.id), '', now()
      FROM tagged
)""")
    if mode == CATCH_UP:
        # The balance row as it is now: as moved, as locked (another statement wrote what
        # was due while this one waited), or as read (nothing was due); and the credits
        # regenerated.
        parts.append("""
SELECT moved.balance, moved.lifetime_earned, moved.lifetime_spent, moved.spend_holds,
       moved.regen_checked_at, coalesce((SELECT sum(amount) FROM tagged WHERE ord = 1), 0)::bigint,
       moved.low_balance_threshold, EXISTS (SELECT 1 FROM crossing)
  FROM moved
UNION ALL
SELECT bal.balance, bal.lifetime_earned, bal.lifetime_spent, bal.spend_holds, bal.regen_checked_at, 0,
       bal.low_balance_threshold, false
  FROM bal
 WHERE NOT EXISTS (SELECT 1 FROM moved)
UNION ALL
SELECT peek.balance, peek.lifetime_earned, peek.lifetime_spent, peek.spend_holds, peek.regen_checked_at, 0,
       peek.low_balance_threshold, false
  FROM peek
 WHERE NOT EXISTS (SELECT 1 FROM bal)
""")
    else:
        parts.append("""
SELECT id, kind, amount, balance_before, balance_after,
       (extract(epoch FROM created_at) * 1000000)::bigint, idempotency_key,
       EXISTS (SELECT 1 FROM crossing)
  FROM tagged
 ORDER BY id
""")
    return "".join(parts)


_LOT_STATEMENTS = {
    (mode, regen): _lots_statement(mode, regen=regen)
    for mode in (GRANT, DRAW, CLAW, TAKE_ALL, RETURN, CATCH_UP)
    for regen in (False, True)
}


@dataclass(frozen=True)
class RegenPolicy:
    """Free-tier regeneration: ``amount`` credits per ``every_seconds``, up to ``cap``."""

    every_seconds: int
    amount: int
    cap: int

    def params(self) -> dict:
        return {
            "regen_every": self.every_seconds,
            "regen_amount": self.amount,
            "regen_cap": self.cap,
            "regen_description": REGEN_DESCRIPTION,
            "regen_action": REGEN_ACTION,
        }


def regen_key(*, user_id: int, checked_to: datetime) -> str:
    """The idempotency key of the regeneration entry that accounts ``user_id`` up to ``checked_to``.

    regen_checked_at only moves forward, so each catch-up has its own key; two catch-ups
    racing for the same period compute the same key, and the second cannot be written.
    """
    micros = (checked_to - _EPOCH) // timedelta(microseconds=1)
    return f"regen:{user_id}:{micros}"


@dataclass(frozen=True)
class LotTerms:
    """The lot a grant creates: its category, source, priority, expiry and cost basis.

    ``expires_at`` (absolute) wins over ``expires_in`` (seconds after the grant, on the
    database clock); neither: never expires. ``cost_basis`` None for a paid lot: that of
    the lot the same source created before (a purchase granted again), else 0.
    """

    category: str
    source: str
    priority: int
    expires_at: datetime | None = None
    expires_in: float | None = None
    cost_basis: Decimal | None = None
    currency: str | None = None

    def params(self) -> dict:
        return {
            "lot_category": self.category,
            "lot_source": self.source,
            "lot_priority": self.priority,
            "lot_expires_at": self.expires_at,
            "lot_expires_in": None if self.expires_in is None else float(self.expires_in),
            "lot_cost_basis": self.cost_basis,
            "lot_currency": self.currency,
        }


#: The lot each kind of grant creates by default: (source, category).
LOT_OF_KIND = {
    LedgerKind.PURCHASE: (LotSource.PURCHASE, LotCategory.PAID),
    LedgerKind.SUBSCRIPTION_GRANT: (LotSource.SUBSCRIPTION, LotCategory.PAID),
    LedgerKind.TRIAL_GRANT: (LotSource.TRIAL, LotCategory.PROMOTIONAL),
    LedgerKind.VOUCHER: (LotSource.VOUCHER, LotCategory.PROMOTIONAL),
    LedgerKind.BONUS: (LotSource.BONUS, LotCategory.PROMOTIONAL),
    LedgerKind.ADJUSTMENT: (LotSource.ADJUSTMENT, LotCategory.PROMOTIONAL),
}


def default_lot(kind: str) -> "LotTerms":
    """The lot a grant of ``kind`` creates when nothing more is said: the kind's source and
    category, the source's priority and expiry."""
    source, category = LOT_OF_KIND[kind]
    after = app_settings.lot_expiry(source)
    return LotTerms(
        category=category,
        source=source,
        priority=app_settings.lot_priority(source),
        expires_in=None if after is None else after.total_seconds(),
    )


_NO_LOT = {
    "lot_category": None,
    "lot_source": None,
    "lot_priority": None,
    "lot_expires_at": None,
    "lot_expires_in": None,
    "lot_cost_basis": None,
    "lot_currency": None,
}


#: ``json.dumps(value, cls=DjangoJSONEncoder)``, without building an encoder on every call.
_to_json = DjangoJSONEncoder().encode


def _audit_json(audit: dict, kind: str, amount: int) -> str:
    """The audit row's metadata: ``audit`` with the movement's kind and amount, as
    ``_to_json`` writes it (written out directly when there is nothing else in it)."""
    if audit:
        return _to_json({**audit, "kind": kind, "amount": amount})
    return f'{{"kind": {encode_basestring_ascii(kind)}, "amount": {int(amount)}}}'


@dataclass(frozen=True)
class Movement:
    """One change of one user's balance, described completely before it is applied."""

    user_id: int
    delta: int
    kind: str
    idempotency_key: str
    action: str
    description: str = ""
    #: Staff only: never shown to the customer (see ``LedgerEntry.internal_note``).
    internal_note: str = ""
    metadata: dict = field(default_factory=dict)
    audit: dict = field(default_factory=dict)
    #: What caused it (see ``credits.references``): both None or both set.
    source_type: str | None = None
    source_id: int | None = None
    reverses_id: int | None = None
    created_by_id: int | None = None
    #: Refuse the movement while the user's spending is frozen (open dispute).
    needs_no_holds: bool = False
    #: The lot a grant creates (None for movements that create none).
    lot: "LotTerms | None" = None

    def params(self) -> dict:
        on_spent_side = self.kind in SPENT_SIDE
        kind = str(self.kind)
        return {
            "uid": self.user_id,
            "delta": self.delta,
            "earned": 0 if on_spent_side else self.delta,
            "spent": -self.delta if on_spent_side else 0,
            "needs_no_holds": self.needs_no_holds,
            "kind": kind,
            "key": self.idempotency_key,
            "description": self.description[:255],
            "internal_note": self.internal_note,
            "metadata": _to_json(self.metadata) if self.metadata else "{}",
            "source_type": self.source_type,
            "source_id": self.source_id,
            "reverses_id": self.reverses_id,
            "created_by_id": self.created_by_id,
            "action": self.action,
            # a customer's spend counts against their spending caps (and a refund of it back)
            "capped": self.kind == LedgerKind.SPEND,
            "audit": _audit_json(self.audit, kind, self.delta),
        }


@dataclass(frozen=True)
class BalanceSnapshot:
    """A balance row as read (after any regeneration that was due)."""

    balance: int = 0
    lifetime_earned: int = 0
    lifetime_spent: int = 0
    spend_holds: int = 0
    regen_checked_at: datetime | None = None
    #: Credits regenerated by this read (0 when nothing was due).
    regenerated: int = 0
    #: The user's low-balance threshold (None: not set).
    low_balance_threshold: int | None = None

    @property
    def below_threshold(self) -> bool:
        return self.low_balance_threshold is not None and self.balance < self.low_balance_threshold


def _db():
    """The default database's wrapper, looked up once (``django.db.connection`` is a proxy
    that looks it up again on every attribute access)."""
    return connections[DEFAULT_DB_ALIAS]


_PLACEHOLDER = re.compile(r"%\((\w+)\)s|%%")


@functools.cache
def _numbered(sql: str) -> tuple[str, tuple[str, ...]]:
    """``sql`` with its ``%(name)s`` placeholders as ``$1, $2, ...`` and the names in that
    order, worked out once per statement: the driver otherwise scans the whole text again on
    every execution (it caches that work only for statements under 4096 characters)."""
    names: dict[str, int] = {}

    def number(match: re.Match) -> str:
        if match.group(1) is None:
            return "%"
        return f"${names.setdefault(match.group(1), len(names) + 1)}"

    return _PLACEHOLDER.sub(number, sql), tuple(names)


class _LoggedCursor(CursorDebugWrapper):
    """Django's debug wrapper, logging the statement with its values (a prepared server-side
    cursor has no client-side query text for Django to read back)."""

    def execute(self, sql, params=None):
        raw_sql, values = _bound(sql, params)
        with self.debug_sql(self.db.ops.compose_sql(sql, params)):
            return self._execute_with_wrappers(raw_sql, values, many=False, executor=self._execute)


def _bound(sql: str, params: dict) -> tuple[str, list]:
    raw_sql, names = _numbered(sql)
    return raw_sql, [params[name] for name in names]


class _Statements:
    """A cursor for this module's statements, seen by Django as its own are: query logging,
    counting and execute wrappers see every statement, a broken transaction is refused, and
    the driver's errors come out as Django's.

    Prepared: bound server-side and prepared once per connection, so a (large) CTE is parsed
    and planned once instead of on every call. ``CREDITS_PREPARED_STATEMENTS = False`` turns
    this off (for a transaction-pooling PgBouncer older than 1.21). When nothing would see a
    statement (no query log, no execute wrapper), the driver's cursor is used as it is, with
    the checks Django's wrapper would make made here: its layers cost as much client time as
    the driver's own work.
    """

    def __init__(self, db):
        self.db, self.direct, self.driver = db, False, None
        if not app_settings.PREPARED_STATEMENTS:
            self.cursor, self.bind = db.cursor(), False
            return
        prepared = self.driver = preparing_cursor(db)  # ``$n`` placeholders: see ``_numbered``
        if db.queries_logged:
            self.cursor, self.bind = _LoggedCursor(prepared, db), False
        elif db.execute_wrappers:
            self.cursor, self.bind = CursorWrapper(prepared, db), True
        else:
            self.cursor, self.bind, self.direct = prepared, True, True

    def execute(self, sql: str, params: dict) -> None:
        self.send(self.ready(sql, params))

    def ready(self, sql: str, params: dict) -> tuple[str, list | dict]:
        """``sql`` and ``params`` as the cursor takes them (bound when it binds)."""
        return _bound(sql, params) if self.bind else (sql, params)

    def send(self, ready: tuple[str, list | dict]) -> None:
        if self.direct:
            self.db.validate_no_broken_transaction()
            with self.db.wrap_database_errors:
                self.cursor.execute(*ready)
        else:
            self.cursor.execute(*ready)

    def unprepared(self, sql: str) -> bool:
        """Whether ``sql`` is yet to be prepared on this connection (never, when statements
        are not prepared: each is parsed and planned where it is sent)."""
        return self.driver is not None and sql not in _prepared_on.get(self.driver.connection, ())

    def prepare(self, sql: str, params: dict) -> None:
        """Send ``sql`` with ``params`` on the driver's cursor, unseen by query logs and
        execute wrappers: a statement that only gets another ready changes nothing to see."""
        self.db.validate_no_broken_transaction()
        self.driver.execute(*_bound(sql, params))

    def prepared(self, sql: str) -> None:
        _prepared_on.setdefault(self.driver.connection, set()).add(sql)

    def rows(self) -> list[tuple]:
        if self.direct:
            with self.db.wrap_database_errors:
                return self.cursor.fetchall()
        return self.cursor.fetchall()

    def control(self, sql: str) -> None:
        """A transaction-control statement (never prepared), logged like the others."""
        with self.db.cursor() as cursor:
            cursor.execute(sql)

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.cursor.close()


def _run(sql: str, params: dict) -> list[tuple]:
    """Run one of this module's statements and return its rows."""
    with _Statements(_db()) as statements:
        statements.execute(sql, params)
        return statements.rows()


# Every movement takes the user's balance row lock first, in a statement of its own, after
# queueing for it on the user's advisory lock (see ``USER_QUEUE``). It returns the balance.
_LOCKED_ROW = (
    "SELECT b.balance FROM queue, credits_creditbalance b WHERE b.user_id = %(uid)s FOR UPDATE OF b"
)
_LOCK_BALANCE = f"""
WITH queue AS MATERIALIZED (SELECT {USER_QUEUE})
{_LOCKED_ROW}
"""
# A movement's own lock statement also has the movement's statement use its generic plan,
# planned once per connection (and again only when a table it reads changes shape or its
# statistics), never for each execution. The server plans a prepared statement at each of its
# first five executions on a connection ("custom" plans for the values given) before it settles
# on the generic one, and it plans right after the lock is granted, while the user's other
# movements queue behind it: for this statement, a few milliseconds each time. Every movement
# statement looks rows up by keys (the user, the lot, the spend), so the values given never
# change its best plan. The setting lasts until the transaction ends; inside the caller's
# transaction the previous one is put back right after the movement (``_PLANS_AS_BEFORE``).
_GENERIC_PLANS = """was AS MATERIALIZED (
    SELECT set_config('credits.plan_cache_mode', current_setting('plan_cache_mode'), true)
), generic AS MATERIALIZED (
    SELECT set_config('plan_cache_mode', 'force_generic_plan', true) FROM was
)"""
_LOCK_FOR_MOVEMENT = f"""
WITH {_GENERIC_PLANS}, queue AS MATERIALIZED (SELECT {USER_QUEUE} FROM generic)
{_LOCKED_ROW}
"""
# The same setting on its own, for a movement's statement's first execution on a connection
# (see ``_run_locked``).
_PLANS_GENERIC = f"WITH {_GENERIC_PLANS} SELECT FROM generic"
_PLANS_AS_BEFORE = (
    "SELECT set_config('plan_cache_mode', current_setting('credits.plan_cache_mode'), true)"
)
_SAVEPOINT = "credits_movement"
#: Per driver connection, the movement statements prepared on it.
_prepared_on: "weakref.WeakKeyDictionary[object, set[str]]" = weakref.WeakKeyDictionary()


def lock_balance(*, user_id: int) -> int | None:
    """Lock the balance row of ``user_id`` as a movement does, in the caller's transaction,
    and return the balance (None: the user has no balance row)."""
    rows = _run(_LOCK_BALANCE, {"uid": user_id})
    return rows[0][0] if rows else None


def _run_locked(sql: str, params: dict) -> list[tuple]:
    """Lock the balance row of ``params["uid"]``, then run the movement ``sql``: one unit
    of work, and one round trip to the server.

    The lock is its own statement so that the movement's statement starts once the lock is
    held: in READ COMMITTED its snapshot then has everything the lock's previous holder
    committed (the lots it drew from, a lot granted while this one waited), and it never
    re-checks rows that changed while it waited. The statements go out together (a
    pipeline, synced once), so the lock is held only while the server runs them.

    With no transaction open, the two statements are one implicit transaction (the
    extended protocol's: everything up to the pipeline's Sync, committed there, or rolled
    back as a whole when one fails). Inside the caller's transaction they run in a
    savepoint, so a failed statement (a repeated idempotency key) leaves the caller's
    transaction usable.

    The first time a connection runs ``sql``, the server would parse it and build its plan
    once the lock is granted, while the user's other movements wait: for this statement,
    about ten milliseconds. So that time, the same round trip first runs ``sql`` for a user
    id that no user has, ``~uid`` (negative, and of the same integer type as ``uid``: the
    same parameter types, hence the same prepared statement), which writes nothing and
    leaves the statement parsed and planned before the lock statement is sent.
    """
    db = _db()
    inside = db.in_atomic_block or not db.get_autocommit()
    with _Statements(db) as statements:
        first = statements.unprepared(sql)
        # Both statements are bound before the first is sent: once the lock statement is
        # on its way it may be granted at once, and then the lock is held until the
        # movement's statement and the Sync arrive.
        uid = params["uid"]
        lock = statements.ready(_LOCK_BALANCE if first else _LOCK_FOR_MOVEMENT, {"uid": uid})
        movement = statements.ready(sql, params)
        try:
            # The rows are read after the pipeline has closed: the whole exchange is a
            # single round trip.
            with db.wrap_database_errors, db.connection.pipeline():
                if inside:
                    statements.control(f"SAVEPOINT {_SAVEPOINT}")
                if first:
                    statements.prepare(_PLANS_GENERIC, {})
                    statements.prepare(sql, {**params, "uid": ~uid})
                statements.send(lock)
                statements.send(movement)
                if inside:
                    statements.control(_PLANS_AS_BEFORE)
                    statements.control(f"RELEASE SAVEPOINT {_SAVEPOINT}")
            rows = statements.rows()
            if first:
                statements.prepared(sql)
        except BaseException:
            if inside and db.connection is not None and not db.connection.closed:
                statements.control(f"ROLLBACK TO SAVEPOINT {_SAVEPOINT}")
                statements.control(f"RELEASE SAVEPOINT {_SAVEPOINT}")
            raise
    return rows


def mode_for(m: Movement) -> str:
    """How ``m`` treats the lots, from its kind and sign."""
    if m.kind == LedgerKind.REFUND:
        return RETURN
    if m.kind == LedgerKind.CLAWBACK:
        return CLAW
    if m.kind == LedgerKind.FORFEIT:
        return TAKE_ALL
    return GRANT if m.delta > 0 else DRAW


def statement_for(
    m: Movement | None, *, mode: str, regen: RegenPolicy | None = None, need: int | None = None
) -> tuple[str, dict]:
    """The statement applying ``m`` (None: only what is due) and its parameters."""
    params = {
        **(m.params() if m is not None else _CATCH_UP_PARAMS),
        **(m.lot.params() if m is not None and m.lot is not None else _NO_LOT),
        **_constant_params(),
        "need": -m.delta if need is None and m is not None else need,
    }
    if regen is not None:
        params.update(regen.params())
    return _LOT_STATEMENTS[(mode, regen is not None)], params


#: (priorities, cap time zone, the parameters built from them) as last built.
_constants: tuple | None = None


def _constant_params() -> dict:
    """The parameters every movement's statement takes from the settings and this module,
    built again only when the settings they come from change (the settings are read, and
    validated, once)."""
    global _constants
    priority, cap_tz = app_settings.LOT_PRIORITY, app_settings.CAP_TIMEZONE
    built = _constants
    if built is not None and built[0] is priority and built[1] == cap_tz:
        return built[2]
    params = {
        "regen_priority": priority[LotSource.REGENERATION],
        "opening_priority": priority[LotSource.OPENING],
        "regen_description": REGEN_DESCRIPTION,
        "regen_action": REGEN_ACTION,
        "expiry_description": EXPIRY_DESCRIPTION,
        "expire_action": AuditAction.EXPIRE,
        "void_description": VOID_DESCRIPTION,
        "void_action": AuditAction.VOID,
        "cap_tz": cap_tz,
    }
    _constants = (priority, cap_tz, params)
    return params


def apply_movement(
    m: Movement,
    *,
    regen: RegenPolicy | None = None,
    mode: str | None = None,
    need: int | None = None,
) -> LedgerEntry | None:
    """Apply ``m`` (after the expiries and regeneration due) inside the caller's transaction.

    ``mode``: how it treats the lots (default: from its kind and sign, see ``mode_for``);
    ``need``: what a clawback asks for. Returns the new entry, or None when the movement was
    refused (the live lots do not cover a spend, spending is frozen, the user has no
    balance row, or a forfeiture found nothing to take). Raises IntegrityError when the
    idempotency key (or a one-per-spend refund) already exists.
    """
    mode = mode or mode_for(m)
    if mode == GRANT and m.lot is None:
        m = replace(m, lot=default_lot(m.kind))
    sql, params = statement_for(m, mode=mode, regen=regen, need=need)
    rows = _run_locked(sql, params)
    if rows and rows[0][7]:
        _crossed()
    # created_at comes as microseconds since the epoch: an integer loads in the driver's C
    # code, a timestamptz through Django's time zone loader, in Python.
    for entry_id, _kind, amount, before, after, created_us, key, _crossing in rows:
        if key == m.idempotency_key:
            metadata = m.metadata
            if mode == CLAW:
                metadata = {**metadata, "requested": need, "unrecovered": need + amount}
            created_at = _EPOCH + timedelta(microseconds=created_us)
            return _entry_from(m, entry_id, amount, before, after, created_at, metadata)
    return None


def apply_catch_up(*, user_id: int, regen: RegenPolicy | None = None) -> BalanceSnapshot | None:
    """Read the balance row of ``user_id``, first writing what is due: the expiry of lapsed
    lots and any regeneration.

    One statement: a plain read (no lock) when nothing is due, else the row is locked, what
    is due written and the row returned as it was left. It cannot fail on an entry's key (it
    expires only the lots it locked with credits left and checks the regeneration's key), so
    it needs no savepoint inside the caller's transaction. None when the user has no
    balance row.
    """
    sql, params = statement_for(None, mode=CATCH_UP, regen=regen)
    params["uid"] = user_id
    rows = _run(sql, params)
    if not rows:
        return None
    *snapshot, crossed = rows[0]
    if crossed:
        _crossed()
    return BalanceSnapshot(*snapshot)


def _crossed() -> None:
    """A movement took a balance below an armed threshold: have the crossing handled once
    the movement commits (the periodic sweep finds it if this message is lost)."""
    transaction.on_commit(lambda: task_send("credits.tasks.handle_crossings"), robust=True)


_CATCH_UP_PARAMS = {
    **Movement(user_id=0, delta=0, kind="", idempotency_key="", action="").params(),
    "need": 0,
}

# The credits a user could spend now: the live lots, plus the regeneration due.
_PG_LIVE = f"""
WITH cur AS (
    SELECT b.balance - coalesce((SELECT sum(l.remaining) FROM credits_creditlot l
                                  WHERE l.user_id = b.user_id AND l.has_remaining
                                    AND l.expires_at <= statement_timestamp()), 0)::bigint AS balance,
           b.regen_checked_at, statement_timestamp() AS now_ts, b.spend_holds
      FROM credits_creditbalance b
     WHERE b.user_id = %(uid)s
), calc AS ({_REGEN_CALC}
)
SELECT balance + CASE WHEN %(regen_on)s::boolean THEN regen ELSE 0 END, spend_holds FROM calc
"""


def _regen_read_params(regen: RegenPolicy | None) -> dict:
    if regen is None:
        return {"regen_on": False, **RegenPolicy(every_seconds=1, amount=0, cap=0).params()}
    return {"regen_on": True, **regen.params()}


def apply_regeneration(*, user_id: int, regen: RegenPolicy | None) -> BalanceSnapshot | None:
    """Read the balance row, first writing what is due (expiries, regeneration): one
    statement, a plain read when nothing is due (see ``apply_catch_up``)."""
    return apply_catch_up(user_id=user_id, regen=regen)


def live_credits(*, user_id: int, regen: RegenPolicy | None = None) -> tuple[int, int] | None:
    """(credits spendable now, spending holds) for ``user_id``, computed without writing."""
    rows = _run(_PG_LIVE, {"uid": user_id, **_regen_read_params(regen)})
    return tuple(rows[0]) if rows else None


def _entry_from(
    m: Movement,
    entry_id: int,
    amount: int,
    before: int,
    after: int,
    created_at: datetime,
    metadata: dict,
) -> LedgerEntry:
    """The entry ``m`` wrote, as the statement returned it (``amount``: what it moved)."""
    return loaded(
        LedgerEntry,
        {
            "id": entry_id,
            "user_id": m.user_id,
            "amount": amount,
            "kind": m.kind,
            "balance_before": before,
            "balance_after": after,
            "description": m.description[:255],
            "internal_note": m.internal_note,
            "metadata": metadata,
            "idempotency_key": m.idempotency_key,
            "source_type": m.source_type,
            "source_id": m.source_id,
            "reverses_id": m.reverses_id,
            "created_by_id": m.created_by_id,
            "created_at": created_at,
        },
    )
