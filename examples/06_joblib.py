"""Beyond the tutorial: joblib and scikit-learn on forklift, with forklift.joblib.

scikit-learn runs ``n_jobs=`` through joblib, whose default backend (loky) turns a
worker killed by the OOM killer or a crashing C extension into a
``TerminatedWorkerError`` for the whole search. ``import forklift.joblib`` registers a
"forklift" backend: the same code then runs on forklift's engine, with its failure
contract (``retries=`` runs a lost batch again, ``timeout=`` kills one that hangs,
no worker outlives the program).
"""

import os
import signal
import tempfile

import joblib
from sklearn.datasets import load_iris
from sklearn.model_selection import GridSearchCV, cross_val_score
from sklearn.tree import DecisionTreeClassifier

import forklift.joblib  # noqa: F401  registers the "forklift" backend


def crash_once(marker: str, x: int) -> int:
    """Kill its own worker the first time (as the OOM killer would), succeed when run again."""
    if x == 3 and not os.path.exists(marker):
        open(marker, "w").close()
        os.kill(os.getpid(), signal.SIGKILL)
    return x * x


def main() -> None:
    X, y = load_iris(return_X_y=True)
    model = DecisionTreeClassifier(random_state=0)
    with joblib.parallel_config(backend="forklift", n_jobs=2):
        search = GridSearchCV(model, {"max_depth": [1, 2, 3, None]}, cv=5, n_jobs=2).fit(X, y)
        print("best max_depth:", search.best_params_["max_depth"])
        scores = cross_val_score(model, X, y, cv=5, n_jobs=2)
        print("cross-validation accuracy:", round(scores.mean(), 3))
    with (
        tempfile.TemporaryDirectory() as tmp,
        joblib.parallel_config(backend="forklift", n_jobs=2, retries=1),
    ):
        marker = os.path.join(tmp, "crashed")
        squares = joblib.Parallel(batch_size=1)(joblib.delayed(crash_once)(marker, x) for x in range(6))
        print("a worker was killed and its batch run again:", os.path.exists(marker), squares)


if __name__ == "__main__":
    main()
