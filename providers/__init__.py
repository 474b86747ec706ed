"""Adapters for four long-dead LLM chat upstreams, each speaking its exact wire protocol.

>>> from providers import Aivvm
>>> pieces = Aivvm.create_completion("gpt-4", [{"role": "user", "content": "hi"}],
...                                  base_url="http://127.0.0.1:8101")  # doctest: +SKIP
"""

from providers.adapters import AI365VIP, PROVIDERS, Aivvm, CodeLinkAva, GetGpt
from providers.base import Provider
from providers.transport import Timeouts

__all__ = ["AI365VIP", "PROVIDERS", "Aivvm", "CodeLinkAva", "GetGpt", "Provider", "Timeouts"]
