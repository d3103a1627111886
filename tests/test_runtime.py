"""The process settings the command line starts with."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

PROBE = (
    "from caduceus_cli.runtime import tune_process; tune_process(); import os, torch; "
    "print(os.environ['OMP_WAIT_POLICY'])"
)


@pytest.mark.parametrize(("given", "expected"), [(None, "PASSIVE"), ("ACTIVE", "ACTIVE")])
def test_openmp_threads_wait_passively_unless_the_user_says_otherwise(given, expected):
    # a fresh process: the setting only counts before torch is imported
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    if given is not None:
        env["OMP_WAIT_POLICY"] = given
    result = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, check=True)
    assert result.stdout.strip() == expected
