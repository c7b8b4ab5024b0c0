"""The offline backend: pictures drawn as SVG from the words of the prompt.

Needs no network and no key. The same prompt and seed always give the same picture; edits
redraw the earlier picture with the changes asked for; enhancements redraw it larger and
with more detail.
"""

import secrets

from ...exceptions import InvalidRequest
from ..base import BackendOutput, BackendRequest, JobDraft, Offering, PermanentBackendError
from .render import render
from .vocabulary import read_chain

MODEL = "procedural-svg"
#: Enhancement tiers: output width in pixels and the level of added detail.
ENHANCE_TIERS = {"1K": (1024, 1), "2K": (2048, 2), "4K": (4096, 3)}
MAX_SEED = 2**31 - 1


class ProceduralSvgBackend:
    name = "procedural"

    def offerings(self, *, user_has_key: bool) -> list[Offering]:
        return [
            Offering("image", MODEL, "Illustrator (SVG, offline)", self.name, supports_edit=True),
            Offering(
                "enhance",
                MODEL,
                "Illustrator enhancement",
                self.name,
                tiers=tuple(ENHANCE_TIERS),
                needs_source=True,
            ),
        ]

    def form_fields(self, *, operation: str) -> frozenset[str]:
        return frozenset({"seed"})

    def prepare(self, draft: JobDraft) -> dict:
        """The seed and the chain of prompts the picture is drawn from: an edit adds its
        prompt to the earlier picture's chain, an enhancement redraws that chain."""
        source = draft.source_parameters
        if source is None:
            return {"seed": _seed(draft.seed), "chain": [draft.prompt]}
        chain = list(source.get("chain") or [draft.source_prompt])
        return {
            "seed": int(source.get("seed", 0)),
            "chain": chain + [draft.prompt] if draft.is_edit else chain,
        }

    def run(self, request: BackendRequest) -> BackendOutput:
        params = request.parameters
        chain = list(params.get("chain") or [request.prompt])
        seed = int(params.get("seed", 0))
        width, detail = 1024, 0
        if request.operation == "enhance":
            if request.tier not in ENHANCE_TIERS:
                raise PermanentBackendError(f"Unknown enhancement tier {request.tier!r}.")
            width, detail = ENHANCE_TIERS[request.tier]
        elif request.operation != "image":
            raise PermanentBackendError("The offline backend draws pictures only.")
        spec = read_chain(chain)
        svg = render(spec, seed=seed, title=chain[-1] if chain else "", detail=detail, width=width)
        return BackendOutput(
            content=svg.encode("utf-8"),
            extension="svg",
            usage={"reading": spec.describe(), "width": width, "detail": detail},
        )


def _seed(value) -> int:
    if value is None or value == "":
        return secrets.randbelow(MAX_SEED)
    try:
        seed = int(value)
    except (TypeError, ValueError):
        raise InvalidRequest("The seed is a whole number.", field="seed") from None
    if not 0 <= seed <= MAX_SEED:
        raise InvalidRequest(f"The seed is between 0 and {MAX_SEED}.", field="seed")
    return seed
