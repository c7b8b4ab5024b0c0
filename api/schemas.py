"""The API's request and response shapes (Pydantic, through Ninja's Schema)."""

from datetime import date, datetime

from ninja import Field, Schema


class ErrorBody(Schema):
    code: str = Field(description="A stable machine code, such as insufficient_credits.")
    message: str
    details: dict | None = None


class ErrorOut(Schema):
    error: ErrorBody


class BalanceOut(Schema):
    balance: int = Field(description="Credits that can be spent now.")
    paid: int = Field(description="The part bought (packs, plans).")
    promotional: int = Field(description="The part given (trial, codes, bonuses).")
    expiring: int = Field(description="Credits expiring at the soonest expiry's day.")
    expires_at: datetime | None = None


class LedgerEntryOut(Schema):
    id: int
    created_at: datetime
    kind: str
    amount: int
    balance_after: int
    description: str


class LedgerPageOut(Schema):
    entries: list[LedgerEntryOut]
    next_cursor: str | None = Field(None, description="Pass as ?cursor= for the next page.")


class PackOut(Schema):
    id: int
    name: str
    credits: int
    price: str
    currency: str


class PlanPriceOut(Schema):
    currency: str
    amount: str


class PlanOut(Schema):
    code: str
    name: str
    credits_per_period: int
    rollover_cap: int
    api_access: bool
    prices: list[PlanPriceOut]


class CatalogOut(Schema):
    packs: list[PackOut]
    plans: list[PlanOut]


class JobIn(Schema):
    operation: str = Field(description="text, image, ... as listed on the generate page.")
    model: str = ""
    tier: str = ""
    prompt: str = Field("", max_length=20000)
    is_edit: bool = False
    source_id: int | None = None
    seed: int | None = None
    max_output_tokens: int | None = Field(None, ge=1)
    use_own_key: bool = False


class EstimateOut(Schema):
    credits: int
    operation: str
    model: str
    input_tokens: int
    output_tokens: int


class JobOut(Schema):
    id: int
    status: str
    operation: str
    model: str
    tier: str
    prompt: str
    estimated_credits: int
    credits_charged: int
    error_message: str
    created_at: datetime
    completed_at: datetime | None = None
    result_url: str | None = Field(None, description="A signed URL, valid for a limited time.")


class JobPageOut(Schema):
    jobs: list[JobOut]
    next_cursor: str | None = None


class RedeemIn(Schema):
    code: str = Field(max_length=64)


class RedeemOut(Schema):
    credits: int
    balance: int


class LedgerQuery(Schema):
    cursor: str | None = None
    limit: int = Field(50, ge=1, le=200)
    kind: list[str] = Field(default_factory=list)
    date_from: date | None = None
    date_to: date | None = None
