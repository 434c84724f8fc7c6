"""The committed OpenAPI contract (``openapi/openapi.json``): generated, never hand-edited.

The app is built from fixed settings that read neither the environment nor a ``.env`` file,
so the document is the same on every machine and holds no secret, path or host name.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic_settings import BaseSettings, PydanticBaseSettingsSource

from allyapi.core.settings import Settings

CONTRACT_PATH = Path("openapi") / "openapi.json"
_FIXED_KEY = "contract-generation-only-" + "x" * 32


class _FixedSettings(Settings):
    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings,)  # nothing from this machine's environment


def contract_settings() -> Settings:
    return _FixedSettings(
        env="test",
        data_dir=Path("/nonexistent/allyapi-contract"),
        database_url="sqlite+aiosqlite:///:memory:",
        jwt_secret=_FIXED_KEY,
        pseudonym_key=_FIXED_KEY,
        data_keys="contract:" + "A" * 43 + "=",
        docs_enabled=True,
    )


def openapi_document() -> dict[str, Any]:
    from allyapi.app import create_app

    document: dict[str, Any] = create_app(contract_settings()).openapi()
    return document


def render(document: dict[str, Any]) -> str:
    return json.dumps(document, sort_keys=True, indent=2, ensure_ascii=False) + "\n"
