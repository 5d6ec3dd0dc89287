"""The sweep on tiny slices of the recorded sessions: resume, --trials as a floor, --json format, and the
same trials giving the same metrics on the local pool and on Ray (a local Ray on 127.0.0.1, skipped when
ray is not installed)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bot.research.space import load_space

optuna = pytest.importorskip("optuna", reason="optuna is the research extra: pip install '.[research]'")


def _sweep(files: list[str], space_file: str, study_path: str, n: int, backend: str = "local",
           workers: int = 1, seed: int = 7) -> list[dict]:
    from bot.research.config import base_config
    from bot.research.sweep import open_study, run_sweep, trial_rows
    from bot.research.workers import make_backend, pack_sessions

    space = load_space(space_file)
    study = open_study(study_path, "random", seed, space, {"objective": "net_expectancy_r", "min_trades": 1})
    run_sweep(study, space, make_backend(backend, pack_sessions(files), base_config(None), workers),
              n, "net_expectancy_r", 1)
    return trial_rows(study)


def test_interrupted_study_resumes_and_adds_trials(session_slice: list[str], space_file: str,
                                                   tmp_path: Path) -> None:
    from optuna.trial import TrialState

    from bot.research.sweep import STUDY_NAME

    path = str(tmp_path / "s.sqlite")
    first = _sweep(session_slice, space_file, path, 2)
    assert [r["number"] for r in first] == [0, 1]
    # a killed driver leaves its in-flight trial RUNNING in the study
    study = optuna.load_study(study_name=STUDY_NAME, storage=f"sqlite:///{path}")
    stale = study.ask({"signals.momentum.time_limit_s": optuna.distributions.IntDistribution(20, 90)})
    stale_params = dict(stale.params)
    second = _sweep(session_slice, space_file, path, 3)
    assert len(second) >= 3
    assert second[:2] == first  # continued, never restarted: the first trials are untouched
    study = optuna.load_study(study_name=STUDY_NAME, storage=f"sqlite:///{path}")
    t = study.trials
    assert t[stale.number].state == TrialState.FAIL
    retry = [x for x in t if x.user_attrs.get("retry_of") == stale.number]
    assert len(retry) == 1 and retry[0].state == TrialState.COMPLETE
    assert retry[0].params["signals.momentum.time_limit_s"] == stale_params["signals.momentum.time_limit_s"]
    # asking for fewer than the study holds runs nothing
    assert _sweep(session_slice, space_file, path, 2) == second


def test_cli_json_and_exports(session_slice: list[str], space_file: str, tmp_path: Path,
                              capsys: pytest.CaptureFixture[str]) -> None:
    from bot.__main__ import main

    path = str(tmp_path / "s.sqlite")
    csv_path, json_path = tmp_path / "t.csv", tmp_path / "t.json"
    rc = main(["research", "sweep", "--space", space_file, "--study", path, "--trials", "2", "--sampler",
               "random", "--seed", "3", "--min-trades", "1", "--json", "--export", str(csv_path),
               "--export", str(json_path), *session_slice])
    assert rc == 0
    out = json.loads(capsys.readouterr().out)
    assert set(out) == {"trials", "best"} and len(out["trials"]) == 2
    for r in out["trials"]:
        assert set(r) == {"number", "params", "value", "metrics"}
        assert set(r["params"]) == {"signals.momentum.time_limit_s", "signals.momentum.min_stop_bps"}
        assert 20 <= r["params"]["signals.momentum.time_limit_s"] <= 90
        m = r["metrics"]
        assert m["trades"] >= 0 and "net_expectancy_r" in m
        # the value is the objective, or the stated penalty below --min-trades
        assert r["value"] == (m["net_expectancy_r"] if m["trades"] >= 1 else -1000.0 + m["trades"])
    assert out["best"]["value"] == max(r["value"] for r in out["trials"])
    assert json.loads(json_path.read_text()) == out["trials"]
    lines = csv_path.read_text().splitlines()
    assert len(lines) == 3 and lines[0].startswith("number,value,signals.momentum.time_limit_s")


@pytest.mark.slow  # Ray's start-up: ~10 s idle, 25-60 s on a loaded 2-core machine
def test_same_trials_same_metrics_local_and_ray(session_slice: list[str], space_file: str,
                                               tmp_path: Path) -> None:
    ray = pytest.importorskip("ray", reason="ray is an optional extra: pip install '.[ray]'")
    local = _sweep(session_slice, space_file, str(tmp_path / "local.sqlite"), 3, "local", 2)
    ray.init(address="local", include_dashboard=False, num_cpus=2, log_to_driver=False,
             _node_ip_address="127.0.0.1")
    try:
        on_ray = _sweep(session_slice, space_file, str(tmp_path / "ray.sqlite"), 3, "ray", 2)
    finally:
        ray.shutdown()
    assert [r["params"] for r in on_ray] == [r["params"] for r in local]
    assert on_ray == local  # every metric, every value
    assert any(r["metrics"]["trades"] > 0 for r in local)  # real trades were compared, not empty runs


@pytest.mark.slow  # a real process: ~15 s idle, up to 75 s on a loaded machine
def test_killed_driver_resumes(session_slice: list[str], space_file: str, tmp_path: Path) -> None:
    """A real process killed (SIGKILL) mid-sweep: the next run continues the study to --trials."""
    import os
    import signal
    import subprocess
    import sys
    import time

    from optuna.trial import TrialState

    from bot.research.sweep import STUDY_NAME

    path = str(tmp_path / "s.sqlite")
    cmd = [sys.executable, "-m", "bot", "research", "sweep", "--space", space_file, "--study", path,
           "--sampler", "random", "--seed", "2", "--min-trades", "1", *session_slice]
    err = tmp_path / "driver.err"  # what the killed driver said, for a failure's message
    proc = subprocess.Popen([*cmd, "--trials", "50"], stdout=subprocess.DEVNULL, stderr=err.open("wb"),
                            start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        done = 0
        while time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.5)
            if os.path.exists(path):
                try:
                    st = optuna.load_study(study_name=STUDY_NAME, storage=f"sqlite:///{path}")
                    done = len(st.get_trials(states=(TrialState.COMPLETE,)))
                except Exception:  # the study is still being created
                    done = 0
                if done >= 1:
                    break
        assert done >= 1, (f"no trial finished within 120 s (driver exit {proc.poll()}): "
                           f"{err.read_text(errors='replace')[-2000:]}")
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)  # the driver and its pool, at once
        proc.wait(timeout=30)
    st = optuna.load_study(study_name=STUDY_NAME, storage=f"sqlite:///{path}")
    before = {t.number: t.value for t in st.get_trials(states=(TrialState.COMPLETE,))}
    target = len(before) + 1
    out = subprocess.run([*cmd, "--trials", str(target), "--json"], capture_output=True, text=True, timeout=180)
    assert out.returncode == 0, out.stderr[-2000:]
    rows = json.loads(out.stdout)["trials"]
    assert len(rows) >= target
    assert {r["number"]: r["value"] for r in rows if r["number"] in before} == before  # kept, not restarted
