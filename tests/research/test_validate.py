"""`scalper research validate` on a small study of the session slices: JSON keys, folds, and the
sensitivity re-runs agreeing with the study (fees x1 = the chosen trial's own numbers)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("optuna", reason="optuna is the research extra: pip install '.[research]'")


@pytest.mark.slow  # a 3-trial sweep, 9 sensitivity backtests, 2 validations: ~20 s idle, 45 s loaded
def test_validate_json_and_text(session_slice: list[str], space_file: str, tmp_path: Path,
                                capsys: pytest.CaptureFixture[str]) -> None:
    from bot.__main__ import main

    study = str(tmp_path / "s.sqlite")
    assert main(["research", "sweep", "--space", space_file, "--study", study, "--trials", "3", "--sampler",
                 "random", "--seed", "5", "--min-trades", "1", "--json", *session_slice]) == 0
    trials = {r["number"]: r for r in json.loads(capsys.readouterr().out)["trials"]}
    # the files and config come from the study
    assert main(["research", "validate", "--study", study, "--folds", "3", "--groups", "4", "--pbo-blocks", "4",
                 "--json", "--save"]) == 0
    res = json.loads(capsys.readouterr().out)
    # --save: the report reads this very result from the study (no re-run)
    from bot.research.report import build_research_report

    rep = build_research_report(study)
    assert rep["validation"] == res and not rep["stale"]
    assert [e["fold"] for e in rep["fold_equity"]] == [0, 1]
    assert {"folds", "dsr", "pbo"} <= set(res)
    best = max(trials.values(), key=lambda r: (r["value"], -r["number"]))
    assert res["chosen"]["number"] == best["number"]
    kinds = [f["kind"] for f in res["folds"]]
    assert kinds.count("walk_forward") == 2 and kinds.count("cpcv") == 6  # C(4, 2)
    for f in res["folds"]:
        assert set(f["oos_blocks"]).isdisjoint(f["is_blocks"])
        assert f["chosen_is"]["trades"] + f["chosen_oos"]["trades"] <= best["metrics"]["trades"]
    assert res["dsr"]["n_trials"] == 3
    assert res["pbo"].get("combinations") == 6 or res["pbo"]["pbo"] is None
    sens = res["sensitivity"]
    assert [(s["kind"], s["value"]) for s in sens] == [("fees", m) for m in (0.5, 0.75, 1.0, 1.5, 2.0)] + [
        ("latency", a) for a in (10.0, 25.0, 50.0, 100.0)]
    # the same backtest on the same configuration: fees x1 reproduces the chosen trial exactly
    assert next(s for s in sens if s["kind"] == "fees" and s["value"] == 1.0)["metrics"] == best["metrics"]
    # text: the same statistics in plain words
    assert main(["research", "validate", "--study", study, "--folds", "3", "--groups", "4", "--pbo-blocks", "4",
                 "--no-sensitivity"]) == 0
    out = capsys.readouterr().out
    assert "chosen configuration: trial" in out and ("DSR " in out or "DSR:" in out) and "PBO" in out


def test_validate_without_a_study_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from bot.__main__ import main

    missing = tmp_path / "none.sqlite"
    assert main(["research", "validate", "--study", str(missing)]) == 2
    assert "no such study file" in capsys.readouterr().err and not missing.exists()
