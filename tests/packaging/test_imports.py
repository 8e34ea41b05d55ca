"""Importing assay's packages pulls in no optional heavy dependency (GPU boxes may lack them)."""

import subprocess
import sys


def test_packages_import_without_ray_vllm_or_trl():
    code = (
        "import sys, assay, envs, rewards, trainers, rewards.math\n"
        "import trainers.engines.pool, trainers.engines.vllm, trainers.episodes, trainers.collect\n"
        "loaded = {'ray', 'vllm', 'trl'} & set(sys.modules)\n"
        "assert not loaded, loaded\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
