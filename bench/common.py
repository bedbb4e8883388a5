"""Small helpers shared by the benchmarks: percentiles and a target line."""

from __future__ import annotations

import statistics


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def median(samples: list[float]) -> float:
    return statistics.median(samples) if samples else float("nan")


def report(label: str, value: float, target: float, unit: str, *, lower_is_better: bool = True) -> bool:
    ok = value <= target if lower_is_better else value >= target
    ratio = value / target if target else float("nan")
    verdict = "OK " if ok else "MISS"
    print(f"  [{verdict}] {label:<58} {value:10.2f} {unit:<6} target {'<=' if lower_is_better else '>='} "
          f"{target:g} {unit}  (ratio {ratio:.2f})")
    return ok


def report_ratio(label: str, value: float, floor: float, limit: float, *, higher_is_better: bool = False) -> bool:
    """A measure against its floor from the same run: the ratio is what the target bounds."""
    ratio = value / floor if floor else float("nan")
    ok = ratio >= limit if higher_is_better else ratio <= limit
    print(f"  [{'OK ' if ok else 'MISS'}] {label:<58} {value:10.2f} vs {floor:10.2f}  ratio {ratio:.2f} "
          f"target {'>=' if higher_is_better else '<='} {limit:g}")
    return ok


def reported(*lines: tuple[str, float, float], width: int = 82) -> None:
    """Measures against their floors, printed with their ratios and no target."""
    for label, value, floor in lines:
        print(f"  {label:<{width}} {value:10.2f} vs {floor:10.2f}  ratio {value / floor:.2f}")
