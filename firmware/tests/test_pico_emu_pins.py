"""The emulated Pico's own output pins (tools/pico-emu/emu_boot.py: the LED code and the trigger the firmware last
read, for emuboard.py) must be GPIOs the pico board leaves free: on one of the board's pins the probe would drive a
line the firmware drives too (GP16 was the LED code's bit 0 and the second channel's BARREL_SELECT). No emulator
needed: both sides are read from their source."""

import ast
import pathlib
import sys

REPO = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tools" / "pico-emu"))
import emuboard  # noqa: E402


def board_pins() -> dict[str, int]:
    """boards/pico/board.py's pin map: its module-level GPIO numbers (upper-case names, ints; the ADC pins too)."""
    tree = ast.parse((REPO / "firmware" / "boards" / "pico" / "board.py").read_text())
    pins = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant) and type(node.value.value) is int:
            for t in node.targets:
                if isinstance(t, ast.Name) and t.id.isupper():
                    pins[t.id] = node.value.value
    return pins


def test_the_emulators_output_pins_are_none_of_the_boards():
    pins = board_pins()
    assert pins["BARREL_SELECT"] == 16 and pins["PLUNGER_STEP"] == 2  # the map was read
    own = {f"LED_CODE_PINS[{i}]": p for i, p in enumerate(emuboard.LED_CODE_PINS)}
    own["TRIGGER_SEEN_PIN"] = emuboard.TRIGGER_SEEN_PIN
    clashes = {name: [b for b, q in pins.items() if q == p] for name, p in own.items() if p in pins.values()}
    assert not clashes, f"emu_boot.py drives pins the pico board uses: {clashes}"
    assert len(set(own.values())) == len(own) and all(0 <= p <= 29 for p in own.values())
