"""Demo price rules: what a fresh installation charges until staff change it.

``seed`` creates the rules that are missing and leaves existing ones (possibly edited by
staff) alone, so it can run any number of times. Migration 0004 ships the same rules.
"""

from decimal import Decimal

DEMO_RULES = [
    {
        "name": "Illustrator picture (SVG)",
        "operation": "image",
        "model": "procedural-svg",
        "tier": "",
        "own_key": False,
        "base_credits": 3,
        "edit_multiplier": "0.50",
    },
    {
        "name": "Picture from a hosted model",
        "operation": "image",
        "model": "",
        "tier": "",
        "own_key": False,
        "base_credits": 8,
        "edit_multiplier": "0.50",
    },
    {
        "name": "Enhancement to 1K",
        "operation": "enhance",
        "model": "",
        "tier": "1K",
        "own_key": False,
        "base_credits": 2,
    },
    {
        "name": "Enhancement to 2K",
        "operation": "enhance",
        "model": "",
        "tier": "2K",
        "own_key": False,
        "base_credits": 5,
    },
    {
        "name": "Enhancement to 4K",
        "operation": "enhance",
        "model": "",
        "tier": "4K",
        "own_key": False,
        "base_credits": 10,
    },
    {
        "name": "Text, priced by tokens",
        "operation": "text",
        "model": "",
        "tier": "",
        "own_key": False,
        "base_credits": 1,
        "credits_per_1k_input": "1.000",
        "credits_per_1k_output": "4.000",
        "edit_multiplier": "0.50",
    },
    {
        "name": "Platform fee: text on your own API key",
        "operation": "text",
        "model": "",
        "tier": "",
        "own_key": True,
        "base_credits": 1,
    },
    {
        "name": "Platform fee: picture on your own API key",
        "operation": "image",
        "model": "",
        "tier": "",
        "own_key": True,
        "base_credits": 1,
    },
]
_KEY_FIELDS = ("operation", "model", "tier", "own_key")


def rule_defaults(rule: dict) -> dict:
    return {
        "name": rule["name"],
        "base_credits": rule["base_credits"],
        "credits_per_1k_input": Decimal(rule.get("credits_per_1k_input", "0")),
        "credits_per_1k_output": Decimal(rule.get("credits_per_1k_output", "0")),
        "edit_multiplier": Decimal(rule.get("edit_multiplier", "1")),
    }


def install(price_rule_model, rules=DEMO_RULES) -> int:
    """Create the missing rules with ``price_rule_model`` (the real or a migration's model)."""
    created = 0
    for rule in rules:
        lookup = {field: rule[field] for field in _KEY_FIELDS}
        _, made = price_rule_model.objects.get_or_create(
            **lookup, active=True, defaults=rule_defaults(rule)
        )
        created += made
    return created


def seed(*, stdout) -> int:
    """Create the demo price rules that are missing. Returns how many were created."""
    from .models import PriceRule

    created = install(PriceRule)
    stdout.write(f"Price rules: {created} created, {len(DEMO_RULES) - created} already there.\n")
    return created
