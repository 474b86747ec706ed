"""What HTTP allows in a header field (RFC 9110 §5): one rule for everything that writes one.

Cassettes are checked against it when loaded and scripts when a fake takes them; aiohttp refuses
to send exactly what :data:`FORBIDDEN_IN_VALUE` matches, so a value let through here can always
go on the wire.
"""

from __future__ import annotations

import re

#: RFC 9110 §5.1: a field name is a token, one or more of these characters.
HEADER_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
#: RFC 9110 §5.5: a field value holds no control character but horizontal tab.
FORBIDDEN_IN_VALUE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")


def is_header_name(name: str) -> bool:
    """True for a non-empty HTTP token."""
    return HEADER_NAME.fullmatch(name) is not None


def forbidden_in_value(value: str) -> str | None:
    """The first character HTTP forbids in a header value, or None."""
    found = FORBIDDEN_IN_VALUE.search(value)
    return found[0] if found else None
