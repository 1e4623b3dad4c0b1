"""One accuracy budget per artifact, used alike by quantize (its fallback and verdict), verify (the verdict on
every runtime) and the report's selection, so that no two of them can disagree about the same artifact.

INT8 artifacts carry the quantize budget (`quantize.int8_budget_top1` / `int8_budget_cosine` /
`int8_budget_decision`, the agreement of thresholded decisions on a probability output); FP32 and FP16
artifacts have no budget beyond their verify tolerances. A miss is a failed verdict (exit 1, report status
"budget missed") unless the user accepts it with `quantize.accept_budget_miss`; an artifact that misses its
budget is never selected as "within budget", accepted or not.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from infercc.config import Precision


@dataclass(frozen=True)
class Budget:
    top1: float | None = None  # minimum top-1 agreement with the reference (classifier outputs only)
    cosine: float | None = None  # minimum cosine to the reference
    accept_miss: bool = False
    decision: Any = None  # config.DecisionBudget: agreement of p > threshold on one probability output

    @property
    def empty(self) -> bool:
        return self.top1 is None and self.cosine is None and self.decision is None

    def misses(
        self,
        top1: float | None,
        cosine: float | None,
        non_finite: int = 0,
        decision_agreement: float | None = None,
    ) -> list[str]:
        """What misses the budget in these figures (empty when it is met). NaN/Inf always misses; a top-1
        figure that does not exist (no classifier output) is not judged; a decision budget without its figure
        (the output was not measured) misses."""
        found = [f"{non_finite} NaN/Inf values"] if non_finite else []
        if self.decision is not None:
            rule = self.decision
            if decision_agreement is None:
                found.append(f"no decision agreement measured on output {rule.output}")
            elif not decision_agreement >= rule.min_agreement:
                found.append(
                    f"decision agreement ({rule.output} > {rule.threshold:g}) {decision_agreement:.2%} < "
                    f"{rule.min_agreement:.2%}"
                )
        if self.top1 is not None and top1 is not None and not top1 >= self.top1:
            found.append(f"top-1 agreement {top1:.2%} < {self.top1:.2%}")
        if self.cosine is not None and cosine is not None and not cosine >= self.cosine:
            found.append(f"cosine {cosine:.5f} < {self.cosine}")
        if self.cosine is not None and cosine is None and not non_finite:
            found.append(f"no cosine to compare with {self.cosine}")
        return found

    def to_dict(self) -> dict[str, Any]:
        decision = self.decision.model_dump(mode="json") if self.decision is not None else None
        return {
            "top1": self.top1,
            "cosine": self.cosine,
            "decision": decision,
            "accept_miss": self.accept_miss,
        }


def budget_for(config: Any, precision: Precision | str | None) -> Budget:
    """The budget of an artifact of this precision under this config."""
    q = config.quantize
    if precision in (Precision.int8, "int8"):
        return Budget(q.int8_budget_top1, q.int8_budget_cosine, q.accept_budget_miss, q.int8_budget_decision)
    return Budget(accept_miss=q.accept_budget_miss)


def miss_message(artifact: str, misses: list[str], runtime: str | None = None) -> str:
    where = f"{artifact} on {runtime}" if runtime else artifact
    return f"{where} misses its accuracy budget: {'; '.join(misses)}"
