"""Steps and their verdicts: each a name, pass/fail, the deviation in words, and how long it took."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = ["Deviation", "Report", "Step"]


class Deviation(Exception):
    """The venue answered, but not as the bot relies on: the message says how, in words."""


@dataclass(slots=True)
class Step:
    name: str
    passed: bool
    detail: str
    ms: float


@dataclass(slots=True)
class Report:
    venue: str
    environment: str
    steps: list[Step] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return bool(self.steps) and all(s.passed for s in self.steps)

    async def step(self, name: str, fn: Callable[[], Awaitable[str]]) -> bool:
        """Run one step: its return value is the pass detail; Deviation (or any error) fails it."""
        t0 = time.perf_counter()
        try:
            detail, ok = await fn(), True
        except Deviation as e:
            detail, ok = str(e), False
        except Exception as e:  # a step that could not run is a failed step, named by its error
            detail, ok = f"{type(e).__name__}: {e}"[:500], False
        self.steps.append(Step(name, ok, detail, round((time.perf_counter() - t0) * 1000.0, 1)))
        return ok

    def skip(self, name: str, why: str) -> None:
        self.steps.append(Step(name, False, f"not run: {why}", 0.0))

    def as_json(self) -> dict[str, Any]:
        return {"venue": self.venue, "environment": self.environment, "passed": self.passed,
                "steps": [asdict(s) for s in self.steps]}

    def as_text(self) -> str:
        lines = [f"conformance {self.venue} ({self.environment}): {'PASS' if self.passed else 'FAIL'}"]
        for s in self.steps:
            lines.append(f"  {'ok  ' if s.passed else 'FAIL'} {s.name} ({s.ms:.0f} ms): {s.detail}")
        return "\n".join(lines)
