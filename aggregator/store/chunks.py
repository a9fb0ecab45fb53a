"""The codec of a series' closed chunks: a few bytes per point, every value back bit for bit.

A chunk is `n` points: float64 timestamps and `width` columns of float64 values, None marked by one
NaN bit pattern (`NONE`). Each stream is turned into small unsigned integers, those are laid out as
byte planes (byte 0 of every value, then byte 1, ...: all-zero planes are left out) and the whole
chunk is compressed in one zstd frame. The integer transforms, chosen per chunk and per stream:

- timestamps (the round clock: nearly regular): their bit patterns as int64, then the deltas, stored
  either as delta-of-delta or as offsets from the smallest delta, whichever needs fewer bits
  (Gorilla's delta-of-delta; on a jittered clock the offsets are often the narrower);
- values that are all `m / 10**d` for integers `m` and one smallest `d` (ALP's idea; `d` = 0 for whole
  numbers, which come back as `int`): the integers `m`, as deltas or as offsets from the smallest,
  divided by their greatest common divisor (memory moves by whole pages, I/O by sectors);
- anything else (a CPU rate is a quotient of two measurements, with no short decimal form): the bit
  pattern XORed with the previous one (Gorilla), which zeroes the sign, the exponent and the leading
  mantissa bits that consecutive values share.

Every transform is checked when it is chosen (`m / 10**d` must give back the very float), so exactness
never rests on an argument about rounding. Pure standard library apart from zstd: the per-value work is
`map`/`itertools.accumulate` over `operator` functions and array slicing, all in C.
"""

from __future__ import annotations

import math
import struct
import sys
from array import array
from collections.abc import Sequence
from itertools import accumulate, compress, repeat
from operator import add, and_, floordiv, lshift, mul, ne, neg, rshift, sub, truediv, xor

import zstandard

NONE_BITS = 0x7FF8_0000_4E4F_4E45  # a quiet NaN with "NONE" in its payload: a missing value
NONE: float = struct.unpack("<d", struct.pack("<Q", NONE_BITS))[0]
WHOLE_LIMIT = 2**53  # whole numbers up to this magnitude come back as int (every one is a float64)
MAX_DECIMALS = 15  # the most decimal places tried before falling back to XOR
_SIGNED = 1 << 63  # int64 range: [-_SIGNED, _SIGNED)
_SCALED_LIMIT = 2**53  # |m| of a decimal column: beyond it a "decimal" is as long as the float's bits
LEVEL = 3  # zstd level (bench/history_bench.py compares levels)

# stream modes
_DELTA, _OFFSET = 0, 1  # integer streams: deltas from the previous value, or offsets from the smallest
_TS_INTS, _TS_XOR = 0, 1  # timestamps: integer deltas (as above), or bit patterns XORed
_KIND = 0x3F  # a value column's kind: the low 6 bits of its mode byte (0..15 = decimal places)
_XOR_KIND = 0x3E
_EMPTY_KIND = 0x3F  # every value of the column missing or 0
_MISSING_FLAG = 0x80  # set in a value column's mode byte when a bitmap of the present values follows
_ZEROS_FLAG = 0x40  # set when a bitmap of the non-zero values among the present ones follows
_ZEROS_SHARE = 4  # a zero bitmap when at least 1 in 4 values is 0 (idle I/O: 70-97 % measured)

_HEAD = struct.Struct("<HB")  # points, columns
_INT_HEAD = struct.Struct("<BqQ")  # mode, base, gcd
_U64 = struct.Struct("<Q")
_BIG = sys.byteorder == "big"


class ChunkError(ValueError):
    """A chunk's bytes do not decode (corrupt, or from an incompatible build)."""


# --- byte planes ------------------------------------------------------------------------------------


def _planes(values: Sequence[int]) -> bytes:
    """Unsigned 64-bit values as their non-zero byte planes, after a one-byte mask of which are kept."""
    packed = array("Q", values)
    if _BIG:
        packed.byteswap()
    raw = packed.tobytes()
    zero = bytes(len(values))
    mask, kept = 0, []
    for i in range(8):
        plane = raw[i::8]
        if plane != zero:
            mask |= 1 << i
            kept.append(plane)
    return bytes((mask,)) + b"".join(kept)


def _unplanes(data: bytes, offset: int, n: int) -> tuple[list[int], int]:
    """`n` values packed by `_planes` at `offset`, and the offset after them."""
    mask = data[offset]
    offset += 1
    raw = bytearray(8 * n)
    for i in range(8):
        if mask >> i & 1:
            plane = data[offset:offset + n]
            if len(plane) != n:
                raise ChunkError("a byte plane shorter than its count")
            raw[i::8] = plane
            offset += n
    values = array("Q", raw)
    if _BIG:
        values.byteswap()
    return values.tolist(), offset


def _zigzag(values: Sequence[int]) -> list[int]:
    """Signed int64 values as unsigned ones, small magnitudes small: 0, -1, 1, -2 -> 0, 1, 2, 3."""
    return list(map(xor, map(lshift, values, repeat(1)), map(rshift, values, repeat(63))))


def _unzigzag(values: Sequence[int]) -> list[int]:
    return list(map(xor, map(rshift, values, repeat(1)), map(neg, map(and_, values, repeat(1)))))


# --- integer streams --------------------------------------------------------------------------------


def _ints(values: list[int]) -> bytes | None:
    """Signed integers as deltas or offsets (the narrower) over their GCD; None when out of int64 range."""
    first, low, high = values[0], min(values), max(values)
    if low < -_SIGNED or high >= _SIGNED or high - low >= _SIGNED:  # then a delta could overflow int64
        return None
    deltas = list(map(sub, values[1:], values[:-1]))
    if not deltas or 2 * max(map(abs, deltas)) > high - low:  # zigzag doubles a delta
        mode, base, residues = _OFFSET, low, list(map(sub, values[1:], repeat(low)))
    else:
        mode, base, residues = _DELTA, first, deltas
    step = math.gcd(*residues) or 1
    if step > 1:
        residues = list(map(floordiv, residues, repeat(step)))
    coded = residues if mode == _OFFSET else _zigzag(residues)
    head = _INT_HEAD.pack(mode, base, step)
    if mode == _OFFSET:  # the first value is not implied by the base: keep its offset too
        head += _U64.pack(first - low)
    return head + _planes(coded)


def _unints(data: bytes, offset: int, n: int) -> tuple[list[int], int]:
    mode, base, step = _INT_HEAD.unpack_from(data, offset)
    offset += _INT_HEAD.size
    if mode == _OFFSET:
        (first,) = _U64.unpack_from(data, offset)
        offset += _U64.size
        coded, offset = _unplanes(data, offset, n - 1)
        return [base + first, *map(add, map(mul, coded, repeat(step)), repeat(base))], offset
    if mode != _DELTA:
        raise ChunkError(f"unknown integer mode {mode}")
    coded, offset = _unplanes(data, offset, n - 1)
    return list(accumulate(map(mul, _unzigzag(coded), repeat(step)), initial=base)), offset


def _xors(bits: list[int]) -> bytes:
    return _U64.pack(bits[0]) + _planes(list(map(xor, bits[1:], bits[:-1])))


def _unxors(data: bytes, offset: int, n: int) -> tuple[list[int], int]:
    (first,) = _U64.unpack_from(data, offset)
    coded, offset = _unplanes(data, offset + _U64.size, n - 1)
    return list(accumulate(coded, xor, initial=first)), offset


# --- floats <-> bit patterns ------------------------------------------------------------------------


def _bits(values: array) -> list[int]:
    """float64 values (array 'd') as their unsigned 64-bit patterns."""
    out = array("Q")
    out.frombytes(values.tobytes())
    return out.tolist()


def _floats(bits: list[int]) -> list[float]:
    return array("d", array("Q", bits).tobytes()).tolist()


def output(v: float) -> float | int | None:
    """A stored float as the series hands it out: None for the missing mark, whole numbers as int."""
    if math.isnan(v):
        return None if struct.pack("<d", v) == _NONE_BYTES else v
    if v.is_integer() and -WHOLE_LIMIT <= v <= WHOLE_LIMIT and (v or math.copysign(1.0, v) > 0):
        return int(v)
    return v


_NONE_BYTES = struct.pack("<d", NONE)


def _decimal(values: list[float], bits: list[int]) -> tuple[int, list[int]] | None:
    """The fewest decimal places `d` and the integers `m` with `m / 10**d` giving back every value
    exactly (whole numbers in +-2**53 at d = 0); None when there are none (NaN, inf, -0.0, long fractions)."""
    if _NEG_ZERO in bits or not all(map(math.isfinite, values)):
        return None
    if all(map(float.is_integer, values)):
        if min(values) >= -WHOLE_LIMIT and max(values) <= WHOLE_LIMIT:
            return 0, list(map(int, values))
        return None
    largest = max(map(abs, values))
    d = 1
    while d <= MAX_DECIMALS:  # try all at d; the first value that does not fit says the next d to try
        scale = 10**d
        if largest * scale >= _SCALED_LIMIT:
            return None
        scaled = list(map(round, map(mul, values, repeat(float(scale)))))
        back = list(map(truediv, scaled, repeat(scale)))
        if back == values:
            return d, scaled
        bad = next(v for v, b in zip(values, back, strict=True) if v != b)
        d += 1
        while d <= MAX_DECIMALS and not _fits(bad, d):
            d += 1
    return None


def _fits(v: float, d: int) -> bool:
    scale = 10**d
    return abs(v) * scale < _SCALED_LIMIT and v == round(v * scale) / scale


_NEG_ZERO = 1 << 63


def _from_decimal(scaled: list[int], d: int) -> list[float | int]:
    if d == 0:
        return scaled
    scale = 10**d
    out: list[float | int] = []
    for m in scaled:
        whole, rest = divmod(m, scale)  # |m| < 2**53 (_decimal): a whole one is in int range
        out.append(m / scale if rest else whole)
    return out


# --- chunks -----------------------------------------------------------------------------------------


def encode(timestamps: array, columns: Sequence[array]) -> bytes:
    """One compressed chunk from `n` timestamps and `width` columns of `n` floats (NONE = missing)."""
    n = len(timestamps)
    if not 0 < n < 1 << 16 or any(len(c) != n for c in columns):
        raise ValueError(f"a chunk needs 1..65535 points and columns of equal length, got {n}")
    parts = [_HEAD.pack(n, len(columns)), _timestamps(timestamps)]
    parts.extend(_column(c) for c in columns)
    # a new compressor per chunk (~35 us; shared ones are not thread-safe); the result copied: zstd's
    # bytes keep the allocation of its worst-case bound (measured 3.9 KB for 2.4 KB)
    return bytes(memoryview(zstandard.ZstdCompressor(level=LEVEL).compress(b"".join(parts))))


def _timestamps(timestamps: array) -> bytes:
    bits = _bits(timestamps)
    deltas = list(map(sub, bits[1:], bits[:-1]))  # out of int64 when signs differ: then XORed
    if deltas and (coded := _ints(deltas)) is not None:
        return bytes((_TS_INTS,)) + _U64.pack(bits[0]) + coded
    return bytes((_TS_XOR,)) + _xors(bits)


def _column(values: array) -> bytes:
    """A value column: [bitmap of present values] [bitmap of non-zero ones] and the rest, each kind
    of value as narrow as `_decimal`/`_ints` or `_xors` make it. (Mostly-0 I/O: 9 % less per chunk.)"""
    bits = _bits(values)
    flag, head = 0, b""
    for mark, flag_bit in ((NONE_BITS, _MISSING_FLAG), (0, _ZEROS_FLAG)):
        found = bits.count(mark)  # 0: +0.0 only (-0.0 has the sign bit)
        if found and (mark or found * _ZEROS_SHARE >= len(bits)):  # any missing value; enough zeros
            flag |= flag_bit
            kept = list(map(ne, bits, repeat(mark)))
            head += _bitmap(kept)
            bits = list(compress(bits, kept))
            values = array("d", compress(values, kept))
    if not bits:
        return bytes((flag | _EMPTY_KIND,)) + head
    found_decimal = _decimal(values.tolist(), bits)
    if found_decimal is not None:
        d, scaled = found_decimal
        coded = _ints(scaled)
        if coded is not None:
            return bytes((flag | d,)) + head + coded
    return bytes((flag | _XOR_KIND,)) + head + _xors(bits)


def _bitmap(flags: Sequence[bool]) -> bytes:
    """Flags as bits, 8 to a byte, the first in the lowest bit (whole-number arithmetic, no loop per flag)."""
    size = (len(flags) + 7) // 8
    padded = bytes(flags) + bytes(8 * size - len(flags))  # one byte 0/1 per flag
    packed = 0
    for bit in range(8):  # byte k of plane `bit` is flag 8k + bit: moved to its bit of byte k
        packed |= int.from_bytes(padded[bit::8], "little") << bit
    return packed.to_bytes(size, "little")


def _unbitmap(data: bytes, offset: int, n: int) -> tuple[bytes, int]:
    """`n` flags packed by `_bitmap` at `offset`, as bytes 0/1, and the offset after them."""
    size = (n + 7) // 8
    raw = data[offset:offset + size]
    if len(raw) != size:
        raise ChunkError("a bitmap shorter than its count")
    packed = int.from_bytes(raw, "little")
    ones = int.from_bytes(b"\x01" * size, "little")
    flags = bytearray(8 * size)
    for bit in range(8):
        flags[bit::8] = (packed >> bit & ones).to_bytes(size, "little")
    return bytes(flags[:n]), offset + size


def decode(blob: bytes) -> tuple[list[float], list[list[float | int | None]]]:
    """The timestamps and the columns of a chunk (None for missing, whole numbers as int)."""
    try:
        data = zstandard.ZstdDecompressor().decompress(blob)
    except zstandard.ZstdError as exc:
        raise ChunkError(f"corrupt chunk: {exc}") from None
    try:
        n, width = _HEAD.unpack_from(data, 0)
        timestamps, offset = _read_timestamps(data, _HEAD.size, n)
        columns = []
        for _ in range(width):
            column, offset = _read_column(data, offset, n)
            columns.append(column)
    except (struct.error, IndexError) as exc:
        raise ChunkError(f"corrupt chunk: {exc}") from None
    if offset != len(data):
        raise ChunkError("corrupt chunk: bytes after its last column")
    return timestamps, columns


def _read_timestamps(data: bytes, offset: int, n: int) -> tuple[list[float], int]:
    mode = data[offset]
    if mode == _TS_XOR:
        bits, offset = _unxors(data, offset + 1, n)
        return _floats(bits), offset
    if mode != _TS_INTS:
        raise ChunkError(f"unknown timestamp mode {mode}")
    (first,) = _U64.unpack_from(data, offset + 1)
    deltas, offset = _unints(data, offset + 1 + _U64.size, n - 1)
    # sums mod 2**64: the signed deltas of the encoder give back the unsigned bit patterns
    bits = list(map(and_, accumulate(deltas, initial=first), repeat(0xFFFF_FFFF_FFFF_FFFF)))
    return _floats(bits), offset


def _read_column(data: bytes, offset: int, n: int) -> tuple[list[float | int | None], int]:
    mode = data[offset]
    offset += 1
    present: bytes | None = None
    nonzero: bytes | None = None
    count = n
    if mode & _MISSING_FLAG:
        present, offset = _unbitmap(data, offset, count)
        count = sum(present)
    if mode & _ZEROS_FLAG:
        nonzero, offset = _unbitmap(data, offset, count)
        count = sum(nonzero)
    kind = mode & _KIND
    values: list[float | int | None]
    if kind == _EMPTY_KIND:
        values = []
    elif kind == _XOR_KIND:
        bits, offset = _unxors(data, offset, count)
        values = list(map(output, _floats(bits)))
    elif kind <= MAX_DECIMALS:
        scaled, offset = _unints(data, offset, count)
        values = _from_decimal(scaled, kind)  # type: ignore[assignment]
    else:
        raise ChunkError(f"unknown column mode {mode}")
    for mask, fill in ((nonzero, 0), (present, None)):
        if mask is not None:
            it = iter(values)
            values = [next(it) if kept else fill for kept in mask]
    return values, offset
