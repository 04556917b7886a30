"""The image manifest and the mip package.json files made from it."""

import json
import os

import pytest

from mesoinject import image


@pytest.mark.parametrize("path", sorted(image.mip_packages()), ids=lambda p: str(p.relative_to(image.FIRMWARE)))
def test_mip_package_json_is_current(path):
    assert path.exists() and path.read_text() == image.mip_json(image.mip_packages()[path]), (
        f"{path} is stale: run `python -m mesoinject.image mip`")


def listed(path):
    """(path on the board, local file) for every url of a package.json, resolved as mip does."""
    package = json.loads(path.read_text())
    return [(rel, path.parent / url) for rel, url in package["urls"]]


@pytest.mark.parametrize("board", image.board_names())
def test_mip_packages_hold_exactly_the_boards_image(board):
    files = listed(image.FIRMWARE / "package.json") + listed(image.BOARDS / board / "package.json")
    for rel, local in files:
        assert local.is_file(), f"{rel}: {local} does not exist"
    assert sorted(rel for rel, _ in files) == sorted(rel for _, rel in image.manifest(board))
    on_board = {rel: os.path.realpath(local) for rel, local in files}
    assert on_board == {rel: os.path.realpath(src) for src, rel in image.manifest(board)}


def test_main_py_is_copied_last():
    # a copy cut short leaves no main.py that imports half an image
    assert image.manifest("pico")[-1][1] == "main.py"


def test_firmware_version_is_the_one_in_app_py():
    text = (image.FIRMWARE / "mesofw" / "app.py").read_text()
    assert "FW_VERSION = (%d, %d, %d)" % image.firmware_version() in text
