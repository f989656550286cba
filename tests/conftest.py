"""Shared test configuration: hypothesis profiles.

HYPOTHESIS_PROFILE=ci (default in `host/run.sh test`) keeps the suite to a few minutes;
HYPOTHESIS_PROFILE=long runs many more generated cases (on demand).
"""

import os

from hypothesis import HealthCheck, settings

settings.register_profile(
    "ci", max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True
)
settings.register_profile("dev", max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile(
    "long", max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large]
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))
