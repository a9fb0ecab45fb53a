"""AggregatorSettings: flags, env vars, defaults, cross-field validation, the README table, the CLI."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from aggregator.__main__ import main
from aggregator.config import AggregatorSettings, load, parse_size
from k8smon_common.config import ConfigError, HostPort, markdown_table

ROOT = Path(__file__).resolve().parent.parent


def test_defaults_match_the_names_everyone_uses() -> None:
    s = load([], {})
    assert s.listen == HostPort("0.0.0.0", 5000)
    assert s.targets == ()
    assert (s.discovery_mode, s.discovery_namespace, s.discovery_service, s.discovery_port_name) == (
        "endpoints", "k8s-monitor", "k8s-monitor-exporter", "metrics")
    assert (s.scrape_interval, s.scrape_timeout, s.stale_after) == (5.0, 4.0, 15.0)
    assert s.liveness_timeout == 60.0
    assert s.max_response_bytes == 16 * 1024 * 1024
    assert s.retention_points == 1000
    assert s.cors_origins == ("*",)
    assert s.ingest_token == ""
    assert s.discovery == "endpoints"


def test_flags_beat_env_and_env_beats_defaults() -> None:
    env = {"K8SMON_SCRAPE_INTERVAL": "10", "K8SMON_SCRAPE_TIMEOUT": "3", "K8SMON_TARGETS": "10.0.0.1:9100"}
    s = load(["--scrape-interval", "2", "--scrape-timeout", "1.5"], env)
    assert (s.scrape_interval, s.scrape_timeout) == (2.0, 1.5)
    assert s.targets == (HostPort("10.0.0.1", 9100),)
    assert s.discovery == "static"
    s = load(["--discovery-mode", "EndpointSlices", "--max-response-bytes", "512KiB",
              "--cors-origins", "https://a.example, http://b.example:8080"], {})
    assert s.discovery_mode == "endpointslices"
    assert s.max_response_bytes == 512 * 1024
    assert s.cors_origins == ("https://a.example", "http://b.example:8080")


def test_every_bad_value_is_reported_at_once() -> None:
    env = {"K8SMON_SCRAPE_INTERVAL": "-1", "K8SMON_DISCOVERY_MODE": "dns",
           "K8SMON_MAX_RESPONSE_BYTES": "lots", "K8SMON_TARGETS": "no-port",
           "K8SMON_CORS_ORIGINS": "example.com"}
    with pytest.raises(ConfigError) as info:
        load([], env)
    text = str(info.value)
    for name in ("SCRAPE_INTERVAL", "DISCOVERY_MODE", "MAX_RESPONSE_BYTES", "TARGETS", "CORS_ORIGINS"):
        assert f"K8SMON_{name}" in text
    assert len(info.value.problems) == 5


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (["--scrape-interval", "2", "--scrape-timeout", "2"], "--scrape-timeout"),
        (["--scrape-interval", "20", "--stale-after", "15"], "--stale-after"),
        (["--max-response-bytes", "100"], "--max-response-bytes"),
        (["--targets", "127.0.0.1:0"], "needs a port"),
    ],
)
def test_cross_field_validation(argv: list[str], fragment: str) -> None:
    with pytest.raises(ConfigError, match=fragment):
        load(argv, {})


def test_parse_size() -> None:
    assert parse_size("16MiB") == 16 << 20
    assert parse_size(" 1048576 ") == 1 << 20
    assert parse_size("10MB") == 10_000_000
    for bad in ("", "0", "-5", "1.5MiB", "12 parsecs"):
        with pytest.raises(ValueError, match="byte count"):
            parse_size(bad)


def test_readme_carries_the_current_settings_table() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("<!-- section:aggregator -->", 1)[1].split("<!-- /section:aggregator -->", 1)[0]
    assert markdown_table(AggregatorSettings) in section, (
        "README's aggregator table is stale: paste markdown_table(AggregatorSettings) into the section")


def test_cli_bad_config_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--scrape-timeout", "9"]) == 2
    assert "--scrape-timeout" in capsys.readouterr().err


def test_cli_without_targets_or_cluster_exits_1() -> None:
    env = {"PATH": "/usr/bin:/bin", "HOME": "/nonexistent"}
    proc = subprocess.run([sys.executable, "-m", "aggregator", "--listen", "127.0.0.1:0"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 1, proc.stderr
    assert "--targets" in proc.stderr


def test_help_lists_every_flag() -> None:
    proc = subprocess.run([sys.executable, "-m", "aggregator", "--help"], cwd=ROOT, capture_output=True,
                          text=True, timeout=60, check=True)
    for flag in ("--listen", "--targets", "--discovery-mode", "--scrape-timeout", "--ingest-token"):
        assert flag in proc.stdout


@pytest.mark.parametrize(
    ("interval", "timeout", "stale", "liveness"),
    [("5", 4.0, 15.0, 60.0), ("1", 0.8, 15.0, 60.0), ("0.5", 0.4, 15.0, 60.0), ("60", 4.0, 180.0, 180.0)],
)
def test_an_interval_alone_starts_with_derived_timeouts(
    interval: str, timeout: float, stale: float, liveness: float
) -> None:
    """--scrape-interval 1 used to be refused: the 4-s default timeout was longer. Settings left
    empty now follow the interval (Prometheus caps its default scrape_timeout the same way)."""
    s = load(["--scrape-interval", interval], {})
    assert (s.scrape_timeout, s.stale_after, s.liveness_timeout) == (timeout, stale, liveness)
    assert load([], {"K8SMON_SCRAPE_INTERVAL": interval}).scrape_timeout == timeout


@pytest.mark.parametrize(
    ("argv", "env", "fragment"),
    [
        (["--scrape-interval", "1", "--scrape-timeout", "4"], {}, "--scrape-timeout (4s) must be shorter"),
        (["--scrape-interval", "1"], {"K8SMON_SCRAPE_TIMEOUT": "1"}, "--scrape-timeout (1s)"),
        (["--scrape-interval", "60", "--stale-after", "15"], {}, "--stale-after (15s)"),
        (["--scrape-interval", "60", "--liveness-timeout", "60"], {}, "--liveness-timeout (60s)"),
    ],
)
def test_only_an_explicit_conflict_is_refused(argv: list[str], env: dict[str, str], fragment: str) -> None:
    with pytest.raises(ConfigError) as info:
        load(argv, env)
    assert fragment in str(info.value)
    assert len(info.value.problems) == 1


def test_cli_starts_with_only_a_short_interval(tmp_path: Path) -> None:
    """`k8smon-aggregator --scrape-interval 1` serves (it used to exit 2 at once)."""
    proc = subprocess.Popen([sys.executable, "-m", "aggregator", "--listen", "127.0.0.1:0",
                             "--targets", "127.0.0.1:9", "--scrape-interval", "1"],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        with pytest.raises(subprocess.TimeoutExpired):
            proc.wait(timeout=3)  # still running: the settings were accepted
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, out
