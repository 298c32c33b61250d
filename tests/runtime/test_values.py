import math

import pytest

from wasmlower.runtime import values as v
from wasmlower.runtime.values import F32Bits, F64Bits
from wasmlower.wasm import ValType as V


@pytest.mark.parametrize(("vt", "value", "bits"), [
    (V.I32, 0, 0), (V.I32, -1, 0xFFFFFFFF), (V.I32, 0xFFFFFFFF, 0xFFFFFFFF),
    (V.I32, -(1 << 31), 0x80000000), (V.I64, -1, (1 << 64) - 1),
    (V.I64, (1 << 63) - 1, (1 << 63) - 1), (V.I64, True, 1),
])
def test_int_to_bits(vt, value, bits):
    assert v.to_bits(vt, value) == bits


@pytest.mark.parametrize(("vt", "value"), [
    (V.I32, 1 << 32), (V.I32, -(1 << 31) - 1), (V.I64, 1 << 64), (V.I64, -(1 << 63) - 1)])
def test_int_out_of_range(vt, value):
    with pytest.raises(ValueError):
        v.to_bits(vt, value)


def test_int_rejects_floats_and_raw_float_bits():
    with pytest.raises(TypeError):
        v.to_bits(V.I32, 1.0)
    with pytest.raises(TypeError):
        v.to_bits(V.I64, F64Bits(0))


def test_signed_results():
    assert v.from_bits(V.I32, 0xFFFFFFFF) == -1
    assert v.from_bits(V.I32, 0x1_0000_0005) == 5          # upper half ignored
    assert v.from_bits(V.I64, 1 << 63) == -(1 << 63)
    assert v.signed(0x80, 8) == -128


def test_float_conversions():
    assert v.to_bits(V.F32, 1.5) == 0x3FC00000
    assert v.to_bits(V.F64, -2.0) == 0xC000000000000000
    assert v.to_bits(V.F32, 3) == 0x40400000
    assert v.from_bits(V.F32, 0x3FC00000) == 1.5
    assert v.from_bits(V.F64, 0x7FF0000000000000) == math.inf
    # Out of f32 range: rounds to infinity like f32.demote, instead of raising.
    assert v.to_bits(V.F32, 1e300) == 0x7F800000
    assert v.to_bits(V.F32, -1e300) == 0xFF800000
    assert v.to_bits(V.F32, 3.40282356e38) == 0x7F7FFFFF       # below the halfway point
    assert v.to_bits(V.F32, 3.4028235677973366e38) == 0x7F800000   # halfway: ties to even
    assert v.to_bits(V.F32, -0.0) == 0x80000000


@pytest.mark.parametrize("bits", [0x7FA00001, 0xFFC00000, 0x7F800001, 0x7FC12345])
def test_f32_raw_nan_payloads_round_trip(bits):
    assert v.to_bits(V.F32, F32Bits(bits)) == bits
    assert math.isnan(F32Bits(bits).float)


@pytest.mark.parametrize("bits", [0x7FF4000000000001, 0xFFF8000000000000, 0x7FF0000000000001])
def test_f64_raw_nan_payloads_round_trip(bits):
    assert v.to_bits(V.F64, F64Bits(bits)) == bits
    assert v.f64_to_bits(v.bits_to_f64(bits)) == bits        # f64 NaNs survive Python floats


def test_raw_wrappers_check_width_and_range():
    with pytest.raises(TypeError):
        v.to_bits(V.F32, F64Bits(0))
    with pytest.raises(TypeError):
        v.to_bits(V.F64, F32Bits(0))
    with pytest.raises(ValueError):
        F32Bits(1 << 32)
    with pytest.raises(ValueError):
        F64Bits(-1)
    with pytest.raises(TypeError):
        v.to_bits(V.F64, "1.0")


def test_ref_types_need_a_store():
    with pytest.raises(TypeError):
        v.to_bits(V.FUNCREF, None)
