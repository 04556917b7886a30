// Flash that behaves like flash in rp2040js: the RP2040 boot ROM's flash functions, which pico-sdk
// (and so MicroPython's rp2 port: rp2.Flash, its littlefs) calls for every erase and program, are
// handled here instead of running the ROM's SSI code against rp2040js's SSI stub (which changes
// nothing: the emulated flash was read-only).
//
// What is modelled:
// - 'RE' flash_range_erase(addr, count, block_size, block_cmd): the bytes become 0xFF, a 4 KB sector
//   (0x20) at a time, or block_size at once where the ROM would use block_cmd (aligned and whole).
//   'RP' flash_range_program(addr, data, count): each byte is ANDed in (program clears bits only;
//   only an erase sets them), a 256-byte page at a time. The ROM programs whole pages from a page
//   boundary (its asserts are compiled out): a program whose address or length is not a multiple of
//   256 is counted in `unaligned_programs` (on the chip it would program the bytes after the buffer too).
// - Their time, from the W25Q16JV datasheet (the Pico's flash), typical or maximum (--flash-timing):
//   sector erase 45 / 400 ms, 32 KB block 120 / 1600 ms, 64 KB block 150 / 2000 ms, page program
//   0.4 / 3 ms. The core is stalled for it: it executes nothing, so no interrupt handler runs (on the
//   chip the core is in the ROM polling the flash's busy bit with XIP off, and the caller must have
//   interrupts disabled; `primask_clear` counts operations entered with them enabled). The clock,
//   timers, DMA and USB go on (their alarms fire at their emulated times), and so does the PIO, on
//   the emulated clock (cpuloop.mjs, which runs the core and stalls it).
// - XIP off: from 'IF' connect_internal_flash or 'EX' flash_exit_xip until 'FC' flash_flush_cache
//   returns, an instruction fetched from the flash's address range, or an erase/program whose data
//   is in flash, counts as an XIP violation (on the chip: a bus fault or garbage).
// - 'IF', 'EX', 'FC', 'CX' (connect, exit XIP, flush the cache, enter command XIP) return at once: on
//   the chip each takes microseconds, against an erase's tens of milliseconds. The boot2 copy that
//   pico-sdk runs from RAM afterwards to re-enable fast XIP runs as before (against the SSI stub).
// Not modelled: a second core (rp2040js runs core 0 only), erase/program suspend, wear, a write
// interrupted by a reset or power cut (the operation completes at its call).
//
// The ROM functions are found through the ROM's function table (lookup codes, as pico-sdk's
// rom_func_lookup does) and their first instruction is replaced by BKPT, so this costs nothing per
// instruction outside the XIP-off window.

const FLASH_START = 0x10000000;
const SECTOR = 4096;
const PAGE = 256;
// W25Q16JV AC characteristics, ns: [typical, maximum]
const TIMING = {
  sector: [45e6, 400e6], // tSE, 4 KB
  block32: [120e6, 1600e6], // tBE1
  block64: [150e6, 2000e6], // tBE2
  page: [0.4e6, 3e6], // tPP, 256 B
};

function romFunctions(bootrom) {
  const u8 = new Uint8Array(bootrom.buffer, bootrom.byteOffset, bootrom.byteLength);
  const half = (a) => u8[a] | (u8[a + 1] << 8);
  const table = {};
  for (let p = half(0x14); half(p); p += 4) {
    const code = half(p);
    table[String.fromCharCode(code & 0xff, code >> 8)] = half(p + 2) & ~1;
  }
  return table;
}

function patchHalf(bootrom, addr, value) {
  const word = addr >>> 2;
  const shift = (addr & 2) * 8;
  bootrom[word] = ((bootrom[word] & ~(0xffff << shift)) | (value << shift)) >>> 0;
}

/** Install the model on a Simulator whose boot ROM is loaded. Returns its state (stats()). */
export function installFlashModel(simulator, loop, { timing = 'typ', onOp = null } = {}) {
  const mcu = simulator.rp2040;
  const { core, clock } = mcu;
  const which = timing === 'max' ? 1 : 0;
  const rom = romFunctions(mcu.bootrom);
  const codes = ['IF', 'EX', 'RE', 'RP', 'FC', 'CX'];
  const byAddr = new Map();
  for (const code of codes) {
    if (rom[code] === undefined) throw new Error(`boot ROM has no '${code}' function`);
    byAddr.set(rom[code], code);
    patchHalf(mcu.bootrom, rom[code], 0xbe00 | code.charCodeAt(0)); // BKPT
  }
  const state = {
    timing,
    erases: 0, erasedBytes: 0, programs: 0, programmedBytes: 0, unalignedPrograms: 0, busyNs: 0,
    calls: Object.fromEntries(codes.map((c) => [c, 0])),
    xipViolations: 0, firstViolationPc: null, primaskClear: 0,
  };
  const inFlash = (a) => a >= FLASH_START && a < 0x14000000;
  const violation = (pc) => {
    state.xipViolations += 1;
    if (state.firstViolationPc === null) state.firstViolationPc = pc;
  };
  loop.onXip = violation;

  function erase(addr, count, blockSize, blockCmd) {
    let ns = 0;
    const goal = addr + count;
    addr -= addr % SECTOR; // the ROM erases whole sectors
    while (addr < goal) {
      let size = SECTOR;
      let t = TIMING.sector;
      if (blockCmd && blockSize > SECTOR && addr % blockSize === 0 && goal - addr >= blockSize) {
        size = blockSize;
        t = blockSize >= 65536 ? TIMING.block64 : TIMING.block32;
      }
      mcu.flash.fill(0xff, addr, Math.min(addr + size, mcu.flash.length));
      ns += t[which];
      addr += size;
    }
    state.erases += 1;
    state.erasedBytes += count;
    return ns;
  }

  function program(addr, data, count) {
    if (inFlash(data)) violation(data);
    if (addr % PAGE || count % PAGE) state.unalignedPrograms += 1;
    const pages = new Set();
    for (let i = 0; i < count; i += 1) {
      const a = addr + i;
      if (a < mcu.flash.length) mcu.flash[a] &= mcu.readUint8(data + i);
      pages.add(a >>> 8);
    }
    state.programs += 1;
    state.programmedBytes += count;
    return pages.size * TIMING.page[which];
  }

  const previousBreak = mcu.onBreak;
  mcu.onBreak = (code) => {
    const at = (core.PC - 2) >>> 0;
    const fn = byAddr.get(at);
    if (fn === undefined) { previousBreak(code); return; }
    state.calls[fn] += 1;
    const r = core.registers;
    let ns = 0;
    if (fn === 'IF' || fn === 'EX') loop.xipOff = true;
    if (fn === 'RE' || fn === 'RP') {
      if (!core.PM) state.primaskClear += 1;
      ns = fn === 'RE' ? erase(r[0], r[1], r[2], r[3] & 0xff) : program(r[0], r[1], r[2]);
      state.busyNs += ns;
      if (onOp) onOp({ op: fn === 'RE' ? 'erase' : 'program', addr: r[0], bytes: fn === 'RE' ? r[1] : r[2],
        start_us: clock.nanos / 1000, busy_us: ns / 1000 });
    }
    if (fn === 'FC') loop.xipOff = false;
    loop.stallUntil = clock.nanos + ns;
    core.BXWritePC(core.LR); // return to the caller
  };

  state.stats = () => ({
    timing: state.timing, erases: state.erases, erased_bytes: state.erasedBytes, programs: state.programs,
    programmed_bytes: state.programmedBytes, unaligned_programs: state.unalignedPrograms, busy_us: Math.round(state.busyNs / 1000), calls: { ...state.calls },
    xip_violations: state.xipViolations, first_violation_pc: state.firstViolationPc, primask_clear: state.primaskClear,
  });
  return state;
}
