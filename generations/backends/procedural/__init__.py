"""The offline backend: pictures drawn as SVG from the words of the prompt.

Needs no network and no key. The same prompt and seed always give the same picture; edits
redraw the earlier picture with the changes asked for; enhancements redraw it larger and
with more detail.
"""

from ..base import BackendOutput, BackendRequest, PermanentBackendError
from .render import render
from .vocabulary import read_chain

MODEL = "procedural-svg"
#: Enhancement tiers: output width in pixels and the level of added detail.
ENHANCE_TIERS = {"1K": (1024, 1), "2K": (2048, 2), "4K": (4096, 3)}


class ProceduralSvgBackend:
    name = "procedural"

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
