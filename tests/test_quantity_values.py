"""Value tests for the metrics API's quantity, duration and time strings (issue 17).

Expected strings are what apimachinery prints: `resource.NewScaledQuantity(nanocores, -9)` (DecimalSI,
exponent a multiple of 3, trailing zeros removed), `resource.NewQuantity(bytes, BinarySI)` (Ki/Mi/... only
for exact multiples of 1024; under 1024 in magnitude DecimalSI, so 1000 bytes is `1k`; otherwise the
plain integer, so 2000 bytes is `2000`), Go's `time.Duration.String()` and `metav1.Time` (RFC 3339, whole
seconds, `Z`).
"""

from __future__ import annotations

import math

import pytest

from aggregator.metricsapi import quantity


@pytest.fixture(autouse=True)
def _cold_caches() -> None:
    # go_duration and _rfc3339 are lru_cached: a string cached by an earlier test (or, under mutmut,
    # by the clean run its children are forked from) would be served without running the code under test.
    quantity.go_duration.cache_clear()
    quantity._rfc3339.cache_clear()

# (value, scale, text): DecimalSI as CanonicalizeBytes writes it.
DECIMAL = [
    (0, -9, "0"), (0, 7, "0"),
    (1, -9, "1n"), (10, -9, "10n"), (100, -9, "100n"), (1000, -9, "1u"), (1001, -9, "1001n"),
    (999_999_999, -9, "999999999n"), (1_000_001, -9, "1000001n"), (1_500_000, -9, "1500u"),
    (1_000_000, -9, "1m"), (250_000_000, -9, "250m"), (1_000_000_000, -9, "1"), (1_500_000_000, -9, "1500m"),
    (25_000_000_000, -9, "25"), (-1_500_000, -9, "-1500u"), (-1, -9, "-1n"), (-2_000_000_000, -9, "-2"),
    (1500, -3, "1500m"), (2000, -3, "2"), (10, -10, "1n"), (5, 1, "50"), (5, 2, "500"), (5, 4, "50k"),
    (1000, 0, "1k"), (1500, 0, "1500"), (10**6, 0, "1M"), (10**9, 0, "1G"), (10**12, 0, "1T"),
    (10**15, 0, "1P"), (10**18, 0, "1E"), (12 * 10**18, 0, "12E"), (10**19, 0, "10E"), (10**21, 0, "1000E"),
    (123 * 10**20, 0, "12300E"), (7, 18, "7E"), (7, 19, "70E"),
]


@pytest.mark.parametrize(("value", "scale", "text"), DECIMAL)
def test_decimal_quantity_is_canonical_decimal_si(value: int, scale: int, text: str) -> None:
    assert quantity.decimal_quantity(value, scale) == text


@pytest.mark.parametrize(("value", "scale"), [(1, -10), (5, -11), (1, -12), (3, -20)])
def test_decimal_quantity_finer_than_nano_is_refused_not_rounded(value: int, scale: int) -> None:
    with pytest.raises(ValueError, match=rf"^{value}e{scale} is finer than nano$"):
        quantity.decimal_quantity(value, scale)


# (bytes, text): NewQuantity(bytes, BinarySI).String().
BINARY = [
    (0, "0"), (1, "1"), (512, "512"), (1000, "1k"), (1023, "1023"), (1024, "1Ki"), (1025, "1025"),
    (1536, "1536"), (2000, "2000"), (10**6, "1000000"), (123_000, "123000"), (4096 * 3, "12Ki"),
    (1 << 20, "1Mi"), (1025 * 1024, "1025Ki"), (1536 * 1024, "1536Ki"), (3 << 30, "3Gi"), (5 << 40, "5Ti"),
    (7 << 50, "7Pi"), (1 << 60, "1Ei"), (1 << 70, "1024Ei"), (3 << 80, "3145728Ei"),
    (-1, "-1"), (-1000, "-1k"), (-1023, "-1023"), (-1024, "-1Ki"), (-1500, "-1500"), (-2048, "-2Ki"),
    (-(3 << 20), "-3Mi"),
]


@pytest.mark.parametrize(("value", "text"), BINARY)
def test_binary_quantity_is_canonical_binary_si(value: int, text: str) -> None:
    assert quantity.binary_quantity(value) == text


@pytest.mark.parametrize(("cores", "text"), [
    (0.0, "0"), (1e-9, "1n"), (4e-10, "0"), (1.6e-9, "2n"), (0.0015, "1500u"), (0.001, "1m"),
    (0.25, "250m"), (1.5, "1500m"), (2.0, "2"), (2, "2"), (0.123456789, "123456789n"), (64.0, "64"),
])
def test_cpu_quantity_rounds_to_whole_nanocores(cores: float, text: str) -> None:
    assert quantity.cpu_quantity(cores) == text


@pytest.mark.parametrize(("bytes_", "text"), [
    (0.0, "0"), (0.4, "0"), (1023.6, "1Ki"), (1536.4, "1536"), (4096.0, "4Ki"), (float(200 << 20), "200Mi"),
    (1_000_000.0, "1000000"), (999.9, "1k"),
])
def test_memory_quantity_rounds_to_whole_bytes(bytes_: float, text: str) -> None:
    assert quantity.memory_quantity(bytes_) == text


@pytest.mark.parametrize(("seconds", "text"), [
    (0, "0s"), (4e-10, "0s"), (1e-9, "1ns"), (5e-7, "500ns"), (9.99e-7, "999ns"), (1e-6, "1\u00b5s"),
    (1.5e-6, "1.5\u00b5s"), (0.000999, "999\u00b5s"), (0.001, "1ms"), (0.0015, "1.5ms"),
    (0.001001, "1.001ms"), (0.25, "250ms"), (0.999999999, "999.999999ms"), (1, "1s"), (1.05, "1.05s"),
    (1.5, "1.5s"), (1.000000001, "1.000000001s"), (10.062, "10.062s"), (59, "59s"), (60, "1m0s"),
    (61.25, "1m1.25s"), (90, "1m30s"), (3599, "59m59s"), (3600, "1h0m0s"), (3723, "1h2m3s"),
    (90000, "25h0m0s"), (-1.5, "-1.5s"), (-0.25, "-250ms"), (-9e-7, "-900ns"), (-90, "-1m30s"),
    (-3723, "-1h2m3s"),
])
def test_go_duration_matches_time_duration_string(seconds: float, text: str) -> None:
    assert quantity.go_duration(seconds) == text


@pytest.mark.parametrize(("timestamp", "text"), [
    (0, "1970-01-01T00:00:00Z"), (0.999, "1970-01-01T00:00:00Z"), (1_700_000_000, "2023-11-14T22:13:20Z"),
    (1_700_000_000.9, "2023-11-14T22:13:20Z"), (951_825_599, "2000-02-29T11:59:59Z"),
])
def test_rfc3339_is_utc_whole_seconds(timestamp: float, text: str) -> None:
    assert quantity.rfc3339(timestamp) == text


@pytest.mark.parametrize("timestamp", [math.nan, math.inf, -math.inf])
def test_rfc3339_refuses_what_is_not_a_time(timestamp: float) -> None:
    with pytest.raises(ValueError, match=rf"^not a time: {timestamp!r}$"):
        quantity.rfc3339(timestamp)
