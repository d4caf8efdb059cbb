import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import os  # noqa: E402

import pytest  # noqa: E402

TESTS = Path(__file__).resolve().parent


@pytest.fixture(scope="session")
def ray_session():
    """One local Ray (2 CPUs) for every test that needs it; its workers import the package
    and the test modules (``tests`` and the repository root on their path)."""
    import ray

    path = os.pathsep.join([str(TESTS), str(TESTS.parent), os.environ.get("PYTHONPATH", "")])
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="WARNING",
             runtime_env={"env_vars": {"PYTHONPATH": path}})
    yield ray
    ray.shutdown()
