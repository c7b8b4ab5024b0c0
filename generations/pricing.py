"""Prices: which rule covers a request, the most it can cost, and what it finally costs.

A job is charged its estimate when submitted; when it completes, the final cost from the
measured usage is charged and the difference refunded. The final cost never exceeds the
estimate: should a provider report more usage than the bound allowed, the platform bears it.
"""

import math
from dataclasses import dataclass
from decimal import Decimal

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


def rule_for(
    *, operation: str, model: str, tier: str = "", own_key: bool = False, membership: str = ""
) -> PriceRule:
    """The most specific active rule for the request. Raises NoPriceRule when none applies.

    ``membership``: the member's plan tier; a rule for that tier beats one for anyone
    (after the model and the quality tier)."""
    candidates = PriceRule.objects.filter(
        active=True,
        operation=operation,
        own_key=own_key,
        model__in=[model, ""],
        tier__in=[tier, ""],
        membership_tier__in=[membership, ""],
    )
    best = None
    best_rank = (-1, -1, -1)
    for rule in candidates:
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
) -> Estimate:
    """The most the request can cost. For text, bounded by the input it sends and
    ``max_output_tokens``; for pictures, the rule's base credits. ``membership``: the
    member's plan tier (price rules may differ by it)."""
    rule = rule_for(
        operation=operation, model=model, tier=tier, own_key=own_key, membership=membership
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
