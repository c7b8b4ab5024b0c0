"""Price rules and estimates: the most a request can cost, and what it finally costs."""

import io
import math
from decimal import Decimal

import pytest

from generations.demo import DEMO_RULES, seed
from generations.exceptions import NoPriceRule
from generations.models import GenerationJob, PriceRule
from generations.pricing import Rates, estimate, final_cost, price, rule_for

pytestmark = pytest.mark.django_db


def test_a_fresh_database_has_the_demo_rules_and_seeding_again_adds_nothing():
    # The data migration shipped them (this test runs before any transactional test flushes).
    assert PriceRule.objects.filter(active=True).count() == len(DEMO_RULES)
    out = io.StringIO()
    assert seed(stdout=out) == 0
    assert "0 created" in out.getvalue()
    assert PriceRule.objects.count() == len(DEMO_RULES)


def test_seed_recreates_a_missing_rule_and_leaves_staff_edits_alone(price_rules):
    rule = PriceRule.objects.get(operation="enhance", tier="4K")
    rule.base_credits = 12
    rule.save()
    PriceRule.objects.filter(operation="enhance", tier="1K").delete()
    assert seed(stdout=io.StringIO()) == 1
    assert PriceRule.objects.get(operation="enhance", tier="1K").base_credits == 2
    assert PriceRule.objects.get(operation="enhance", tier="4K").base_credits == 12


@pytest.mark.parametrize("tier,credits", [("1K", 2), ("2K", 5), ("4K", 10)])
def test_enhancement_tiers_cost_2_5_10(price_rules, tier, credits):
    assert estimate(operation="enhance", model="procedural-svg", tier=tier).credits == credits


def test_an_exact_model_rule_beats_the_any_model_rule(price_rules):
    assert estimate(operation="image", model="procedural-svg").credits == 3
    assert estimate(operation="image", model="some-hosted-model").credits == 8
    PriceRule.objects.create(
        name="Special", operation="image", model="some-hosted-model", base_credits=20
    )
    assert estimate(operation="image", model="some-hosted-model").credits == 20


def test_edits_cost_less_than_fresh_pictures(price_rules):
    fresh = estimate(operation="image", model="procedural-svg").credits
    edit = estimate(operation="image", model="procedural-svg", is_edit=True).credits
    assert edit < fresh
    assert edit == 2  # 3 x 0.5 rounded up


def test_text_estimate_grows_with_the_prompt_and_the_longest_answer(price_rules):
    short = estimate(operation="text", model="m", prompt="Hi", max_output_tokens=256)
    long_prompt = estimate(
        operation="text", model="m", prompt="word " * 2000, max_output_tokens=256
    )
    long_answer = estimate(operation="text", model="m", prompt="Hi", max_output_tokens=4096)
    assert short.credits < long_prompt.credits
    assert short.credits < long_answer.credits
    # 1 base + the input bound at 1 per 1k + 4096 output tokens at 4 per 1k, rounded up
    assert long_answer.credits == math.ceil(
        1 + Decimal(long_answer.input_tokens) / 1000 + Decimal(4096 * 4) / 1000
    )


def test_the_input_bound_covers_every_byte_sent(price_rules):
    prompt = "ünïcødé ✓ " * 50
    bound = estimate(operation="text", model="m", prompt=prompt, max_output_tokens=100).input_tokens
    assert bound >= len(prompt.encode("utf-8"))


def test_own_key_jobs_pay_only_the_platform_fee(price_rules):
    platform = estimate(operation="text", model="m", prompt="Hi" * 100, max_output_tokens=4096)
    own = estimate(
        operation="text", model="m", prompt="Hi" * 100, max_output_tokens=4096, own_key=True
    )
    assert own.credits == 1 < platform.credits
    assert own.rule.own_key


def test_no_rule_means_no_price(price_rules):
    PriceRule.objects.filter(operation="text").update(active=False)
    with pytest.raises(NoPriceRule):
        rule_for(operation="text", model="m")


def test_final_cost_uses_the_rates_agreed_at_submission_and_never_exceeds_the_estimate(
    price_rules, user
):
    rule = PriceRule.objects.get(operation="text", own_key=False)
    est = estimate(operation="text", model="m", prompt="Write a haiku", max_output_tokens=512)
    job = GenerationJob(
        user=user,
        operation="text",
        model="m",
        prompt="Write a haiku",
        estimated_credits=est.credits,
        parameters={"pricing": Rates.of(rule).as_json()},
        price_rule=rule,
    )
    # Staff double the price after submission: the job keeps its price.
    rule.credits_per_1k_output = Decimal("8")
    rule.save()
    assert (
        final_cost(job=job, usage={"input_tokens": 30, "output_tokens": 100}) == 2
    )  # 1 + 0.03 + 0.4
    assert final_cost(job=job, usage={"input_tokens": 10**6, "output_tokens": 10**6}) == est.credits
    assert final_cost(job=job, usage={}) == est.credits  # no usage reported: the estimate


def test_price_rounds_up_to_whole_credits():
    rates = Rates(
        operation="text", base_credits=0, per_1k_input=Decimal("0.5"), per_1k_output=Decimal("0")
    )
    assert price(rates, input_tokens=1) == 1
    assert price(rates, input_tokens=2001) == 2
