"""Today's baseline: one relay host (SQLite registry, disk store) in a namespace, clients
in another, racing on the same keys; the checker finds nothing wrong."""

from __future__ import annotations

from pathlib import Path

import pytest
from multihost_helpers import make_run
from netns import Network, relay_config, start_relay_in


@pytest.mark.slow
def test_one_relay_host_keeps_every_promise_to_remote_clients(
    network: Network, tmp_path: Path
) -> None:
    relay_host = network.add_host("relay")
    clients = network.add_host("clients")
    relay = start_relay_in(relay_host, tmp_path / "relay", relay_config())
    run = make_run(clients, {"relay": relay}, clients_per_host=4, operations_per_client=40)
    run.create_bucket()
    run.workload()
    report = run.check(log_from="relay")
    figures = "\n".join(report.lines())
    print(figures)
    assert report.violations == [], figures
    # The workload did what it claims: writes of every kind acknowledged, races refused.
    assert all(report.acknowledged[kind] > 0 for kind in ("put", "delete", "get", "list"))
    assert report.acknowledged["put_if_absent"] + report.acknowledged["put_if_match"] > 0
    assert sum(report.refused.values()) > 0, figures
    assert report.unanswered == 0, figures
    assert report.commits > 1, figures
    assert "Traceback" not in relay.log()
