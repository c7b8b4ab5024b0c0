"""Refuse, at the door, input that PostgreSQL cannot store.

PostgreSQL text and jsonb cannot hold the NUL character (U+0000), and a lone UTF-16
surrogate (U+D800 to U+DFFF, which only a JSON ``\\ud800`` escape can produce) cannot be
encoded at all. Either one reaching a query or an insert raises a DataError: a 500, and for
a webhook a delivery that can never be stored. Rather than guard every view, this middleware
looks at everything a request carries before any view runs (path, query string, cookies and
other headers, form fields and file names, and JSON or other bodies) and answers 400 with the
reason when any of it holds such a character. Nothing is read from or written to the database
for a refused request.
"""

import json
import logging
import re
from collections.abc import Iterator

from django.http import HttpResponseBadRequest
from django.http.multipartparser import MultiPartParserError

logger = logging.getLogger(__name__)

#: Characters PostgreSQL cannot store in text: NUL and lone surrogates.
UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
#: A JSON escape that decodes to one of them (checked by decoding before refusing).
UNSTORABLE_ESCAPE = re.compile(rb"\\u(?:0000|[dD][89a-fA-F][0-9a-fA-F]{2})")
FORM_TYPES = ("multipart/form-data", "application/x-www-form-urlencoded")


def _strings(value) -> Iterator[str]:
    """Every string in a decoded JSON value, keys included."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield key
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


def _pairs(querydict) -> Iterator[str]:
    for key, values in querydict.lists():
        yield key
        yield from values


def _body_strings(request) -> Iterator[tuple[str, str]]:
    if request.content_type in FORM_TYPES:
        for text in _pairs(request.POST):
            yield "a form field", text
        for key, files in request.FILES.lists():
            yield "a form field", key
            for upload in files:
                yield "an uploaded file's name", upload.name or ""
        return
    body = request.body
    if not body:
        return
    if b"\x00" in body:
        yield "the request body", "\x00"
        return
    if UNSTORABLE_ESCAPE.search(body):
        try:
            decoded = json.loads(body)
        except ValueError:
            return  # not JSON: the view refuses it for what it is
        for text in _strings(decoded):
            yield "the request body", text


def _request_strings(request) -> Iterator[tuple[str, str]]:
    """(where, text) for every piece of the request that may reach the database."""
    yield "the address", request.path_info
    for text in _pairs(request.GET):
        yield "the query string", text
    for name, value in request.META.items():
        if name.startswith("HTTP_") or name in ("CONTENT_TYPE", "CONTENT_LENGTH"):
            yield "a header", str(value)
    if request.method not in ("GET", "HEAD", "OPTIONS"):
        yield from _body_strings(request)


class RefuseUnstorableInputMiddleware:
    """Answer 400 to a request carrying a character PostgreSQL cannot store (NUL, lone surrogates)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        try:
            refusal = self._refusal(request)
        except MultiPartParserError as exc:
            refusal = f"Bad request: the form data could not be read ({exc})."
        if refusal:
            return HttpResponseBadRequest(refusal, content_type="text/plain; charset=utf-8")
        return self.get_response(request)

    @staticmethod
    def _refusal(request) -> str:
        for where, text in _request_strings(request):
            found = UNSTORABLE.search(text)
            if found:
                char = f"U+{ord(found.group()):04X}"
                logger.warning(
                    "refused %s %r: %s holds %s",
                    request.method,
                    request.path_info[:200],
                    where,
                    char,
                )
                return (
                    f"Bad request: {where} contains a character that cannot be accepted ({char})."
                )
        return ""
