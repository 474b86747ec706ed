"""The four adapters: the originals' public shape over the shared base and each one's codec.

Each class only states facts (URLs, models, which HTTP library the original used); behaviour is
in :mod:`providers.base` and the wire details in :mod:`providers.wire`.
"""

from __future__ import annotations

from types import MappingProxyType
from typing import ClassVar

from providers.base import Provider
from providers.wire import ai365vip, aivvm, codelinkava, getgpt
from providers.wire.common import UpstreamCodec


class Aivvm(Provider):
    """chat.aivvm.com — synchronous (requests); raw UTF-8 text stream."""

    url = aivvm.SITE
    api_endpoint = aivvm.SITE + aivvm.CODEC.chat_path
    supports_gpt_35_turbo = True
    supports_gpt_4 = True
    models = tuple(aivvm.MODELS)
    default_model = "gpt-3.5-turbo"
    codec: ClassVar[UpstreamCodec] = aivvm.CODEC


class AI365VIP(Provider):
    """chat.ai365vip.com — asynchronous (aiohttp); raw text read line by line."""

    url = ai365vip.SITE
    api_endpoint = ai365vip.CODEC.chat_path  # the original kept only the path here
    supports_gpt_35_turbo = True
    supports_gpt_4 = True
    models = ai365vip.MODELS
    default_model = "gpt-3.5-turbo"
    model_aliases = MappingProxyType({"gpt-3.5-turbo": "gpt-3.5-turbo-16k"})
    codec: ClassVar[UpstreamCodec] = ai365vip.CODEC
    native_async = True


class GetGpt(Provider):
    """chat.getgpt.world — synchronous (requests); AES-CBC encrypted request, data: lines."""

    url = getgpt.SITE + "/"
    api_endpoint = getgpt.SITE + getgpt.CODEC.chat_path
    supports_gpt_35_turbo = True
    models = (getgpt.MODEL,)
    default_model = getgpt.MODEL
    codec: ClassVar[UpstreamCodec] = getgpt.CODEC


class CodeLinkAva(Provider):
    """ava-ai-ef611.web.app — asynchronous (aiohttp); OpenAI-style SSE ending in [DONE]."""

    url = codelinkava.SITE
    api_endpoint = codelinkava.API + codelinkava.CODEC.chat_path
    supports_gpt_35_turbo = True
    models = ("gpt-3.5-turbo",)
    default_model = "gpt-3.5-turbo"
    codec: ClassVar[UpstreamCodec] = codelinkava.CODEC
    native_async = True


#: Every provider by name. The meta-test checks each has a codec, a fake, a cassette and tests.
PROVIDERS: MappingProxyType[str, type[Provider]] = MappingProxyType(
    {cls.__name__: cls for cls in (Aivvm, AI365VIP, GetGpt, CodeLinkAva)}
)
