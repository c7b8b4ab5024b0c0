import pytest


@pytest.fixture(autouse=True)
def _default_credit_settings(settings):
    """The documented defaults, whatever the environment sets."""
    settings.CREDITS_TRIAL_GRANT = 10
    settings.CREDITS_REGEN_CAP = 100
    settings.CREDITS_REGEN_AMOUNT = 1
