// The emulated RP2040's run loop: rp2040js's Simulator.execute, plus what the flash model needs
// (flash.mjs: a stalled core, the XIP-off check) and the PIO run on the emulated clock.
//
// rp2040js runs the PIO apart from the CPU: 1000 PIO cycles per turn of Node's event loop, against
// a million CPU instructions, whatever the state machine's clock divider. On that scale the step
// PIO (1 MHz, board_steppio.PIO_HZ) ran ~8x slower than the CPU's clock: pulse trains took ~8x their
// time, and a pass that waits for its pulses (wait_steps before a journal write, a full queue) took
// that long too. Here each enabled state machine steps once per (its divider) system cycles of
// emulated time, batched every PIO_BATCH cycles (pin edges are timed to that: ~0.5 us), also while
// the core sleeps (WFI) or is stalled. rp2040js's PIO model still ignores instruction delays.

const CYCLE_NS = 8; // 125 MHz, as rp2040js's Simulator
const PIO_BATCH = 64; // system cycles between PIO catch-ups
const WAIT_TX_FIFO = 3; // rp2040js's WaitType.txFIFO: a blocking pull on an empty FIFO (woken by the CPU's put)

export function installLoop(simulator) {
  const mcu = simulator.rp2040;
  const { core, clock } = mcu;
  // horizonNs/pause/onPause: run.mjs --lockstep stops the chip at its tick's end (no jump past it, even
  // to an idle core's next alarm or through a flash stall); pause() true: onPause() and execute()
  // returns without rescheduling itself; calling execute() again goes on
  const loop = { stallUntil: 0, xipOff: false, onXip: null, pioCycles: 0, horizonNs: Infinity, pause: null, onPause: null };
  const toHorizon = (d) => Math.max(1, Math.min(d, loop.horizonNs - clock.nanos));
  for (const pio of mcu.pio) pio.run = () => {}; // no event-loop PIO: stepped below

  function stepPio(cycles) {
    for (const pio of mcu.pio) {
      if (pio.stopped) continue;
      let stepped = false;
      for (const m of pio.machines) {
        if (!m.enabled) continue;
        const div = (m.clockDivInt || 65536) + m.clockDivFrac / 256;
        let owed = (m.cyclesOwed || 0) + cycles; // system cycles not yet run by this machine
        while (owed >= div) {
          owed -= div;
          m.step();
          stepped = true;
        }
        m.cyclesOwed = owed;
      }
      if (stepped) pio.checkChangedPins();
    }
  }

  // every enabled state machine blocked in a pull: only the CPU (not running now) can wake it
  const pioIdle = () => mcu.pio.every((pio) => pio.stopped
    || pio.machines.every((m) => !m.enabled || (m.waiting && m.waitType === WAIT_TX_FIFO)));

  // time passes without the core: the PIO keeps in step, PIO_BATCH cycles at a time
  function advance(ns) {
    const end = clock.nanos + ns;
    if (pioIdle()) {
      clock.tick(ns);
      return;
    }
    while (clock.nanos < end) {
      const d = Math.min(PIO_BATCH * CYCLE_NS, end - clock.nanos);
      clock.tick(d);
      stepPio(d / CYCLE_NS);
    }
  }

  simulator.execute = function execute() {
    this.executeTimer = null;
    this.stopped = false;
    let owed = loop.pioCycles;
    for (let i = 0; i < 1000000 && !this.stopped; i += 1) {
      if (loop.pause && loop.pause()) {
        loop.pioCycles = owed;
        loop.onPause();
        return;
      }
      if (loop.stallUntil > clock.nanos) {
        const d = toHorizon(Math.min(1e6, loop.stallUntil - clock.nanos));
        advance(d);
        i += d / CYCLE_NS;
      } else if (core.waiting) {
        const d = toHorizon(clock.nanosToNextAlarm);
        advance(d);
        i += d / CYCLE_NS;
      } else {
        if (loop.xipOff && core.PC >= 0x10000000 && core.PC < 0x14000000 && loop.onXip) loop.onXip(core.PC);
        const cycles = core.executeInstruction();
        clock.tick(cycles * CYCLE_NS);
        owed += cycles;
        if (owed >= PIO_BATCH) {
          stepPio(owed);
          owed = 0;
        }
      }
    }
    loop.pioCycles = owed;
    if (!this.stopped) this.executeTimer = setTimeout(() => this.execute(), 0);
  };
  return loop;
}
