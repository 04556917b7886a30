"""spec.HEAD_LINE_MAX16 (the head table's highest clear-head flow pressure, a prime's bound) is what its
comment says it is: Poiseuille through the needles' bores and length plus their hubs, the most viscous drug,
every needle at the narrow end of the lot's spread, the syringe's bore 2 % wide."""

from math import pi

import pytest

from mesoprotocol import spec

BORE_UM = {30: 159}  # ISO 9626:2016 regular wall, nominal inner diameter
HUB_KPA_S_PER_NL = 0.0002  # hub, Luer and entry losses per needle


@pytest.mark.req("SR-192")
@pytest.mark.parametrize("code", [6, 7])
def test_the_head_tables_clear_line_is_poiseuille_at_its_worst(code):
    _, n, gauge, length_um, _, _ = spec.HEADS[code]
    lumen = 128 * spec.DRUG_MAX_MPA_S * length_um / (pi * BORE_UM[gauge] ** 4)  # kPa s/nL (mPa s, um)
    per_ml_s = 1e6 * (lumen + HUB_KPA_S_PER_NL) / (n * (1 - spec.HEAD_NEEDLE_SPREAD_PCT / 100)) * 1.02 ** 2
    assert spec.HEAD_LINE_MAX16[code] == round(16 * per_ml_s)
    # at 100 uL/s: 5 needles 16.0 kPa, 9 needles 8.9 kPa (+ half the sensor's quantum)
    assert spec.head_prime_max16(code, 100000) == spec.HEAD_LINE_MAX16[code] // 10 + spec.HEAD_TABLE_MARGIN16
    assert spec.head_prime_max16(1, 100000) == 0  # a single needle: no bound (no blocked-needle watch)
