from django.db import migrations

# The demo price rules, frozen as they were when this migration was written.
RULES = [
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


def add_rules(apps, schema_editor):
    from decimal import Decimal

    PriceRule = apps.get_model("generations", "PriceRule")
    for rule in RULES:
        PriceRule.objects.get_or_create(
            operation=rule["operation"],
            model=rule["model"],
            tier=rule["tier"],
            own_key=rule["own_key"],
            active=True,
            defaults={
                "name": rule["name"],
                "base_credits": rule["base_credits"],
                "credits_per_1k_input": Decimal(rule.get("credits_per_1k_input", "0")),
                "credits_per_1k_output": Decimal(rule.get("credits_per_1k_output", "0")),
                "edit_multiplier": Decimal(rule.get("edit_multiplier", "1")),
            },
        )


class Migration(migrations.Migration):
    dependencies = [("generations", "0003_pricing_claims_api_keys")]

    operations = [migrations.RunPython(add_rules, migrations.RunPython.noop)]
