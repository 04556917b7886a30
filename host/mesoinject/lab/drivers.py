"""labgrid drivers for an injector rig: the board's serial port, the balance's, and a strategy."""

from __future__ import annotations

import enum

import attr
from labgrid.driver.common import Driver
from labgrid.factory import target_factory
from labgrid.step import step
from labgrid.strategy import Strategy, StrategyError

SERIAL_RESOURCES = {"SerialPort", "NetworkSerialPort", "USBSerialPort", "RawSerialPort"}


def serial_url(resource) -> str:
    """The pyserial URL of a labgrid serial resource: a local path, or the exporter's network port."""
    if hasattr(resource, "host"):  # NetworkSerialPort (an exporter's RawSerialPort or USBSerialPort, remotely)
        if resource.protocol != "rfc2217":
            return f"socket://{resource.host}:{resource.port}"
        # ser2net speaks RFC 2217; a port without modem lines (a pty, some USB CDC) never confirms their
        # setting, which the protocol does not use: pyserial is told not to wait for that answer
        return f"rfc2217://{resource.host}:{resource.port}?ign_set_control"
    return resource.port


@target_factory.reg_driver
@attr.s(eq=False)
class InjectorDriver(Driver):
    """The injector board on a serial port: its URL for mesoinject, and HELLO."""

    bindings = {"port": SERIAL_RESOURCES}
    board = attr.ib(default=None, validator=attr.validators.optional(attr.validators.instance_of(str)))

    @property
    def url(self) -> str:
        return serial_url(self.port)

    @Driver.check_active
    @step(result=True)
    def identity(self):
        from ..client import Device

        with Device.open(self.url) as dev:
            return dev.hello()


@target_factory.reg_driver
@attr.s(eq=False)
class MTSICSBalanceDriver(Driver):
    """An MT-SICS analytical balance under the board's needle (the volume tests' ground truth)."""

    bindings = {"port": SERIAL_RESOURCES}

    @property
    def url(self) -> str:
        return serial_url(self.port)

    @Driver.check_active
    def open(self):
        from ..balance import Balance

        return Balance(self.url)


class Status(enum.Enum):
    unknown = 0
    ready = 1  # the board answers HELLO and is the board the driver names


@target_factory.reg_driver
@attr.s(eq=False)
class InjectorStrategy(Strategy):
    bindings = {"injector": "InjectorDriver", "balance": {"MTSICSBalanceDriver", None}}
    status = attr.ib(default=Status.unknown)

    @step(args=["status"])
    def transition(self, status, *, step=None):
        status = Status[status] if isinstance(status, str) else status
        if status == Status.unknown:
            raise StrategyError(f"cannot transition to {status}")
        if status == self.status:
            step.skip("nothing to do")
            return
        self.target.activate(self.injector)
        if self.balance is not None:
            self.target.activate(self.balance)
        ident = self.injector.identity()
        if self.injector.board and ident.board != self.injector.board:
            raise StrategyError(f"the board on {self.injector.url} reports board {ident.board!r}, not "
                                f"{self.injector.board!r} as the environment says")
        self.status = status
