"""The shot-accuracy maths (mesoinject.accuracy) against values worked by hand and published tables."""

from __future__ import annotations

import pytest

from mesoinject.accuracy import (SettingResult, Shot, chi2_quantile, tolerance_factor, tolerance_interval, trumpet,
                                 window_errors)

# 10 nL programmed each; weighed 10, 11, 9, 12: errors 0, +10, -10, +20 %
SHOTS = [Shot(10, 10), Shot(10, 11), Shot(10, 9, after_pause=True), Shot(10, 12)]


@pytest.mark.req("SR-143")
def test_window_errors_by_hand():
    assert window_errors(SHOTS, 1) == pytest.approx([0, 10, -10, 20])
    # pairs: (10+11-20)/20 = 5 %, (11+9-20)/20 = 0 %, (9+12-20)/20 = 5 %
    assert window_errors(SHOTS, 2) == pytest.approx([5, 0, 5])
    # threes: 30 -> 0 %, 32 -> 6.667 %
    assert window_errors(SHOTS, 3) == pytest.approx([0, 20 / 3])
    assert window_errors(SHOTS, 4) == pytest.approx([5])  # 42 of 40


@pytest.mark.req("SR-143")
def test_window_errors_weigh_by_programmed_volume():
    # a window's error is its total's, not the mean of its shots' errors: 2 nL +50 % and 20 nL 0 % -> 1/22
    shots = [Shot(2, 3), Shot(20, 20)]
    assert window_errors(shots, 2) == pytest.approx([100 / 22])


@pytest.mark.req("SR-143")
def test_trumpet_keeps_the_windows_the_run_is_long_enough_for():
    curve = trumpet(SHOTS, (1, 2, 5))
    assert [(w.k, w.count, w.max_pct, w.min_pct) for w in curve] == [
        (1, 4, pytest.approx(20), pytest.approx(-10)), (2, 3, pytest.approx(5), pytest.approx(0))]
    with pytest.raises(ValueError, match="at least 5 shots"):
        window_errors(SHOTS, 5)


@pytest.mark.req("SR-143")
def test_chi2_quantile_against_tables():
    assert chi2_quantile(0.01, 42) == pytest.approx(23.650, rel=2e-3)  # NIST e-Handbook 7.2.6.3's example
    assert chi2_quantile(0.05, 29) == pytest.approx(17.708, rel=2e-3)
    assert chi2_quantile(0.95, 10) == pytest.approx(18.307, rel=2e-3)


@pytest.mark.req("SR-143")
def test_tolerance_factor_against_published_values():
    assert tolerance_factor(43, 0.90, 0.99) == pytest.approx(2.2095, rel=5e-3)  # NIST 7.2.6.3 (Howe)
    # two-sided 95 % / 95 % factors (Odeh & Owen's exact tables): Howe's is within 0.5 %
    for n, k in ((10, 3.379), (20, 2.752), (30, 2.549), (50, 2.379)):
        assert tolerance_factor(n) == pytest.approx(k, rel=5e-3)
    assert tolerance_factor(1000) == pytest.approx(2.0, rel=0.03)  # towards z(0.975) = 1.96 as n grows


@pytest.mark.req("SR-143")
def test_tolerance_interval_by_hand():
    ti = tolerance_interval([0, 10, -10, 20])
    # mean 5, sample sd sqrt((25+25+225+225)/3) = 12.910
    assert (ti.mean_pct, ti.sd_pct) == (pytest.approx(5), pytest.approx(12.9099, rel=1e-4))
    assert ti.low_pct == pytest.approx(5 - ti.k * 12.9099, rel=1e-4) and ti.k == pytest.approx(tolerance_factor(4))


@pytest.mark.req("SR-143")
def test_first_shot_after_a_pause_is_reported_apart():
    s = SettingResult("test", SHOTS).summary()
    assert (s["after_pause_n"], s["after_pause_mean_pct"]) == (1, pytest.approx(-10))
    assert s["others_mean_pct"] == pytest.approx(10)  # (0 + 10 + 20) / 3
    assert s["max_abs_pct"] == pytest.approx(20)


@pytest.mark.req("SR-143")
def test_report_is_one_self_contained_page_named_by_the_build():
    import re

    from mesoinject.exports import accuracy as report

    shots = [Shot(2000, 2000 + d, after_pause=i % 10 == 0) for i, d in enumerate([5, -3, 8, 0, -6, 2, 4, -1, 3, 7, -2, 1])]
    html = report.render([SettingResult("2 uL nappage", shots), SettingResult("30 uL point", SHOTS)],
                         build="114e572d", firmware="0.2.0", board="sim", serial="SIM-0001", rig="test rig")
    assert re.search(r"<title>Shot accuracy, firmware 0\.2\.0 build 114e572d</title>", html)
    assert html.count("<svg") == 4  # per-shot errors and the trumpet, per setting
    # nothing fetched: no script, no link, no src=, no URL but the SVG namespace
    assert not re.search(r"<script|<link|src=|url\(", html)
    assert set(re.findall(r"https?://[^\s\"']+", html)) == {"http://www.w3.org/2000/svg"}
    # the trumpet's rows: 12 shots -> k = 1, 2, 5, 10 (not 20, 50); 4 shots -> k = 1, 2
    assert html.count("<tr><td class=\"n\">") == 4 + 2
