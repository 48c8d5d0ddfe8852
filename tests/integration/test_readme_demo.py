"""The README's first command, as a new user runs it: the pipeline comes up and within a minute
state visibly changes, actions appear and /metrics carries non-zero business metrics."""
from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

from tests.integration.harness import Deployment, free_port

ROOT = Path(__file__).resolve().parents[2]


def test_demo_brings_the_pipeline_up_and_state_changes_within_a_minute(kafka_bootstrap, tmp_path):
    isolated = Deployment(kafka_bootstrap, tmp_path)  # own app id and topic names on the shared broker
    env = {k: v for k, v in os.environ.items() if not k.startswith("REMARKET_")}
    env.update({k: v for k, v in isolated.env().items() if k.startswith(("REMARKET_TOPIC_", "REMARKET_APP_ID",
                                                                         "REMARKET_KAFKA_BOOTSTRAP"))})
    env.update({"REMARKET_DEMO_SECONDS": "60", "REMARKET_WEB_PORT": str(free_port()),
                "REMARKET_DATA_DIR": str(tmp_path / "state"), "REMARKET_DEMO_CUSTOMERS": "150"})
    done = subprocess.run(["bash", "scripts/demo.sh"], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=300)
    out = done.stdout
    assert done.returncode == 0, out[-3000:] + done.stderr[-3000:]
    assert "==> worker ready" in out
    lines = [line for line in out.splitlines() if re.match(r"\[\s*\d+s\]", line)]
    assert len(lines) >= 8, out[-3000:]
    applied = [int(m.group(1)) for line in lines if (m := re.search(r"events applied=(\d+)", line))]
    assert applied and applied[-1] > applied[0] > 0, "events keep being applied"
    assert re.search(r"action [a-z_]+=[1-9]", lines[-1]), "actions were emitted"
    assert re.search(r"stage transitions=[1-9]", lines[-1])
    profiles = re.findall(r"stage=(\w+)", out)
    assert profiles, "watched customers show a profile"
    assert "==> stopping the demo" in out
