"""What is sent to a text model for a job, and the most input tokens that can be.

The estimate and the backend build the request from the same function, so the estimate's
bound covers exactly what is sent.
"""

SYSTEM_WRITE = "You are a careful writer. Answer the request directly, without preamble."
SYSTEM_EDIT = (
    "You revise text. Apply the instruction to the text and return only the revised text, "
    "without commentary."
)

#: Framing tokens a chat format adds per message, and once per request (generous).
PER_MESSAGE_OVERHEAD = 8
PER_REQUEST_OVERHEAD = 8


def chat_messages(*, prompt: str, source_text: str | None = None) -> list[dict]:
    """The chat messages for a text job: a fresh request, or an edit of ``source_text``."""
    if source_text is None:
        return [
            {"role": "system", "content": SYSTEM_WRITE},
            {"role": "user", "content": prompt},
        ]
    return [
        {"role": "system", "content": SYSTEM_EDIT},
        {"role": "user", "content": f"Text:\n{source_text}\n\nInstruction: {prompt}"},
    ]


def max_input_tokens(messages: list[dict]) -> int:
    """An upper bound on the input tokens of ``messages``.

    Byte-level tokenizers never make a token of less than one byte, so the UTF-8 length of
    each message plus its framing bounds what any such model can count.
    """
    return PER_REQUEST_OVERHEAD + sum(
        len(message["content"].encode("utf-8")) + PER_MESSAGE_OVERHEAD for message in messages
    )
