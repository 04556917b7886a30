"""The firmware's CRCs (mesofw.crc: viper, and the table in Python for a port without viper) on
MicroPython: same results as spec.crc16 / zlib's CRC-32 and the golden frames, no allocation."""

import pathlib

import pytest

HERE = pathlib.Path(__file__).parent
VECTORS = HERE.parents[1] / "protocol" / "vectors" / "frames.json"


@pytest.fixture(scope="module")
def result(run_mpy, tmp_path_factory):
    return run_mpy(HERE / "mpy_crc.py", VECTORS, tmp_path_factory.mktemp("journal"))


def test_viper_compiles_on_this_port(result):
    assert result["viper"]


def test_crcs_match_their_definitions_and_the_golden_frames(result):
    assert result["frames"] > 20 and result["random"] == 42
    assert result["bad"] == []


@pytest.mark.parametrize("call", ["crc16", "crc16_py", "crc32", "crc32_py", "checkpoint"])
def test_no_heap_allocation(result, call):
    # a journal checkpoint runs in the dosing loop: on a 32-bit port binascii.crc32 allocated here
    assert result["alloc"][call] == 0
