"""The simulated board's control channel (JSON lines, firmware/boards/sim/board_ctrl.py): a message
outside the schema is written to the board's log, naming its kind, and the board goes on."""

import pytest


@pytest.mark.sim_only
def test_the_board_logs_a_message_it_does_not_know_and_goes_on(sim):
    conn = sim.control._conn  # the harness itself refuses to send these: write them as a broken harness would
    conn.sendall(b'{"kind": "tickle", "where": "ribs"}\n{"kind": "stall"}\n')
    sim.truth()  # answered after both: the channel is in order, and the board still serves it
    log = sim.log_path.read_text(errors="replace")
    assert "control channel: unknown control message kind 'tickle'" in log
    assert "control channel: control message 'stall': missing ms" in log
