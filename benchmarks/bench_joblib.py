"""Figure (o): joblib on forklift's backend against joblib's default, loky, in one run.

joblib's usual workloads, each through ``joblib.Parallel(n_jobs=2)`` under
``parallel_config(backend=...)``, the backends round-robin, warm (each backend runs the
workload once before it is timed, so worker start-up is not in the figure: both keep
their workers between calls):

* **tiny**: 100,000 calls of ``math.sqrt`` (joblib's auto-batching at work: many small batches);
* **small**: 2,000 calls of ~0.5 ms of pure-Python work;
* **cpu**: 200 calls of ~10 ms;
* **grid search**: scikit-learn's ``GridSearchCV(n_jobs=2)``, a decision tree on the digits
  data, 5-fold, 24 parameter sets (120 fits), as scikit-learn users run joblib.

The goal (issue 18): forklift no slower than loky on joblib's usual workload.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # workers import _tasks by name

import math
import time
from typing import Any

import joblib

import _tasks
import forklift.joblib  # noqa: F401  registers the "forklift" backend
from _common import (
    Goal,
    base_parser,
    fmt,
    fmt_x,
    markdown_table,
    median,
    ratio,
    render_report,
    round_robin,
    select,
    write_json,
)

BACKENDS = ("loky", "forklift")
WORKLOADS = ("tiny", "small", "cpu", "grid search")


def _grid_search() -> Any:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import GridSearchCV
    from sklearn.tree import DecisionTreeClassifier

    X, y = load_digits(return_X_y=True)
    grid = {"max_depth": [4, 8, 12, None], "min_samples_leaf": [1, 2, 4], "criterion": ["gini", "entropy"]}
    search = GridSearchCV(DecisionTreeClassifier(random_state=0), grid, cv=5, n_jobs=2)
    search.fit(X, y)
    return search.best_params_


def workload(name: str) -> Any:
    if name == "tiny":
        return sum(joblib.Parallel()(joblib.delayed(math.sqrt)(i) for i in range(100_000)))
    if name == "small":
        return sum(joblib.Parallel()(joblib.delayed(_tasks.burn)(5_000) for _ in range(2_000)))
    if name == "cpu":
        return sum(joblib.Parallel()(joblib.delayed(_tasks.burn)(100_000) for _ in range(200)))
    return _grid_search()


def main() -> None:
    parser = base_parser(__doc__.split("\n\n")[0], epilog=__doc__.split("\n\n", 1)[1])
    parser.add_argument(
        "--reps", type=int, help="timed runs per backend and workload (default 5; 2 with --quick)"
    )
    args = parser.parse_args()
    names = select(WORKLOADS, args.only)
    if args.list:
        print("\n".join(WORKLOADS))
        return
    reps = args.reps or (2 if args.quick else 5)
    rows, goals, payload = [], [], {}
    for name in names:
        expected: dict[str, Any] = {}

        def run(backend: str, name: str = name, expected: dict[str, Any] = expected) -> dict[str, Any]:
            with joblib.parallel_config(backend=backend, n_jobs=2):
                if backend not in expected:
                    expected[backend] = workload(name)  # warm: the workers start here, untimed
                start = time.perf_counter()
                value = workload(name)
                return {"seconds": time.perf_counter() - start, "value": value}

        runs = round_robin(list(BACKENDS), lambda _: reps, run, lambda m: f"{m['seconds']:.3f} s")
        med = {b: median([m["seconds"] for m in runs[b]["samples"]]) for b in BACKENDS}
        values = {repr(m["value"]) for b in BACKENDS for m in runs[b]["samples"]}
        same = len(values) == 1
        r = ratio(med["forklift"], med["loky"])
        rows.append(
            (
                name,
                fmt(med["loky"]),
                f"**{fmt(med['forklift'])}**",
                f"**{fmt_x(r)}**",
                "yes" if same else "NO",
            )
        )
        goals.append(Goal(f"{name}: forklift no slower than loky", fmt_x(r), None if r is None else r <= 1.0))
        payload[name] = med
    table = markdown_table(
        ("workload, n_jobs=2", "loky s", "forklift s", "forklift time vs loky", "same results"),
        rows,
        right=(1, 2, 3),
    )
    notes = [
        f"Median of {reps} warm runs per backend, round-robin; each backend ran the workload once before (untimed).",
        "joblib batches tasks itself (auto batch size); forklift's backend runs each batch as one task of a forklift.Executor.",
    ]
    print(render_report("(o) joblib: forklift's backend against loky", table, notes, goals))
    write_json(args.json, "joblib", args, payload)


if __name__ == "__main__":
    main()
