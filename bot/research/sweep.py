"""The sweep: Optuna's ask/tell loop over a persistent SQLite study, trials run by a Backend.

`n_trials` is a floor on the study's finished (COMPLETE) trials, never a count of new ones: a study at
the same path is continued. Trials a killed run left RUNNING are marked FAIL and their parameters
queued again (`enqueue_trial`), so an interruption loses nothing but the time of those trials.
One driver per study at a time (SQLite; Ray or the pool do the parallel work).

Determinism: the random and grid samplers draw in the driver in `ask` order, so trial k gets the same
parameters whichever backend or completion order; the sampler is seeded with seed + the number of
trials already in the study, so a resumed study does not replay its first draws. TPE conditions on the
finished trials, so under parallel workers its proposals depend on completion order.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from typing import Any

from bot.errors import ConfigError
from bot.research.objective import objective_value
from bot.research.space import Param, distributions, grid_space

__all__ = ["STUDY_NAME", "open_study", "run_sweep", "trial_rows"]

STUDY_NAME = "scalper-research"


def _sampler(name: str, seed: int, space: list[Param]) -> Any:
    import optuna

    if name == "tpe":
        return optuna.samplers.TPESampler(seed=seed)
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if name == "grid":
        return optuna.samplers.GridSampler(grid_space(space), seed=seed)
    raise ConfigError(f"--sampler {name}: expected tpe, random or grid")


def open_study(path: str, sampler: str = "tpe", seed: int = 0, space: list[Param] | None = None,
               attrs: dict[str, Any] | None = None, create: bool = True) -> Any:
    """Open (or create) the study at `path`. A study made with another space/objective is refused."""
    import optuna

    optuna.logging.set_verbosity(logging.WARNING)
    if not create and not os.path.isfile(path):
        raise ConfigError(f"{path}: no such study file (run `scalper research sweep --study {path}` first)")
    url = f"sqlite:///{path}"
    storage = optuna.storages.RDBStorage(url)
    names = [s.study_name for s in optuna.study.get_all_study_summaries(storage)]
    if not create and STUDY_NAME not in names:
        raise ConfigError(f"{path}: no study here (run `scalper research sweep --study {path}` first)")
    existing = 0
    if STUDY_NAME in names:
        existing = len(optuna.load_study(study_name=STUDY_NAME, storage=storage).trials)
    study = optuna.create_study(storage=storage, study_name=STUDY_NAME, direction="maximize",
                                load_if_exists=True,
                                sampler=_sampler(sampler, seed + existing, space or []) if space else None)
    for k, v in (attrs or {}).items():
        old = study.user_attrs.get(k)
        if old is not None and old != v and k in ("space", "objective", "min_trades"):
            raise ConfigError(f"{path}: the study was made with another {k} ({old!r}); use a new --study PATH")
        if old is None:
            study.set_user_attr(k, v)
    return study


def _recover_stale(study: Any) -> int:
    """Trials left RUNNING by a killed driver: FAIL them and queue their parameters again."""
    from optuna.trial import TrialState

    stale = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
    for t in stale:
        study.tell(t.number, state=TrialState.FAIL, skip_if_finished=True)
        study.enqueue_trial(t.params, user_attrs={"retry_of": t.number})
    return len(stale)


def run_sweep(study: Any, space: list[Param], backend: Any, n_trials: int, objective: str, min_trades: int,
              on_done: Callable[[int, Any], None] | None = None, max_failures: int | None = None) -> dict[str, int]:
    """Ask/tell until the study holds >= n_trials COMPLETE trials. Returns counts (ran, failed, recovered)."""
    from optuna.trial import TrialState

    dists = distributions(space)
    recovered = _recover_stale(study)
    done = len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))
    inflight: dict[int, Any] = {}
    ran = failed = 0
    max_failures = n_trials if max_failures is None else max_failures
    try:
        while done + len(inflight) < n_trials or inflight:
            while len(inflight) < backend.workers and done + len(inflight) < n_trials:
                trial = study.ask(dists)
                inflight[trial.number] = trial
                backend.submit(trial.number, trial.params)
            number, res = backend.wait()
            trial = inflight.pop(number)
            if isinstance(res, BaseException):
                failed += 1
                trial.set_user_attr("error", f"{type(res).__name__}: {res}"[:500])
                study.tell(trial, state=TrialState.FAIL)
                if failed > max_failures:
                    raise RuntimeError(f"{failed} trials failed (last: {type(res).__name__}: {res}); stopping")
                continue
            trial.set_user_attr("metrics", res["metrics"])
            trial.set_user_attr("trades", res["trades"])
            trial.set_user_attr("seconds", res["seconds"])
            study.tell(trial, objective_value(res["metrics"], objective, min_trades))
            done += 1
            ran += 1
            if on_done is not None:
                on_done(done, trial)
    finally:
        backend.close()  # in-flight trials stay RUNNING in the study: the next run re-queues them
    return {"ran": ran, "failed": failed, "recovered": recovered}


def trial_rows(study: Any) -> list[dict[str, Any]]:
    """Finished trials as {number, params, value, metrics} (the --json format), by number."""
    from optuna.trial import TrialState

    out = []
    for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        out.append({"number": t.number, "params": dict(t.params), "value": t.value,
                    "metrics": t.user_attrs.get("metrics", {})})
    return sorted(out, key=lambda r: r["number"])
