"""Shot accuracy from a gravimetric run: per-shot error, the first shot after a pause, the trumpet
curve adapted to shots, and a normal tolerance interval per dose setting.

IEC 60601-2-24 (infusion pumps) judges flow accuracy with a "trumpet curve": over observation
windows of increasing length, the largest and smallest mean error of every window of that length
in the analysis period. A mesotherapy gun doses in shots, not a flow, so a window here is k
consecutive shots: its error is (sum weighed - sum programmed) / sum programmed over those shots.
k = 1 is the single shot; the curve narrows towards the mean error as k grows, and how fast it
narrows shows whether shot errors cancel (independent) or add up (a drift).
"""

from __future__ import annotations

import dataclasses
import math
import statistics

WINDOWS = (1, 2, 5, 10, 20, 50)  # shots per observation window (the trumpet's x axis)


@dataclasses.dataclass(frozen=True)
class Shot:
    programmed_nl: float
    measured_nl: float  # weighed: mass / density
    after_pause: bool = False  # the first shot after the gun rested (stopper relaxed, tip drawn back)
    device_nl: float | None = None  # what the device recorded for it

    @property
    def error_pct(self) -> float:
        return 100.0 * (self.measured_nl - self.programmed_nl) / self.programmed_nl


@dataclasses.dataclass(frozen=True)
class Window:
    k: int  # shots per window
    count: int  # windows of k consecutive shots in the run (n - k + 1)
    max_pct: float
    min_pct: float


def window_errors(shots: list[Shot], k: int) -> list[float]:
    """The error (%) of every window of k consecutive shots, in order (n - k + 1 of them)."""
    if not 1 <= k <= len(shots):
        raise ValueError(f"a window of {k} shots needs at least {k} shots, not {len(shots)}")
    measured = [0.0]
    programmed = [0.0]
    for s in shots:  # prefix sums: each window is a difference of two
        measured.append(measured[-1] + s.measured_nl)
        programmed.append(programmed[-1] + s.programmed_nl)
    return [100.0 * ((measured[j + k] - measured[j]) - (programmed[j + k] - programmed[j]))
            / (programmed[j + k] - programmed[j]) for j in range(len(shots) - k + 1)]


def trumpet(shots: list[Shot], windows: tuple[int, ...] = WINDOWS) -> list[Window]:
    """Largest and smallest window error for each window length the run is long enough for."""
    out = []
    for k in windows:
        if k <= len(shots):
            errors = window_errors(shots, k)
            out.append(Window(k, len(errors), max(errors), min(errors)))
    return out


def chi2_quantile(q: float, dof: int) -> float:
    """The q quantile of the chi-square distribution (Wilson & Hilferty 1931: chi2/dof is nearly
    normal after a cube root; within 0.1 % of tables for dof >= 10, ~1 % at dof 3)."""
    z = statistics.NormalDist().inv_cdf(q)
    h = 2.0 / (9.0 * dof)
    return dof * (1.0 - h + z * math.sqrt(h)) ** 3


def tolerance_factor(n: int, coverage: float = 0.95, confidence: float = 0.95) -> float:
    """k of the two-sided normal tolerance interval mean +- k * sd that holds `coverage` of the
    population with `confidence`, from n samples: Howe's approximation (Howe 1969, JASA 64:610-620;
    NIST/SEMATECH e-Handbook of Statistical Methods, 7.2.6.3):
    k = z_((1+p)/2) * sqrt((n-1) * (1 + 1/n) / chi2_(1-confidence, n-1))."""
    if n < 2:
        raise ValueError("a tolerance interval needs at least 2 shots")
    z = statistics.NormalDist().inv_cdf((1.0 + coverage) / 2.0)
    return z * math.sqrt((n - 1) * (1.0 + 1.0 / n) / chi2_quantile(1.0 - confidence, n - 1))


@dataclasses.dataclass(frozen=True)
class Tolerance:
    n: int
    mean_pct: float
    sd_pct: float
    k: float
    coverage: float
    confidence: float

    @property
    def low_pct(self) -> float:
        return self.mean_pct - self.k * self.sd_pct

    @property
    def high_pct(self) -> float:
        return self.mean_pct + self.k * self.sd_pct


def tolerance_interval(errors_pct: list[float], coverage: float = 0.95, confidence: float = 0.95) -> Tolerance:
    """The interval that holds `coverage` of shots' errors with `confidence`, if they are normal."""
    n = len(errors_pct)
    return Tolerance(n, statistics.fmean(errors_pct), statistics.stdev(errors_pct),
                     tolerance_factor(n, coverage, confidence), coverage, confidence)


@dataclasses.dataclass
class SettingResult:
    """One dose setting's run: its shots in order and what follows from them."""

    name: str  # e.g. "2 uL nappage, 6 Hz"
    shots: list[Shot]

    @property
    def errors(self) -> list[float]:
        return [s.error_pct for s in self.shots]

    @property
    def after_pause(self) -> list[Shot]:
        return [s for s in self.shots if s.after_pause]

    def trumpet(self) -> list[Window]:
        return trumpet(self.shots)

    def tolerance(self) -> Tolerance:
        return tolerance_interval(self.errors)

    def summary(self) -> dict:
        errors = self.errors
        paused = [s.error_pct for s in self.after_pause]
        rest = [s.error_pct for s in self.shots if not s.after_pause]
        return {
            "shots": len(errors),
            "mean_pct": statistics.fmean(errors),
            "sd_pct": statistics.stdev(errors) if len(errors) > 1 else 0.0,
            "max_abs_pct": max(abs(e) for e in errors),
            "after_pause_mean_pct": statistics.fmean(paused) if paused else None,
            "after_pause_n": len(paused),
            "others_mean_pct": statistics.fmean(rest) if rest else None,
        }
