# The rules a program must meet, as pure functions on wire integers. The device applies them to
# every CONFIGURE (it is the authority); the host applies the same functions before it sends one,
# so the two accept exactly the same programs. Runs on MicroPython and CPython alike.
# check_configure returns None when the program is acceptable, else (reason, field, value, limit)
# with field the 1-based index into CONFIGURE's layout (PROTOCOL.md, NACK).
from mesoprotocol import spec

F_TECHNIQUE = spec.CFG_TECHNIQUE + 1
F_SYRINGE = spec.CFG_SYRINGE + 1
F_HEAD = spec.CFG_HEAD + 1
F_NEEDLE_LENGTH = spec.CFG_NEEDLE_LENGTH + 1
F_DEPTH = spec.CFG_DEPTH + 1
F_VOLUME = spec.CFG_VOLUME + 1
F_COUNT = spec.CFG_COUNT + 1
F_CADENCE = spec.CFG_CADENCE + 1
F_FLOW = spec.CFG_FLOW + 1
F_VACUUM = spec.CFG_VACUUM + 1
F_CHANNEL = spec.CFG_CHANNEL + 1
F_SESSION = spec.CFG_SESSION + 1
F_SESSION_CAP = spec.CFG_SESSION_CAP + 1

_VOLUME_SETTING = {
    spec.TECHNIQUE_POINT: spec.SET_POINT,
    spec.TECHNIQUE_NAPPAGE: spec.SET_SHOT,
    spec.TECHNIQUE_TEST_DOSE: spec.SET_POINT,  # and never above MAX_TEST_DOSE_NL
}
_COUNT_CEILING = {
    spec.TECHNIQUE_POINT: spec.MAX_POINTS,
    spec.TECHNIQUE_NAPPAGE: spec.MAX_SHOTS,
    spec.TECHNIQUE_TEST_DOSE: 1,
}


def _range(field, value, low, high):
    if value < low:
        return (spec.NACK_LIMIT, field, value, low)
    if value > high:
        return (spec.NACK_LIMIT, field, value, high)
    return None


def shot_time_ms(cfg, needle_speed_um_s=spec.NEEDLE_SPEED_UM_S):
    # needle in and out, dispense, settle (shots settle briefly; points also take up
    # slack and suck back, well within the trigger-stuck margin)
    needle_ms = 2 * cfg[spec.CFG_DEPTH] * 1000 // needle_speed_um_s
    settle_ms = spec.SHOT_SETTLE_MS if cfg[spec.CFG_TECHNIQUE] == spec.TECHNIQUE_NAPPAGE else spec.POINT_SETTLE_MS
    return needle_ms + cfg[spec.CFG_VOLUME] * 1000 // cfg[spec.CFG_FLOW] + settle_ms + 2


def max_cadence_mhz(cfg, needle_speed_um_s=spec.NEEDLE_SPEED_UM_S):
    # a shot (in, dispense, out) must fit in 80 % of the shot period
    return 800000 // shot_time_ms(cfg, needle_speed_um_s)


def least_flow_nl_s(cfg, needle_speed_um_s=spec.NEEDLE_SPEED_UM_S):
    # the least plunger flow at which cfg's cadence is feasible (max_cadence_mhz >= cadence),
    # or 0 when no flow makes it so (needle travel and settling alone take too long)
    fixed_ms = shot_time_ms(cfg, needle_speed_um_s) - cfg[spec.CFG_VOLUME] * 1000 // cfg[spec.CFG_FLOW]
    budget_ms = 800000 // cfg[spec.CFG_CADENCE] - fixed_ms  # what the dispense may take
    if budget_ms < 0:
        return 0
    return cfg[spec.CFG_VOLUME] * 1000 // (budget_ms + 1) + 1


def least_dose_nl(pl_step):
    # a dose is within one microstep of its volume (the remainder is carried): 1 % needs 100 steps
    return max(spec.MIN_VOLUME_NL, spec.MIN_DOSE_STEPS * pl_step // 1000)


def check_prime(volume_nl):
    # PRIME's volume: at least what shows at the needle tip, at most MAX_PRIME_NL
    if volume_nl < spec.MIN_VOLUME_NL:
        return (spec.NACK_LIMIT, 1, volume_nl, spec.MIN_VOLUME_NL)
    if volume_nl > spec.MAX_PRIME_NL:
        return (spec.NACK_LIMIT, 1, volume_nl, spec.MAX_PRIME_NL)
    return None


def session_limit_nl(settings, cap_nl):
    # what a session may deliver in all: max_session_nl, or the session's own cap when lower (0: none)
    limit = settings[spec.SET_SESSION]
    return cap_nl if 0 < cap_nl < limit else limit


def check_session_cap(cap_nl, cap_in_force_nl):
    # CONFIGURE's session_cap_nl: at most MAX_SESSION_NL (beyond it means nothing); continuing a session
    # whose cap is cap_in_force_nl (0: none), never above it (0, no cap, would raise it)
    if cap_nl > spec.MAX_SESSION_NL:
        return (spec.NACK_LIMIT, F_SESSION_CAP, cap_nl, spec.MAX_SESSION_NL)
    if cap_in_force_nl and not 0 < cap_nl <= cap_in_force_nl:
        return (spec.NACK_LIMIT, F_SESSION_CAP, cap_nl, cap_in_force_nl)
    return None


def check_configure(cfg, shot_time_ms, settings, min_volume_nl, used_nl=0, cap_in_force_nl=0):
    # cfg: CONFIGURE values tuple in layout order; shot_time_ms(cfg) -> time one shot needs;
    # settings: the device's limits in force (spec.SETTINGS_TABLE order);
    # min_volume_nl(syringe) -> the least volume that syringe meters to 1 % (least_dose_nl);
    # used_nl, cap_in_force_nl: what the session this CONFIGURE continues has delivered already, and its
    # cap (0: none; a new session: both 0); session_limit_nl bounds the sum.
    technique, syringe, head, needle_um, depth_um, volume_nl, count, cadence_mhz, flow, vacuum, channel, session, cap_nl = cfg
    if technique not in _VOLUME_SETTING:
        return (spec.NACK_BAD_VALUE, F_TECHNIQUE, technique, 0)
    if syringe not in spec.SYRINGES:
        return (spec.NACK_BAD_VALUE, F_SYRINGE, syringe, 0)
    if session == 0:  # every journal record must name its session
        return (spec.NACK_BAD_VALUE, F_SESSION, session, 0)
    if head not in spec.HEADS:
        return (spec.NACK_BAD_VALUE, F_HEAD, head, 0)
    error = check_head(technique, head, needle_um) or check_vacuum(head, vacuum, settings)
    if error:
        return error
    max_depth = min(settings[spec.SET_DEPTH], needle_um - spec.NEEDLE_MARGIN_UM)
    max_volume = settings[_VOLUME_SETTING[technique]]
    if technique == spec.TECHNIQUE_TEST_DOSE:
        max_volume = min(max_volume, spec.MAX_TEST_DOSE_NL)
    # the per-point limits hold per needle (each needle makes its own papule); the plunger meters the
    # cycle's total, so that total must meter to 1 % and give every needle at least MIN_VOLUME_NL
    needles = spec.head_needles(head)
    error = (
        _range(F_NEEDLE_LENGTH, needle_um, spec.MIN_DEPTH_UM + spec.NEEDLE_MARGIN_UM, 65535)
        or _range(F_DEPTH, depth_um, spec.MIN_DEPTH_UM, max_depth)
        or _range(F_VOLUME, volume_nl, max(min_volume_nl(syringe), needles * spec.MIN_VOLUME_NL), needles * max_volume)
        or _range(F_COUNT, count, 1, _COUNT_CEILING[technique])
        or _range(F_FLOW, flow, spec.MIN_FLOW_NL_S, settings[spec.SET_FLOW])
        or check_session_cap(cap_nl, cap_in_force_nl)
    )
    if error:
        return error
    total = volume_nl * count
    limit = max(0, min(session_limit_nl(settings, cap_nl) - used_nl, spec.syringe_capacity_nl(syringe)))
    if total > limit:
        return (spec.NACK_LIMIT, F_COUNT, count, limit // volume_nl)
    if technique == spec.TECHNIQUE_NAPPAGE:
        error = _range(F_CADENCE, cadence_mhz, spec.MIN_CADENCE_MHZ, settings[spec.SET_CADENCE])
        if error:
            return error
        # a shot (in, dispense, out) must fit in 80 % of the shot period
        max_cadence = 800000 // shot_time_ms(cfg)
        if cadence_mhz > max_cadence:
            return (spec.NACK_INFEASIBLE, F_CADENCE, cadence_mhz, max_cadence)
    elif cadence_mhz != 0:
        return (spec.NACK_BAD_VALUE, F_CADENCE, cadence_mhz, 0)
    if not 1 <= channel <= spec.CHANNELS:
        return (spec.NACK_BAD_VALUE, F_CHANNEL, channel, spec.CHANNELS)
    return None


def check_head(technique, head, needle_um):
    # the program's needle length is the head table's (one source of truth: a program written for
    # another needle is refused), and a multi-needle head works cycle by cycle: no nappage
    length = spec.HEADS[head][3]
    if needle_um != length:
        return (spec.NACK_INFEASIBLE, F_NEEDLE_LENGTH, needle_um, length)
    if technique == spec.TECHNIQUE_NAPPAGE and spec.head_needles(head) > 1:
        return (spec.NACK_INFEASIBLE, F_HEAD, head, 1)
    return None


def check_vacuum(head, vacuum_kpa, settings):
    # a multi-needle head holds the skin by vacuum, within the device's limit; a single needle has a
    # contact switch and no vacuum
    if spec.head_needles(head) == 1:
        if vacuum_kpa:
            return (spec.NACK_INFEASIBLE, F_VACUUM, vacuum_kpa, 0)
        return None
    return _range(F_VACUUM, vacuum_kpa, spec.MIN_VACUUM_KPA, settings[spec.SET_VACUUM])


def per_needle_nl(volume_nl, head):
    # what each needle of the head gets of a cycle's volume (nominally: the model spreads it)
    return volume_nl // spec.head_needles(head)
