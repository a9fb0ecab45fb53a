"""The API's human forms, value by value: units, boundaries, rounding and the values that have none."""

from __future__ import annotations

import math

import pytest

from aggregator.api import human

KiB, MiB, GiB, TiB, PiB = (1024.0**n for n in range(1, 6))


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (0, "0 B"),
        (1, "1 B"),
        (1023, "1023 B"),
        (1023.4, "1023 B"),  # bytes are whole
        (1.5, "2 B"),
        (0.4, "0 B"),
        (1024, "1 KiB"),
        (1536, "1.5 KiB"),
        (1025, "1 KiB"),  # three significant figures: 1.0009765625 KiB
        (10.5 * KiB, "10.5 KiB"),
        (100 * KiB, "100 KiB"),  # whole numbers keep their zeros
        (120 * KiB, "120 KiB"),
        (999 * KiB, "999 KiB"),
        (1000 * KiB, "1000 KiB"),  # was "1e+03 KiB": three figures of a four-digit number
        (1023 * KiB, "1023 KiB"),
        (MiB - 1, "1024 KiB"),  # one byte short of a MiB rounds to the KiB that fit
        (MiB, "1 MiB"),
        (1000 * MiB, "1000 MiB"),  # a 1000Mi memory limit, used in full
        (2.53 * GiB, "2.53 GiB"),
        (2.5349 * GiB, "2.53 GiB"),
        (2.5351 * GiB, "2.54 GiB"),
        (99.96 * GiB, "100 GiB"),
        (1.5 * TiB, "1.5 TiB"),
        (PiB, "1 PiB"),
        (2048 * PiB, "2048 PiB"),  # PiB is the largest unit: no overflow into the next
        (-2048, "-2 KiB"),  # a negative size keeps its sign and unit (never served, but never wrong)
    ],
)
def test_size(value: float, text: str) -> None:
    assert human.size(value) == text


@pytest.mark.parametrize("value", [None, math.nan, math.inf, -math.inf])
def test_values_that_have_no_form(value: float | None) -> None:
    assert human.size(value) is None
    assert human.rate(value) is None
    assert human.cores(value) is None
    assert human.percent(value) is None
    assert human.iso(value) is None


def test_rate_is_size_per_second() -> None:
    assert human.rate(0) == "0 B/s"
    assert human.rate(1.2 * MiB) == "1.2 MiB/s"
    assert human.rate(1000 * KiB) == "1000 KiB/s"
    assert human.rate(0.4) == "0 B/s"


@pytest.mark.parametrize(
    ("millicores", "text"),
    [
        (0, "0 cores"),
        (2530, "2.53 cores"),
        (1000, "1 core"),
        (250, "0.25 cores"),
        (12.345, "0.0123 cores"),
        (0.01, "0.00001 cores"),  # an idle pod: small, but never "1e-05"
        (0.0001, "0 cores"),  # below the last shown digit: 0, not "0." or "1e-07"
        (64_000, "64 cores"),
        (1_000_000, "1000 cores"),  # was "1e+03 cores"
    ],
)
def test_cores_from_millicores(millicores: float, text: str) -> None:
    assert human.cores(millicores) == text


@pytest.mark.parametrize(
    ("value", "text"),
    [(0, "0.0%"), (12.345, "12.3%"), (12.35, "12.3%"), (99.96, "100.0%"), (150, "150.0%"), (-1.25, "-1.2%")],
)
def test_percent_one_decimal(value: float, text: str) -> None:
    assert human.percent(value) == text


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "0s"),
        (59.9, "59s"),  # whole seconds, truncated like uptime
        (60, "1m 0s"),
        (3600, "1h 0s"),  # zero parts above seconds are left out
        (3661, "1h 1m 1s"),
        (86400, "1d 0s"),
        (90061.9, "1d 1h 1m 1s"),
        (2 * 86400 + 3 * 3600 + 4 * 60 + 5, "2d 3h 4m 5s"),
        (-5, "0s"),  # a clock step back never shows a negative uptime
    ],
)
def test_duration(seconds: float, text: str) -> None:
    assert human.duration(seconds) == text


@pytest.mark.parametrize(
    ("ts", "text"),
    [
        (0, "1970-01-01T00:00:00.000Z"),
        (1.2345, "1970-01-01T00:00:01.234Z"),
        (1_700_000_000.5, "2023-11-14T22:13:20.500Z"),
    ],
)
def test_iso_utc_milliseconds(ts: float, text: str) -> None:
    assert human.iso(ts) == text


def test_remembered_forms_are_the_forms_and_zero_keeps_its_sign() -> None:
    sizes, cores = human._size_remembered.cache_info, human._cores_remembered.cache_info
    first = [human.setting_size(1536.0), human.setting_cores(2530.0), human.setting_size(1536.0),
             human.setting_cores(2530.0), human.setting_size(1536)]
    assert first == ["1.5 KiB", "2.53 cores", "1.5 KiB", "2.53 cores", "1.5 KiB"]
    assert sizes().hits == 1 and cores().hits == 1
    # 0.0 and -0.0 are equal keys with different texts: neither is remembered
    assert [human.setting_size(z) for z in (0.0, -0.0, 0.0)] == ["0 B", "-0 B", "0 B"]
    assert [human.setting_cores(z) for z in (-0.0, 0.0, -0.0)] == ["-0 cores", "0 cores", "-0 cores"]
    assert human.setting_size(math.nan) is None and human.setting_cores(math.inf) is None
    assert human.setting_size(None) is None and human.setting_cores(None) is None
    assert sizes().currsize == 2 and cores().currsize == 1
    # usage is not remembered
    assert [human.size(2048.0), human.cores(500.0)] == ["2 KiB", "0.5 cores"]
    assert sizes().currsize == 2 and cores().currsize == 1


@pytest.mark.parametrize("value", [1536.0, 2.53 * GiB, 1000 * KiB, 2048 * PiB, -2048.0, 0.4, 0.0, -0.0])
def test_a_setting_reads_as_any_other_value(value: float) -> None:
    assert human.setting_size(value) == human.size(value)
    assert human.setting_cores(value) == human.cores(value)


def test_each_unit_starts_at_its_power_of_1024_exactly() -> None:
    # the unit comes from the binary exponent: the last value below a unit's start stays in the unit below
    for k, unit in enumerate(("KiB", "MiB", "GiB", "TiB", "PiB"), start=1):
        start = 1024.0**k
        assert human.size(start) == f"1 {unit}"
        below = human.size(math.nextafter(start, 0))
        assert below is not None and not below.endswith(f" {unit}"), below
        assert human.size(-start) == f"-1 {unit}"
