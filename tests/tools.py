"""External programs some tests drive (a browser, Node.js), found on PATH.

On a developer's machine without them, those tests skip with the reason. In CI (``CI`` set)
a missing tool fails the test instead: ``.ci/run`` installs every tool, so there such a test
always runs.
"""

from __future__ import annotations

import os
import shutil

import pytest


def require(executable: str, why: str) -> str:
    path = shutil.which(executable)
    if path:
        return path
    message = f"{executable} is not installed ({why})"
    if os.environ.get("CI"):
        pytest.fail(message + "; .ci/run installs it", pytrace=False)
    pytest.skip(message)
