"""Suite-wide settings. Helpers live in tests/support so test modules import them explicitly."""

from __future__ import annotations

import os

import pytest
from hypothesis import Phase, settings

# CI replays the same examples on every run so a red build always means a change broke something;
# developers' runs keep drawing fresh examples (and keep failures in .hypothesis/) to explore.
settings.register_profile("ci", derandomize=True, database=None, print_blob=True)
# Mutation testing (scripts/mutation.py) replays CI's examples but only needs to see a failure:
# shrinking it would cost minutes per mutant and change nothing about the verdict.
settings.register_profile("mutation", settings.get_profile("ci"),
                          phases=(Phase.explicit, Phase.reuse, Phase.generate))
if os.environ.get("K8SMON_MUTATION"):
    settings.load_profile("mutation")
elif os.environ.get("CI"):
    settings.load_profile("ci")


@pytest.fixture(autouse=True)
def _forget_cached_forms() -> None:
    """Every test computes human forms and timestamps itself: the module-level caches (human's
    setting_size and setting_cores, http_api.iso) would otherwise answer from an earlier test, or,
    in mutation testing, from the unmutated code that filled them before the mutant was switched on."""
    from aggregator.api import human
    from k8smon_common import http_api

    human._size_remembered.cache_clear()
    human._cores_remembered.cache_clear()
    http_api.iso.cache_clear()
