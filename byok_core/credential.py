"""What an adapter needs to make one call: the secret and where to send it. Nothing of who owns
the key or who pays: that is the caller's business."""

from __future__ import annotations

from dataclasses import dataclass

from byok_core.secret import Secret


@dataclass(frozen=True)
class Credential:
    secret: Secret  # repr shows only the mask
    base_url: str  # the API root, without a trailing slash
    usage_accounting: bool = False  # ask for the billed cost with the usage (OpenRouter's ``usage.include``)
    azure: bool = False  # an Azure OpenAI resource: its addresses and the ``api-key`` header (``byok_core.azure``)

    @property
    def mask(self) -> str:
        return self.secret.mask
