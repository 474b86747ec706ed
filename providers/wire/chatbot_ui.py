"""The open-source chatbot-ui ``/api/chat`` request that Aivvm and AI365VIP both served.

Both sites ran that route, so their bodies share one shape — ``model`` (an object with an
``id``), ``messages``, ``key``, ``prompt``, ``temperature`` — and one raw-text reply. What each
site's original client put *inside* that shape differs, and stays in its own codec.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Any

from providers.errors import InvalidRequestError
from providers.wire.common import (
    ChatRequest,
    Framing,
    ReceivedRequest,
    is_number,
    limit_nesting_except,
    parse_json_object,
    require_messages,
)

BODY_KEYS = ("model", "messages", "key", "prompt", "temperature")


def parse_body(
    request: ReceivedRequest,
    *,
    models: Collection[str],
    model_example: str,
    roles: Collection[str] | None = None,
) -> tuple[dict[str, Any], dict[str, Any], tuple[dict[str, str], ...]]:
    """Check the shape every chatbot-ui server needed; returns (body, model, messages).

    Fields beyond the five are ignored (strict mode then refuses them by their keys), but never
    nest deeper than MAX_JSON_DEPTH. The model object's other fields are the codec's to check.
    ``roles``, if given, are the only message roles allowed (see require_messages).
    """
    data = parse_json_object(request.body)
    for key in BODY_KEYS:
        if key not in data:
            raise InvalidRequestError(f"missing field {key!r}", code="missing_field", field=key)
    model = data["model"]
    if not (isinstance(model, dict) and isinstance(model.get("id"), str)):
        raise InvalidRequestError(
            f"model must be an object like {model_example}", code="bad_model", field="model"
        )
    if model["id"] not in models:
        raise InvalidRequestError(
            f"unknown model {model['id']!r}; known: {', '.join(models)}",
            code="unknown_model",
            field="model.id",
        )
    messages = require_messages(data["messages"], roles=roles)
    for key in ("key", "prompt"):
        if not isinstance(data[key], str):
            raise InvalidRequestError(f"{key!r} must be a string", code="bad_type", field=key)
    if not is_number(data["temperature"]):
        raise InvalidRequestError(
            "'temperature' must be a number", code="bad_type", field="temperature"
        )
    if len(data) != len(BODY_KEYS):
        limit_nesting_except(data, BODY_KEYS, "", 1)
    return data, model, messages


def key_order_problems(data: dict[str, Any]) -> list[str]:
    """Strict mode: the original clients sent exactly these keys in this order."""
    if tuple(data) == BODY_KEYS:
        return []
    return [f"body keys are {list(data)}, expected {list(BODY_KEYS)}"]


def chat_request(
    data: dict[str, Any], model: dict[str, Any], messages: tuple[dict[str, str], ...]
) -> ChatRequest:
    options = {"prompt": data["prompt"], "temperature": data["temperature"]}
    return ChatRequest(model=model["id"], messages=messages, options=options)


def encode_text(pieces: Sequence[str], framing: Framing) -> list[bytes]:
    """The reply: raw text, one frame per non-empty piece, no framing and no end marker."""
    return [piece.encode(framing.text_encoding) for piece in pieces if piece]
