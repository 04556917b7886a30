// The real MicroPython RPI_PICO firmware on an emulated RP2040 (rp2040js), for the emulated-Pico
// tests and bench (driven by tools/pico-emu/picoemu.py; adapted from ../shared/mcu/rp2040js/run.mjs).
// The core runs in cpuloop.mjs (the PIO on the emulated clock); flash.mjs handles the boot ROM's
// flash erase/program (datasheet times, the core stalled), so the littlefs is writable.
//
//   node run.mjs --uf2 F --bootrom bootrom.mjs [--fs littlefs.img] [--script file.py | --tcp PORT]
//                [--watch 2:3,4:5] [--inputs 10=0,11=0] [--adc0 N] [--adc CH=N,...] [--timeout WALL_S]
//
// --script: once the REPL is up, run the file through the raw REPL, then exit.
// --tcp:    bridge the USB CDC serial to a TCP server on 127.0.0.1:PORT (host side: socket://).
// --watch:  STEP:DIR pin pairs: count STEP rising edges, split by the DIR level at the edge.
// --inputs: GPIO inputs driven as switches (1 high, 0 low); stdin takes more while it runs:
//           one JSON object a line, {"pin": 10, "value": 1} or {"adc": 0, "value": 2048} or {"stats": 1}.
// --on-mark NAME:PIN=V[,...]: when the board prints "MARK NAME", drive that input pin at once (its mark
//           event carries the emulated us it was set); every STEP pin's last rising edge time is kept
//           ("done": last_edge_us), so a test can tell how long pulses went on after the pin changed.
// --lockstep US: the board's world (tools/pico-emu/emuboard.py: the sim's physical model) runs beside the
//           chip on its clock: every US emulated us the chip stops, a {"event": "tick"} line gives the emulated
//           us, the STEP edges of each --watch pin since the last tick (signed by DIR, only while --enable
//           PIN, active low, is low) and the --outputs pins' levels; the chip goes on at {"go": 1} on stdin
//           (after the pin/adc lines the world sets). --sync-on PINS: an edge there ends the tick at once (a
//           switch the firmware reads right after a pulse, the needle's home switch). --sync-adc CHS: a conversion
//           of those ADC channels ends the tick at once and completes after {"go": 1} with the value the world set
//           (the "tick" lists them in "adc"; "reads" counts every channel's conversions since boot): each read sees
//           the world at its own emulated us, with its own noise, not a value held since the last tick (the line's
//           sensor as the firmware's tight read loops sample it: a point's zero, a prime's dense tail).
// A line "MARK <name>" that the board prints records the edge counts at that moment; a line
// "PROBE <text>" (tools/pico-emu/emu_boot.py, between the link's frames) is passed on with them.
// --flash-timing typ|max|off: erase/program the emulated flash with the W25Q16JV's typical or maximum
//           times, stalling the core (flash.mjs; default typ); off: the ROM's code against the SSI stub,
//           which writes nothing (the old behaviour). --flash-events: a "flash" event per erase/program.
// --fs-save PATH: at exit, the filesystem's part of the flash written to PATH (a reboot: --fs PATH again).
// --on-flash NAME:PIN=V@US[,...]: after the board prints "MARK NAME", at the next erase, drive that pin
//           US emulated microseconds into it (while the core is stalled); a "flash-pin" event says when.
// stdout: JSON lines, {"event": "ready" | "listening" | "mark" | "probe" | "stats" | "done", ...}; the last is "done" with
// the script's output, emulated and wall seconds. Exit code: 0 ok, 1 script error, 2 wall timeout.
import fs from 'fs';
import net from 'net';
import { Simulator, USBCDC, ConsoleLogger, LogLevel, GPIOPinState } from 'rp2040js';
import { installFlashModel } from './flash.mjs';
import { installLoop } from './cpuloop.mjs';

const args = {};
for (let i = 2; i < process.argv.length; i += 1) {
  const a = process.argv[i];
  if (a.startsWith('--')) {
    const next = process.argv[i + 1];
    if (next === undefined || next.startsWith('--')) args[a.slice(2)] = true;
    else { args[a.slice(2)] = next; i += 1; }
  }
}
const FLASH_START = 0x10000000;
const FS_OFFSET = 0xa0000; // RPI_PICO: 2 MB flash, the last 1408 KB are the filesystem
const FS_SIZE = 1408 * 1024;
const t0 = Date.now();
const { bootromB1 } = await import(new URL('file://' + fs.realpathSync(args.bootrom)));

const simulator = new Simulator();
const mcu = simulator.rp2040;
mcu.loadBootrom(bootromB1);
mcu.logger = new ConsoleLogger(LogLevel.Error);
const emit = (obj) => process.stdout.write(JSON.stringify(obj) + '\n');
const emulatedUs = () => Math.round(simulator.clock.nanos / 1000);
const wallS = () => (Date.now() - t0) / 1000;

const uf2 = fs.readFileSync(args.uf2);
for (let off = 0; off + 512 <= uf2.length; off += 512) {
  const b = uf2.subarray(off, off + 512);
  if (b.readUInt32LE(0) !== 0x0a324655 || b.readUInt32LE(4) !== 0x9e5d5157) continue;
  mcu.flash.set(b.subarray(32, 32 + b.readUInt32LE(16)), b.readUInt32LE(12) - FLASH_START);
}
if (args.fs) mcu.flash.set(fs.readFileSync(args.fs), FS_OFFSET);
const loop = installLoop(simulator); // the PIO on the emulated clock; the core stalled by the flash
const flashModel = setupFlash(); // after loadBootrom: it patches the ROM's flash functions

const setInput = (pin, value) => mcu.gpio[pin].setInputValue(!!value);
if (args.inputs) {
  for (const kv of String(args.inputs).split(',')) {
    const [p, v] = kv.split('=').map(Number);
    setInput(p, v);
  }
}
if (args.adc0 !== undefined) mcu.adc.channelValues[0] = Number(args.adc0);
for (const pair of (args.adc ? String(args.adc).split(',') : [])) { // --adc 1=1356,2=372: ADC channels' counts
  const [ch, v] = pair.split('=').map(Number);
  mcu.adc.channelValues[ch] = v;
}

// STEP edges by DIR level: counts[step] = [edges with DIR low, edges with DIR high]
const counts = {};
const lastEdgeUs = {};
const edgeHooks = []; // (step pin, DIR level) per rising edge: the lockstep's tally
let lockstep = null; // --lockstep's state (startLockstep)
if (args.watch) {
  for (const pair of String(args.watch).split(',')) {
    const [step, dir] = pair.split(':').map(Number);
    counts[step] = [0, 0];
    mcu.gpio[step].addListener((state, old) => {
      if (state === GPIOPinState.High && old !== GPIOPinState.High) {
        counts[step][mcu.gpio[dir].outputValue ? 1 : 0] += 1;
        lastEdgeUs[step] = emulatedUs();
        for (const hook of edgeHooks) hook(step, mcu.gpio[dir].outputValue);
      }
    });
  }
}
const snapshot = () => JSON.parse(JSON.stringify(counts));
const onMark = {};
if (args['on-mark']) {
  for (const item of String(args['on-mark']).split(',')) {
    const [name, pv] = item.split(':');
    const [p, v] = pv.split('=').map(Number);
    (onMark[name] = onMark[name] || []).push([p, v]);
  }
}
const onFlash = {}; // --on-flash: armed by a mark, fired by the next erase
const armedFlash = [];
if (args['on-flash']) {
  for (const item of String(args['on-flash']).split(',')) {
    const [name, rest] = item.split(':');
    const [pv, us] = rest.split('@');
    const [p, v] = pv.split('=').map(Number);
    (onFlash[name] = onFlash[name] || []).push([p, v, Number(us)]);
  }
}
let finished = false;
function finish(code, extra) {
  if (finished) return;
  finished = true;
  simulator.stop();
  if (args['fs-save']) fs.writeFileSync(args['fs-save'], mcu.flash.subarray(FS_OFFSET, FS_OFFSET + FS_SIZE));
  emit({ event: 'done', code, emulated_s: emulatedUs() / 1e6, wall_s: wallS(), edges: snapshot(), last_edge_us: lastEdgeUs,
    flash: flashModel && flashModel.stats(), ...extra });
  process.exit(code);
}

const cdc = new USBCDC(mcu.usbCtrl);
// the emulated host's CDC TX FIFO holds 512 bytes and drops the rest: queue here, feed it as it drains
const pending = [];
let pendingHead = 0;
const pump = () => {
  while (pendingHead < pending.length && cdc.txFIFO.itemCount < 256) cdc.sendSerialByte(pending[pendingHead++]);
  if (pendingHead === pending.length && pendingHead) { pending.length = 0; pendingHead = 0; }
};
setInterval(pump, 2);
const sendBytes = (bytes) => { for (const b of bytes) pending.push(b); pump(); };

let phase = args.script ? 'wait-prompt' : 'bridge';
let seen = '';
let output = '';
let line = '';
let client = null;
cdc.onDeviceConnected = () => {
  emit({ event: 'ready', emulated_us: emulatedUs(), wall_s: wallS() });
  if (phase === 'wait-prompt') sendBytes([13, 10]);
};
cdc.onSerialData = (value) => {
  const s = Buffer.from(value).toString('latin1');
  for (const ch of s) {
    if (ch === '\n') {
      const at = line.indexOf('MARK '); // the raw REPL's "OK" may lead the first line
      if (at >= 0) {
        const name = line.slice(at + 5).trim();
        const set = onMark[name.split(' ')[0]] || [];
        if (onFlash[name.split(' ')[0]]) armedFlash.push(...onFlash[name.split(' ')[0]]);
        for (const [p, v] of set) setInput(p, v);
        emit({ event: 'mark', name, emulated_us: emulatedUs(), edges: snapshot(), last_edge_us: { ...lastEdgeUs },
          ...(set.length ? { pins_set_us: emulatedUs() } : {}) });
      }
      const probe = line.indexOf('PROBE '); // a probe's text line between the link's frames
      if (probe >= 0) emit({ event: 'probe', line: line.slice(probe + 6).trim(), emulated_us: emulatedUs(), wall_s: wallS(), edges: snapshot() });
      line = '';
    } else if (ch !== '\r') line = (line + ch).slice(-2000);
  }
  if (client) client.write(Buffer.from(value));
  seen = (seen + s).slice(-4096);
  if (phase === 'wait-prompt' && seen.endsWith('>>> ')) {
    phase = 'wait-raw';
    seen = '';
    sendBytes([3, 3, 1]); // Ctrl-C Ctrl-C Ctrl-A: the raw REPL
  } else if (phase === 'wait-raw' && seen.includes('raw REPL; CTRL-B to exit\r\n>')) {
    phase = 'running';
    sendBytes(fs.readFileSync(args.script));
    sendBytes([4]);
  } else if (phase === 'running') {
    output += s;
    const parts = output.split('\x04'); // raw REPL: "OK" <stdout> \x04 <stderr> \x04 ">"
    if (parts.length >= 3) finish(parts[1] ? 1 : 0, { stdout: parts[0].replace(/^OK/, ''), stderr: parts[1] });
  }
};

if (args.tcp) {
  const server = net.createServer((sock) => {
    sock.setNoDelay(true);
    client = sock;
    sock.on('data', (d) => sendBytes(d));
    sock.on('close', () => { if (client === sock) client = null; });
    sock.on('error', () => {});
  });
  server.listen(Number(args.tcp), '127.0.0.1', () => emit({ event: 'listening', port: Number(args.tcp) }));
}

let ctl = '';
process.stdin.on('data', (chunk) => {
  ctl += chunk.toString();
  let nl;
  while ((nl = ctl.indexOf('\n')) >= 0) {
    const text = ctl.slice(0, nl).trim();
    ctl = ctl.slice(nl + 1);
    if (!text) continue;
    const cmd = JSON.parse(text);
    if (cmd.pin !== undefined) setInput(cmd.pin, cmd.value);
    if (cmd.adc !== undefined) mcu.adc.channelValues[cmd.adc] = cmd.value;
    if (cmd.stats) emit({ event: 'stats', id: cmd.stats, emulated_us: emulatedUs(), wall_s: wallS(), edges: snapshot(),
      flash: flashModel && flashModel.stats() });
    if (cmd.go) lockstepGo();
    if (cmd.quit) finish(0);
  }
});
process.stdin.on('end', () => { if (!args.script) finish(0); }); // the host went away
if (args.timeout) setTimeout(() => finish(2, { error: `wall timeout after ${args.timeout} s` }), Number(args.timeout) * 1000);
process.on('SIGTERM', () => finish(143));

// The flash model (flash.mjs) and what hangs on it: flash events, pins driven during an erase.
function setupFlash() {
  if (args['flash-timing'] === 'off') return null;
  return installFlashModel(simulator, loop, { timing: args['flash-timing'] || 'typ', onOp });
}
function onOp(op) {
  if (args['flash-events']) emit({ event: 'flash', ...op, edges: snapshot() });
  if (op.op !== 'erase' || !armedFlash.length) return;
  for (const [p, v, us] of armedFlash.splice(0)) {
    simulator.clock.createAlarm(() => {
      setInput(p, v);
      emit({ event: 'flash-pin', pin: p, value: v, pins_set_us: emulatedUs(), erase_start_us: op.start_us,
        busy_us: op.busy_us, edges: snapshot(), last_edge_us: { ...lastEdgeUs } });
    }).schedule(us * 1000);
  }
}

mcu.core.PC = FLASH_START;
if (args.lockstep) startLockstep(Number(args.lockstep));
else simulator.execute();

// ---- --lockstep: the chip and the board's world take turns, on the chip's clock ----
function startLockstep(periodUs) {
  const en = args.enable !== undefined ? Number(args.enable) : -1;
  const outputs = args.outputs ? String(args.outputs).split(',').map(Number) : [];
  const syncOn = new Set(args['sync-on'] ? String(args['sync-on']).split(',').map(Number) : []);
  const syncAdc = new Set(args['sync-adc'] !== undefined ? String(args['sync-adc']).split(',').map(Number) : []);
  lockstep = { periodNs: periodUs * 1000, endNs: 0, sync: false, steps: {}, disabled: 0, outputs, waiting: false,
    adc: [], reads: {} };
  const adc = mcu.adc;
  const plainRead = adc.onADCRead;
  adc.onADCRead = (ch) => { // a synced channel's conversion: the world's turn first, then its sample time
    lockstep.reads[ch] = (lockstep.reads[ch] || 0) + 1; // every conversion, per channel, since boot ("tick": reads)
    if (!syncAdc.has(ch)) return plainRead(ch);
    adc.currentChannel = ch;
    lockstep.adc.push(ch);
    lockstep.sync = true;
  };
  edgeHooks.push((step, dirHigh) => {
    if (en >= 0 && mcu.gpio[en].outputValue) { lockstep.disabled += 1; return; } // a disabled driver ignores it
    lockstep.steps[step] = (lockstep.steps[step] || 0) + (dirHigh ? 1 : -1);
    if (syncOn.has(step)) lockstep.sync = true;
  });
  lockstep.endNs = simulator.clock.nanos + lockstep.periodNs;
  setTimeout(lockstepRun, 0);
}

function lockstepRun() {
  // cpuloop.mjs's run loop, stopped at the tick's end (an idle core's jump to its next alarm too)
  const ls = lockstep;
  loop.horizonNs = ls.endNs;
  loop.pause = () => simulator.clock.nanos >= ls.endNs || ls.sync;
  loop.onPause = lockstepTick;
  simulator.execute();
}

function lockstepTick() {
  if (finished) return;
  const ls = lockstep;
  const out = {};
  for (const p of ls.outputs) out[p] = mcu.gpio[p].outputValue ? 1 : 0;
  emit({ event: 'tick', t_us: emulatedUs(), steps: ls.steps, out, disabled: ls.disabled, adc: ls.adc,
    reads: ls.reads });
  ls.steps = {};
  ls.disabled = 0;
  ls.sync = false;
  ls.waiting = true; // until the world answers {"go": 1}
}

function lockstepGo() {
  if (!lockstep || !lockstep.waiting) return;
  lockstep.waiting = false;
  lockstep.endNs = simulator.clock.nanos + lockstep.periodNs;
  if (lockstep.adc.length) { // the conversion that ended the tick reads what the world set just now
    lockstep.adc = [];
    mcu.adc.sampleAlarm.schedule(mcu.adc.sampleTime * 1000);
  }
  setImmediate(lockstepRun);
}
