"""Generated development secrets live apart from the database.

A copy of the data directory (the embedded database) used to carry ``secrets.json`` with it:
everything needed to read every message. Generated secrets now go to the secrets directory
(``ALLYAPI_SECRETS_DIR``, default ``~/.config/allyapi``); a file an older version left in the
data directory is still used (its data stays readable) and every start warns loudly.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from pathlib import Path

import pytest

from allyapi.app import create_app
from allyapi.cli import main
from allyapi.core.settings import DEV_SECRETS_FILE, Settings, load_settings

WARNING = "DEVELOPMENT SECRETS ARE STORED INSIDE THE DATA DIRECTORY"


@pytest.fixture
def dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    monkeypatch.chdir(tmp_path)
    for name in list(os.environ):
        if name.startswith("ALLYAPI_") and not name.startswith("ALLYAPI_TEST_"):
            monkeypatch.delenv(name)
    data, secrets = tmp_path / "data", tmp_path / "home" / ".config" / "allyapi"
    monkeypatch.setenv("ALLYAPI_ENV", "development")
    monkeypatch.setenv("ALLYAPI_DATA_DIR", str(data))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "home" / ".config"))
    return data, secrets


def files_under(folder: Path) -> set[str]:
    return {path.name for path in folder.rglob("*") if path.is_file()}


def test_generated_secrets_are_kept_apart_from_the_database(
    dirs: tuple[Path, Path], caplog: pytest.LogCaptureFixture
) -> None:
    data, secrets = dirs
    with pytest.raises(SystemExit) as migrated:
        main(["migrate"])
    assert migrated.value.code == 0
    settings = load_settings()

    assert (secrets / DEV_SECRETS_FILE).exists()
    assert oct((secrets / DEV_SECRETS_FILE).stat().st_mode & 0o777) == "0o600"
    assert "allyapi.db" in files_under(data)
    assert DEV_SECRETS_FILE not in files_under(data)  # a copy of data/ holds no key
    assert settings.data_keys == json.loads((secrets / DEV_SECRETS_FILE).read_text())["data_keys"]
    with caplog.at_level(logging.WARNING, logger="allyapi.settings"):
        create_app(settings)
    assert WARNING not in caplog.text


def test_secrets_an_older_version_left_beside_the_database_are_used_and_warned_about(
    dirs: tuple[Path, Path], caplog: pytest.LogCaptureFixture
) -> None:
    data, secrets = dirs
    data.mkdir()
    legacy = {"jwt_secret": "j" * 48, "pseudonym_key": "p" * 48, "data_keys": "dev1:" + "A" * 44}
    (data / DEV_SECRETS_FILE).write_text(json.dumps(legacy))

    settings = load_settings()

    assert (settings.pseudonym_key, settings.data_keys) == (
        legacy["pseudonym_key"],
        legacy["data_keys"],
    )
    assert not (secrets / DEV_SECRETS_FILE).exists()
    with caplog.at_level(logging.WARNING, logger="allyapi.settings"):
        create_app(settings)
    assert WARNING in caplog.text
    assert str(secrets / DEV_SECRETS_FILE) in caplog.text  # where to move it


def test_explicit_secrets_touch_no_file(dirs: tuple[Path, Path]) -> None:
    data, secrets = dirs
    settings = Settings(
        jwt_secret="j" * 48, pseudonym_key="p" * 48, data_keys="k:" + "A" * 44
    ).with_dev_secrets()
    assert settings.pseudonym_key == "p" * 48
    assert not data.exists()
    assert not secrets.exists()


def test_processes_starting_at_once_all_read_the_same_secrets(dirs: tuple[Path, Path]) -> None:
    """Creation is atomic: nobody reads a half-written file (two server processes starting
    together used to fail with a JSON error), and everybody gets the one file's secrets."""
    start = threading.Barrier(8)
    results: list[str | None] = []
    errors: list[BaseException] = []

    def load() -> None:
        start.wait()
        try:
            results.append(load_settings().pseudonym_key)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=load) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert errors == []
    assert len(results) == 8
    assert len(set(results)) == 1
