"""The image the simulated board boots: the one a flash writes (compile_image), staged from a cache that
compiles once per content, over a flash that held sources."""

import pytest

from mesoinject import compiled, flash, image
from mesosim.harness import MicroPythonMissing, micropython_binary


@pytest.fixture
def binary():
    try:
        return micropython_binary()
    except MicroPythonMissing as e:
        pytest.skip(str(e))


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("MESOINJECT_MPY_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_staged_image_is_what_a_flash_writes(binary, cache, tmp_path):
    arch, mpy_sub = compiled.target_of(binary)
    dest = compiled.stage("sim", tmp_path / "flash", binary)
    built = flash.compile_image("sim", arch, mpy_sub)
    on_flash = {str(p.relative_to(dest)): p.read_bytes() for p in dest.rglob("*") if p.is_file()}
    assert on_flash == dict(built.files)  # every module .mpy, boot.py and main.py source, byte for byte


def test_compiled_once_per_content(binary, cache, tmp_path, monkeypatch):
    compiled.stage("sim", tmp_path / "a", binary)
    monkeypatch.setattr(flash, "compile_image", lambda *a: pytest.fail("compiled again for the same sources"))
    compiled.stage("sim", tmp_path / "b", binary)
    assert len([p for p in cache.iterdir() if not p.name.startswith(".")]) == 1


def test_a_changed_source_is_a_new_build(binary, cache):
    arch, mpy_sub = compiled.target_of(binary)
    key = compiled.build_key("sim", arch, mpy_sub)
    assert compiled.build_key("sim", arch, mpy_sub) == key
    assert compiled.build_key("sim", "armv6m", mpy_sub) != key  # another arch, another build
    assert compiled.build_key("pico", arch, mpy_sub) != key


def test_staging_over_a_source_image_removes_its_modules_and_keeps_data(binary, cache, tmp_path):
    dest = image.stage("sim", tmp_path / "flash")  # a board that ran the sources
    (dest / "journal.d").mkdir()
    (dest / "journal.d" / "0").write_bytes(b"records")
    (dest / "key").write_bytes(b"k" * 16)
    compiled.stage("sim", dest, binary)
    left = sorted(str(p.relative_to(dest)) for p in dest.rglob("*.py"))
    assert left == sorted(flash.KEEP_SOURCE)  # a stale .py would shadow its .mpy
    assert (dest / "mesofw" / "device.mpy").exists()
    assert (dest / "journal.d" / "0").read_bytes() == b"records" and (dest / "key").exists()
