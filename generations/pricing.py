"""Prices: which rule covers a request, the most it can cost, and what it finally costs.

A job is charged its estimate when submitted; when it completes, the final cost from the
measured usage is charged and the difference refunded. The final cost never exceeds the
estimate: should a provider report more usage than the bound allowed, the platform bears it.
"""

import math
from dataclasses import dataclass
from decimal import Decimal

from django.db.models.expressions import RawSQL

from .exceptions import NoPriceRule
from .models import Operation, PriceRule
from .prompts import chat_messages, max_input_tokens

_THOUSAND = Decimal(1000)


@dataclass(frozen=True)
class Rates:
    """A rule's prices, as a job keeps them: the price agreed at submission is the one charged."""

    operation: str
    base_credits: int
    per_1k_input: Decimal = Decimal(0)
    per_1k_output: Decimal = Decimal(0)
    edit_multiplier: Decimal = Decimal(1)

    @classmethod
    def of(cls, rule: PriceRule) -> "Rates":
        return cls(
            operation=rule.operation,
            base_credits=rule.base_credits,
            per_1k_input=Decimal(rule.credits_per_1k_input),
            per_1k_output=Decimal(rule.credits_per_1k_output),
            edit_multiplier=Decimal(rule.edit_multiplier),
        )

    def as_json(self) -> dict:
        return {
            "operation": self.operation,
            "base_credits": self.base_credits,
            "per_1k_input": str(self.per_1k_input),
            "per_1k_output": str(self.per_1k_output),
            "edit_multiplier": str(self.edit_multiplier),
        }

    @classmethod
    def from_json(cls, data: dict) -> "Rates":
        return cls(
            operation=data["operation"],
            base_credits=int(data["base_credits"]),
            per_1k_input=Decimal(data["per_1k_input"]),
            per_1k_output=Decimal(data["per_1k_output"]),
            edit_multiplier=Decimal(data["edit_multiplier"]),
        )


@dataclass(frozen=True)
class Estimate:
    credits: int
    rule: PriceRule
    #: Token bounds the estimate assumed (0 for pictures).
    input_tokens: int = 0
    output_tokens: int = 0
    is_edit: bool = False
    own_key: bool = False
    #: The stamp of the price list the rule was chosen from (see ``PriceList``).
    prices_stamp: str = ""


#: A digest of the whole price-rule table (every row, every column, active or not) as the
#: statement sees it: any change to any rule, however it is written (saved, updated in bulk,
#: deleted), gives another.
PRICES_STAMP_SQL = (
    "SELECT md5(coalesce(string_agg(r::text, ',' ORDER BY r.id), ''))"
    f' FROM "{PriceRule._meta.db_table}" r'
)


@dataclass(frozen=True)
class PriceList:
    """The active price rules and the stamp (``PRICES_STAMP_SQL``) of the table they were
    read from, both read by one statement."""

    rules: tuple[PriceRule, ...]
    stamp: str

    @classmethod
    def read(cls) -> "PriceList":
        rules = tuple(
            PriceRule.objects.filter(active=True).annotate(
                prices_stamp=RawSQL(PRICES_STAMP_SQL, ())
            )
        )
        if not rules:
            return cls(rules=(), stamp="")
        return cls(rules=rules, stamp=rules[0].prices_stamp)


_kept: PriceList | None = None


def kept_prices() -> PriceList:
    """This process's copy of the price list, read the first time it is asked for and after
    ``forget_kept_prices``. It can be out of date: whoever charges by it compares its stamp
    with ``PRICES_STAMP_SQL`` in the transaction that charges, and forgets it when they
    differ (``job_submit``). The rules in it are shared: read them, never change them."""
    global _kept
    kept = _kept
    if kept is None:
        kept = PriceList.read()
        if kept.rules:
            _kept = kept
    return kept


def forget_kept_prices() -> None:
    global _kept
    _kept = None


def rule_for(
    *,
    operation: str,
    model: str,
    tier: str = "",
    own_key: bool = False,
    membership: str = "",
    prices: PriceList | None = None,
) -> PriceRule:
    """The most specific active rule for the request. Raises NoPriceRule when none applies.

    ``membership``: the member's plan tier; a rule for that tier beats one for anyone
    (after the model and the quality tier). ``prices``: the price list to choose from
    (default: read now)."""
    prices = prices or PriceList.read()
    best = None
    best_rank = (-1, -1, -1)
    for rule in prices.rules:
        if (
            rule.operation != operation
            or rule.own_key != own_key
            or rule.model not in (model, "")
            or rule.tier not in (tier, "")
            or rule.membership_tier not in (membership, "")
        ):
            continue
        rank = (int(bool(rule.model)), int(bool(rule.tier)), int(bool(rule.membership_tier)))
        if rank > best_rank:
            best, best_rank = rule, rank
    if best is None:
        what = (
            f"{Operation(operation).label.lower() if operation in Operation.values else operation}"
        )
        extra = " on your own API key" if own_key else ""
        raise NoPriceRule(f"There is no price for {what} with {model or 'this model'}{extra} yet.")
    return best


def price(
    rates: Rates, *, input_tokens: int = 0, output_tokens: int = 0, is_edit: bool = False
) -> int:
    """Credits for one request at ``rates``: whole credits, rounded up, at least one.

    Token rates count for text only; pictures cost their base credits.
    """
    raw = Decimal(rates.base_credits)
    if rates.operation == Operation.TEXT:
        raw += rates.per_1k_input * Decimal(max(0, input_tokens)) / _THOUSAND
        raw += rates.per_1k_output * Decimal(max(0, output_tokens)) / _THOUSAND
    if is_edit:
        raw *= rates.edit_multiplier
    return max(1, math.ceil(raw))


def estimate(
    *,
    operation: str,
    model: str,
    tier: str = "",
    prompt: str = "",
    source_text: str | None = None,
    max_output_tokens: int = 0,
    is_edit: bool = False,
    own_key: bool = False,
    membership: str = "",
    prices: PriceList | None = None,
) -> Estimate:
    """The most the request can cost. For text, bounded by the input it sends and
    ``max_output_tokens``; for pictures, the rule's base credits. ``membership``: the
    member's plan tier (price rules may differ by it). ``prices``: the price list to use
    (default: read now)."""
    prices = prices or PriceList.read()
    rule = rule_for(
        operation=operation,
        model=model,
        tier=tier,
        own_key=own_key,
        membership=membership,
        prices=prices,
    )
    input_tokens = output_tokens = 0
    if operation == Operation.TEXT:
        input_tokens = max_input_tokens(chat_messages(prompt=prompt, source_text=source_text))
        output_tokens = max(0, int(max_output_tokens))
    credits = price(
        Rates.of(rule), input_tokens=input_tokens, output_tokens=output_tokens, is_edit=is_edit
    )
    return Estimate(
        credits=credits,
        rule=rule,
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        is_edit=is_edit,
        own_key=own_key,
        prices_stamp=prices.stamp,
    )


def final_cost(*, job, usage: dict) -> int:
    """What ``job`` costs for the ``usage`` its backend reported, at the rates agreed when it
    was submitted; never more than its estimate. Text without token counts costs the estimate."""
    pricing = (job.parameters or {}).get("pricing")
    if not pricing:
        return job.estimated_credits
    rates = Rates.from_json(pricing)
    if job.operation == Operation.TEXT:
        if "input_tokens" not in usage or "output_tokens" not in usage:
            return job.estimated_credits
        cost = price(
            rates,
            input_tokens=int(usage["input_tokens"]),
            output_tokens=int(usage["output_tokens"]),
            is_edit=job.is_edit,
        )
    else:
        cost = price(rates, is_edit=job.is_edit)
    return min(cost, job.estimated_credits)
