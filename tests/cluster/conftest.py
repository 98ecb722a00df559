"""The cluster tests need the redis client (a dependency of the package since
cluster mode): in an environment installed before it came, they are not
collected, and a line says how to get them back."""

import importlib.util
import warnings

collect_ignore_glob: list[str] = []

if importlib.util.find_spec("redis") is None:  # pragma: no cover
    warnings.warn("tests/cluster not collected: redis is not installed; "
                  "run pip install -e '.[test]'")
    collect_ignore_glob = ["test_*.py"]
