"""What may go into a job and what may come out of one.

A prompt is plain text: tabs and line breaks are kept (``\\r\\n`` becomes ``\\n``), every
other control character is refused, so a prompt can be stored, drawn into an SVG and sent to
a model as it was typed. A backend's output is checked before its job may complete: an SVG
must be well-formed XML with an ``<svg>`` root, a text must be UTF-8 without control
characters, a picture must be the file type it claims. An output that fails is a permanent
error: the job fails and is refunded in full.
"""

import re
import unicodedata
from xml.etree import ElementTree

from .backends.base import BackendOutput, PermanentBackendError
from .exceptions import InvalidRequest

#: Characters kept although they are controls: tab, line feed, carriage return.
_ALLOWED_CONTROLS = {"\t", "\n", "\r"}
#: Code points XML 1.0 cannot carry at all (besides the C0 controls).
_NOT_XML = {"\ufffe", "\uffff"}
_PICTURE_SIGNATURES = {"png": (b"\x89PNG\r\n\x1a\n",), "jpg": (b"\xff\xd8\xff",)}


def _bad_characters(text: str) -> list[str]:
    return sorted(
        {
            ch
            for ch in text
            if ch not in _ALLOWED_CONTROLS
            and (unicodedata.category(ch) in ("Cc", "Cs") or ch in _NOT_XML)
        }
    )


def _names(chars: list[str]) -> str:
    return ", ".join(f"U+{ord(ch):04X}" for ch in chars[:5])


def clean_prompt(text: str) -> str:
    """``text`` stripped, with Windows line breaks made plain. Raises InvalidRequest (field
    ``prompt``) when it holds a control character other than a tab or a line break."""
    text = (text or "").replace("\r\n", "\n").replace("\r", "\n").strip()
    bad = _bad_characters(text)
    if bad:
        raise InvalidRequest(
            f"The prompt contains invisible control characters ({_names(bad)}). "
            "Remove them (retyping the text usually does) and try again.",
            field="prompt",
        )
    return text


def check_output(output: BackendOutput) -> None:
    """Raise PermanentBackendError unless ``output`` is a well-formed file of its kind."""
    kind = output.extension
    if kind == "svg":
        _check_svg(output.content)
    elif kind == "txt":
        _check_text(output.content)
    elif kind in _PICTURE_SIGNATURES:
        if not output.content.startswith(_PICTURE_SIGNATURES[kind]):
            raise _damaged(f"not a {kind.upper()} file")
    elif kind == "webp":
        if not (output.content[:4] == b"RIFF" and output.content[8:12] == b"WEBP"):
            raise _damaged("not a WEBP file")
    else:
        raise _damaged(f"unknown result type {kind!r}")


def _check_svg(content: bytes) -> None:
    try:
        text = content.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _damaged(f"SVG is not UTF-8: {exc}") from exc
    if re.search(r"<!(DOCTYPE|ENTITY)", text, re.IGNORECASE):
        raise _damaged("SVG declares a DOCTYPE or entities")
    try:
        root = ElementTree.fromstring(content)
    except ElementTree.ParseError as exc:
        raise _damaged(f"SVG is not well-formed XML: {exc}") from exc
    if root.tag not in ("svg", "{http://www.w3.org/2000/svg}svg"):
        raise _damaged(f"SVG root element is {root.tag!r}")


def _check_text(content: bytes) -> None:
    try:
        text = content.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _damaged(f"text is not UTF-8: {exc}") from exc
    bad = _bad_characters(text)
    if bad:
        raise _damaged(f"text contains control characters {_names(bad)}")
    if not text.strip():
        raise _damaged("text is empty")


def _damaged(detail: str) -> PermanentBackendError:
    return PermanentBackendError(
        "The result came out damaged, so it was not kept.", detail=f"invalid output: {detail}"
    )
