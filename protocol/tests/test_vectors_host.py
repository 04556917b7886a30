"""The host codec (construct) against the golden vectors, byte for byte."""

import json
import pathlib

import pytest

from mesoinject import codec
from mesoprotocol import spec
from protocol.vectors import generate

VECTORS = json.loads((pathlib.Path(__file__).parents[1] / "vectors" / "frames.json").read_text())
CASES = VECTORS["cases"]


def as_results(items):
    out = []
    for item in items:
        if isinstance(item, codec.Message):
            fields = {k: v.hex() if isinstance(v, bytes) else v for k, v in item.fields.items()}  # raw fields: hex
            out.append({"frame": item.name, "seq": item.seq, "fields": fields})
        elif isinstance(item, codec.Rejected):
            out.append({"nack": item.reason_name, "type": item.type, "seq": item.seq})
        else:
            out.append({"dropped": item.reason})
    return out


@pytest.mark.req("SR-033")
@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_decode(case):
    assert as_results(codec.FrameReader().feed(bytes.fromhex(case["hex"]))) == case["results"]


@pytest.mark.req("SR-033")
@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_decode_byte_by_byte(case):
    reader = codec.FrameReader()
    items = [item for b in bytes.fromhex(case["hex"]) for item in reader.feed(bytes([b]))]
    assert as_results(items) == case["results"]


GOOD = [c for c in CASES if c.get("encode")]


@pytest.mark.req("SR-033")
@pytest.mark.parametrize("case", GOOD, ids=[c["name"] for c in GOOD])
def test_encode(case):
    r = case["results"][0]
    fields = {k: bytes.fromhex(v) if k in spec.RAW_FIELDS else v for k, v in r["fields"].items()}
    assert codec.encode(codec.TYPES[r["frame"]], r["seq"], **fields).hex() == case["hex"]


SIGNED = [c for c in GOOD if codec.TYPES[c["results"][0]["frame"]] in spec.AUTHENTICATED]


@pytest.mark.req("SR-033", "SR-070")
@pytest.mark.parametrize("case", SIGNED, ids=[c["name"] for c in SIGNED])
def test_host_signs_as_the_vectors(case):
    from mesoinject import keys

    payload = bytes.fromhex(case["hex"])[spec.HEADER_SIZE:-spec.CRC_SIZE]
    msg_type = codec.TYPES[case["results"][0]["frame"]]
    key = bytes.fromhex(VECTORS["test_key"])
    assert keys.mac(key, msg_type, payload[: -spec.MAC_SIZE]) == payload[-spec.MAC_SIZE:]


@pytest.mark.req("SR-033")
def test_vectors_file_is_reproducible():
    assert generate.render() == (pathlib.Path(generate.__file__).with_name("frames.json")).read_text()


@pytest.mark.req("SR-033")
def test_every_message_type_has_a_vector():
    covered = {r["frame"] for c in CASES for r in c["results"] if "frame" in r}
    assert covered == {name for name, _ in spec.MESSAGES.values()}
