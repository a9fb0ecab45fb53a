"""checkov scans deploy/ and Dockerfiles/: no failed check, and every skip carries a reason."""

from __future__ import annotations

import json
import re
import subprocess
import time
from typing import Any

import pytest

from tests.support import require
from tests.support.deploy import REPO

CHECKOV = REPO / ".venv" / "bin" / "checkov"


def _reports(text: str) -> list[dict[str, Any]]:
    """checkov prints one JSON document per scanned directory; each is a report or a list of them."""
    decoder = json.JSONDecoder()
    reports: list[dict[str, Any]] = []
    rest = text.lstrip()
    while rest:
        doc, end = decoder.raw_decode(rest)
        reports.extend(doc if isinstance(doc, list) else [doc])
        rest = rest[end:].lstrip()
    return reports


@pytest.fixture(scope="module")
def checkov_reports(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    """One checkov run per session (it takes several seconds), on both directories together."""
    require(CHECKOV.exists(), f"{CHECKOV} is not installed (pip install -e .[test])")
    home = tmp_path_factory.mktemp("checkov-home")
    started = time.monotonic()
    done = subprocess.run(
        [str(CHECKOV), "-d", "deploy", "-d", "Dockerfiles", "--quiet", "--compact", "-o", "json",
         "--skip-download"],
        cwd=REPO, capture_output=True, text=True, timeout=240, check=False,
        env={"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": str(home)},
    )
    print(f"checkov took {time.monotonic() - started:.1f} s")
    assert done.stdout.strip(), f"checkov printed nothing (rc {done.returncode}):\n{done.stderr[-3000:]}"
    return _reports(done.stdout)


def test_checkov_scanned_manifests_and_dockerfiles(checkov_reports: list[dict[str, Any]]) -> None:
    kinds = {r["check_type"] for r in checkov_reports}
    assert {"kubernetes", "kustomize", "dockerfile"} <= kinds
    for r in checkov_reports:
        assert r["summary"]["parsing_errors"] == 0, r["check_type"]
        assert r["summary"]["passed"] > 0, r["check_type"]


def test_no_failed_checks(checkov_reports: list[dict[str, Any]]) -> None:
    failed = [
        f"{f['check_id']} {f['check_name']} ({f['file_path']}: {f['resource']})"
        for r in checkov_reports
        for f in r["results"].get("failed_checks", [])
    ]
    assert not failed, "checkov failures:\n" + "\n".join(failed)


_SKIP = re.compile(r"checkov\.io/skip\d+:\s*(CKV\w+)=(.*)$|#\s*checkov:skip=(CKV\w+):(.*)$", re.MULTILINE)


def test_every_skip_is_inline_with_a_reason(checkov_reports: list[dict[str, Any]]) -> None:
    """--quiet leaves skipped checks out of the report, so the inline skips are read from the files."""
    assert sum(r["summary"]["skipped"] for r in checkov_reports) > 0
    files = [*(REPO / "deploy").rglob("*.yaml"), *(REPO / "Dockerfiles").glob("*.Dockerfile")]
    skips = [m for f in files for m in _SKIP.finditer(f.read_text(encoding="utf-8"))]
    assert skips, "expected the documented inline skips (image digest, pull policy, token mount)"
    for m in skips:
        check, reason = (m.group(1), m.group(2)) if m.group(1) else (m.group(3), m.group(4))
        assert len(reason.split()) >= 4, f"{check} is skipped without a reason: {m.group(0)!r}"


def test_report_parser_reads_concatenated_documents() -> None:
    assert [r["check_type"] for r in _reports('[{"check_type": "a"}]\n{"check_type": "b"}')] == ["a", "b"]

