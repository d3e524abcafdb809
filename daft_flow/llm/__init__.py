"""LLM providers, rate limiting and usage accounting for prompt() and embed_text()."""
from daft_flow.llm.defaults import default_provider, set_provider
from daft_flow.llm.provider import Completion, OpenAIProvider, Provider, ProviderConfigError, ProviderError
from daft_flow.llm.rate_limit import RateLimiter
from daft_flow.llm.usage import PRICES, OpUsage, UsageReport, last_usage, set_price

__all__ = ["Completion", "OpenAIProvider", "Provider", "ProviderError", "ProviderConfigError", "default_provider",
           "set_provider", "RateLimiter", "PRICES", "OpUsage", "UsageReport", "last_usage", "set_price"]
