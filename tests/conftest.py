"""Suite-wide settings. Helpers live in tests/support so test modules import them explicitly."""

from __future__ import annotations

import os

from hypothesis import settings

# CI replays the same examples on every run so a red build always means a change broke something;
# developers' runs keep drawing fresh examples (and keep failures in .hypothesis/) to explore.
settings.register_profile("ci", derandomize=True, database=None, print_blob=True)
if os.environ.get("CI"):
    settings.load_profile("ci")
