"""The firmware codec (struct), run on the MicroPython unix port, against the golden vectors."""

import json
import pathlib

import pytest

HERE = pathlib.Path(__file__).parent
VECTORS = HERE.parents[1] / "protocol" / "vectors" / "frames.json"
CASES = json.loads(VECTORS.read_text())["cases"]


@pytest.fixture(scope="module")
def results(run_mpy):
    return {r["name"]: r for r in run_mpy(HERE / "mpy_vectors.py", VECTORS)}


@pytest.mark.req("SR-033")
@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_firmware_decodes_vector(case, results):
    got = results[case["name"]]
    assert got["whole"] == case["results"]
    assert got["bytes"] == case["results"]


@pytest.mark.req("SR-033")
@pytest.mark.parametrize("case", [c for c in CASES if c.get("encode")], ids=lambda c: c["name"])
def test_firmware_encodes_vector(case, results):
    assert results[case["name"]]["encoded"] == case["hex"]
