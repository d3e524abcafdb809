"""Which provider an op without ``provider=`` uses: ``dflow.set_provider(p)``, else OpenAI when
``OPENAI_API_KEY`` is set (``OPENAI_BASE_URL`` honoured), else the embedded local defaults
(``daft_flow.llm.local``). It lives apart from ``provider.py`` so that ``provider.py`` never imports
``local.py`` (which builds on it)."""
from __future__ import annotations

import os

from daft_flow.forksafe import ForkSafeLock
from daft_flow.llm.provider import OpenAIProvider, Provider

_provider: Provider | None = None
_env_provider: OpenAIProvider | None = None
_lock = ForkSafeLock()


def set_provider(provider: Provider | None) -> None:
    """Makes ``provider`` the default of every op without ``provider=`` (None: back to the defaults)."""
    global _provider
    if provider is not None and not isinstance(provider, Provider):
        raise TypeError(f"set_provider() needs a dflow provider (e.g. dflow.OpenAIProvider), got "
                        f"{type(provider).__name__}")
    _provider = provider


def default_provider() -> Provider:
    """The provider used by ops without ``provider=``; see the module docstring for precedence."""
    global _env_provider
    if _provider is not None:
        return _provider
    if os.environ.get("OPENAI_API_KEY"):
        with _lock:
            if _env_provider is None:
                _env_provider = OpenAIProvider(base_url=os.environ.get("OPENAI_BASE_URL") or None,
                                               embedding_dim=0 if os.environ.get("OPENAI_BASE_URL") else 1536)
            return _env_provider
    from daft_flow.llm.local import local_provider

    return local_provider()


def warmup(provider: Provider | None = None, *, chat: bool = True, embeddings: bool = True) -> None:
    """Starts the embedded models now instead of on the first ``prompt()`` / ``embed_text()``.

    Acts on ``provider`` or, by default, on the provider ops without ``provider=`` use; providers
    with nothing to start (a remote endpoint) are left alone. ``chat=False`` / ``embeddings=False``
    skip one of the two.
    """
    target = provider if provider is not None else default_provider()
    start = getattr(target, "warmup", None)
    if callable(start):
        start(chat=chat, embeddings=embeddings)
