"""The host's tests on the VirtualDevice (the real firmware on the MicroPython unix port, no physics): its
fixtures live in conftest.py; this is the operator at its gun."""

from mesoprotocol import spec


def operator(vdev, stop, release_after_s=0.0):
    """Press for each point while the gun shows READY, let go once it stops delivering (release_after_s
    later: a slow finger, or a test thread a loaded host held up)."""
    while not stop.is_set():
        try:
            vdev.wait_led((spec.LED_READY,), 0.05)
        except TimeoutError:
            continue
        vdev.press_trigger()
        vdev.wait(lambda: vdev.led != spec.LED_READY or stop.is_set(), 10, "the point did not start")
        vdev.wait(lambda: vdev.led != spec.LED_DELIVERING or stop.is_set(), 10, "the point did not end")
        stop.wait(release_after_s)
        vdev.release_trigger()
