"""`scalper research report STUDY --html OUT` on a small synthetic study: 24 trials whose net R per trade
depends on parameter x only (y is noise), validated by the real bot.research.validate functions and saved
in the study the way `research validate --save` does; the page is checked as text and rendered in headless
Chromium (skipped when there is none)."""

from __future__ import annotations

import random
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("optuna", reason="optuna is the research extra: pip install '.[research]'")

S = 1_763_700_000 * 10**9
SPANS = [(S, S + 600 * 10**9), (S + 86_400 * 10**9, S + 86_400 * 10**9 + 600 * 10**9)]  # two 10-min sessions
N_TRIALS = 24


def _trades(seed: int, x: float) -> list[list[float]]:
    rng = random.Random(seed)
    out = []
    for i in range(40):
        span = SPANS[i % 2]
        entry = span[0] + rng.randrange(0, span[1] - span[0] - 30 * 10**9)
        out.append([entry, entry + 20 * 10**9, round(rng.gauss(2 * x - 1, 0.5), 6)])
    return out


def _study(path: Path) -> dict[str, Any]:
    import optuna
    from optuna.distributions import FloatDistribution, IntDistribution

    from bot.research.folds import Timeline
    from bot.research.report import save_validation
    from bot.research.sweep import STUDY_NAME
    from bot.research.validate import validate_trials
    from bot.research.validate_cli import _finite, _study_trials

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(storage=f"sqlite:///{path}", study_name=STUDY_NAME, direction="maximize")
    study.set_user_attr("objective", "net_expectancy_r")
    study.set_user_attr("files", ["synthetic"])
    rng = random.Random(7)
    dists = {"x": FloatDistribution(0.0, 1.0), "y": IntDistribution(1, 5)}
    for i in range(N_TRIALS):
        x, y = rng.random(), rng.randint(1, 5)
        tr = _trades(100 + i, x)
        r = [t[2] for t in tr]
        metrics = {"trades": len(r), "net_expectancy_r": sum(r) / len(r), "win_rate": sum(v > 0 for v in r) / len(r),
                   "net_pnl_quote": sum(r) * 5}
        study.add_trial(optuna.trial.create_trial(params={"x": x, "y": y}, distributions=dists,
                                                  value=metrics["net_expectancy_r"],
                                                  user_attrs={"trades": tr, "metrics": metrics}))
    trials = _study_trials(study)
    chosen = max(trials, key=lambda n: (trials[n]["value"], -n))
    tl = Timeline.of(SPANS)
    res = validate_trials({n: t["trades"] for n, t in trials.items()}, chosen, tl, folds=4, groups=4,
                          pbo_blocks=4)
    res["chosen"] = {"number": chosen, "params": trials[chosen]["params"], "value": trials[chosen]["value"]}
    res["timeline_ns"] = [list(s) for s in tl.spans]
    # sensitivity rows as validate_cli writes them (here from the chosen trial's metrics, fees eating R)
    base = trials[chosen]["value"]
    res["sensitivity"] = [{"kind": "fees", "value": m, "metrics": {"trades": 40, "net_expectancy_r": base - 0.2 * m,
                                                                    "win_rate": 0.5, "net_pnl_quote": 1.0}}
                          for m in (0.5, 0.75, 1.0, 1.5, 2.0)] + [
        {"kind": "latency", "value": a, "metrics": {"trades": 40, "net_expectancy_r": base - 0.2 - a / 100,
                                                    "win_rate": 0.5, "net_pnl_quote": 1.0}}
        for a in (10.0, 25.0, 50.0, 100.0)]
    res = _finite(res)
    save_validation(study, res)
    return res


def _chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "headless_shell"):
        if shutil.which(name):
            return shutil.which(name)
    return None


def _headless(browser: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", *args],
                          capture_output=True, text=True, timeout=60)


def test_report_page_and_headless_chromium(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from bot.__main__ import main

    study = tmp_path / "s.sqlite"
    res = _study(study)
    out = tmp_path / "research.html"
    assert main(["research", "report", str(study), "--html", str(out)]) == 0
    assert f"{N_TRIALS} trials" in capsys.readouterr().out
    page = out.read_text()
    assert "<script src" not in page and "http://" not in page and "https://" not in page  # nothing fetched
    # DSR and PBO in plain words, with the saved numbers
    d, p = res["dsr"], res["pbo"]
    assert d["dsr"] is not None and p["pbo"] is not None
    assert (f"the best of {N_TRIALS} trials is expected to be luck with probability {1 - d['dsr']:.3f}"
            in page)
    assert f"Probability of backtest overfitting {p['pbo']:.3f}: in {p['pbo']:.0%} of the {p['combinations']} ways" \
        in page
    # importance: x drives the value, y is noise
    imp = dict(re.findall(r'<rect class="bar"[^>]*><title>([xy]): ([0-9.]+)</title>', page))
    assert set(imp) == {"x", "y"} and float(imp["x"]) > float(imp["y"])
    browser = _chromium()
    if browser is None:
        pytest.skip("no Chromium binary on this machine (`make test` installs it where it is root with apt)")
    dom = _headless(browser, "--virtual-time-budget=2000", "--window-size=1400,900", "--dump-dom", out.as_uri())
    assert dom.returncode == 0, dom.stderr[-2000:]
    laid = dict(re.findall(r'<svg id="([^"]+)"[^>]*data-bbox="([^"]+)"', dom.stdout))
    marks = {k: int(v) for k, v in re.findall(r'<svg id="([^"]+)"[^>]*data-marks="(\d+)"', dom.stdout)}
    wf = [f for f in res["folds"] if f["kind"] == "walk_forward"]
    expected = ["importance", "is-oos", "sens-fees", "sens-latency"] + [f"equity-fold-{f['fold']}" for f in wf]
    assert len(wf) == 3 and set(expected) <= set(laid), (expected, sorted(laid))
    for cid in expected:
        w, h = (float(v) for v in laid[cid].split("x"))
        assert w > 100 and h > 50, (cid, laid[cid])
        assert marks[cid] >= 1, (cid, marks)
    assert marks["importance"] == 2 and marks["sens-fees"] == 5 and marks["sens-latency"] == 5
    both = [f for f in res["folds"] if f["is"] and f["oos"] and f["is"]["mean_r"] is not None
            and f["oos"]["mean_r"] is not None]
    assert marks["is-oos"] == len(both) > 0
    assert 'id="dsr-words"' in dom.stdout and 'id="pbo-words"' in dom.stdout
    width = int(re.search(r'data-scroll-width="(\d+)"', dom.stdout).group(1))
    assert width <= 1400, width


def test_report_without_saved_validation_says_so(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import optuna

    from bot.__main__ import main
    from bot.research.sweep import STUDY_NAME

    path = tmp_path / "s.sqlite"
    study = optuna.create_study(storage=f"sqlite:///{path}", study_name=STUDY_NAME, direction="maximize")
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=3)
    out = tmp_path / "r.html"
    assert main(["research", "report", str(path), "--html", str(out)]) == 0
    assert "no saved validation" in capsys.readouterr().out
    assert 'id="no-validation"' in out.read_text() and "--save" in out.read_text()
    # a missing study: one line, exit 2, nothing created
    assert main(["research", "report", str(tmp_path / "none.sqlite"), "--html", str(out)]) == 2
    assert "no such study file" in capsys.readouterr().err
