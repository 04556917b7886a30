"""mesoinject.lab: the labgrid drivers register, and each kind of serial resource becomes a URL mesoinject opens
(end to end through a coordinator and an exporter: bench/bench_lab.py, in ./test.sh)."""

from types import SimpleNamespace

import pytest

lab = pytest.importorskip("mesoinject.lab", reason="the lab extra (labgrid) is not installed")


def test_the_drivers_and_the_strategy_register_with_labgrid():
    from labgrid.factory import target_factory

    assert {"InjectorDriver", "MTSICSBalanceDriver", "InjectorStrategy"} <= set(target_factory.drivers)


@pytest.mark.parametrize("resource, url", [
    (SimpleNamespace(port="/dev/ttyACM0"), "/dev/ttyACM0"),  # a SerialPort on this machine
    (SimpleNamespace(host="lab1", port=4001, protocol="rfc2217"), "rfc2217://lab1:4001?ign_set_control"),  # ser2net
    (SimpleNamespace(host="lab1", port=4002, protocol="raw"), "socket://lab1:4002"),
])
def test_a_serial_resource_becomes_the_url_the_link_opens(resource, url):
    assert lab.serial_url(resource) == url
