"""Today's baseline: one relay host (SQLite registry) in a namespace, clients in another,
racing on the same keys; the checker finds nothing wrong. With the disk store, and with the
s3 store on moto in a third namespace (the store the two-host tests share)."""

from __future__ import annotations

from pathlib import Path

import pytest
from consistency import s3_client
from multihost_helpers import BUCKET, make_run
from netns import Network, relay_config, s3_store_table, start_moto_in, start_relay_in


@pytest.mark.slow
def test_one_relay_host_keeps_every_promise_to_remote_clients(
    network: Network, tmp_path: Path
) -> None:
    relay_host = network.add_host("relay")
    clients = network.add_host("clients")
    relay = start_relay_in(relay_host, tmp_path / "relay", relay_config())
    run = make_run(clients, {"relay": relay}, clients_per_host=4, operations_per_client=60)
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


@pytest.mark.slow
def test_one_relay_host_on_an_s3_store_in_another_namespace(
    network: Network, tmp_path: Path
) -> None:
    store = network.add_host("store")
    moto = start_moto_in(store, tmp_path / "moto")
    blobs = store.call(moto.new_bucket)
    config = relay_config(store=s3_store_table(moto, blobs))
    relay = start_relay_in(network.add_host("relay"), tmp_path / "relay", config)
    run = make_run(network.add_host("clients"), {"relay": relay}, operations_per_client=25)
    run.create_bucket()
    run.workload()
    report = run.check(log_from="relay")
    figures = "\n".join(report.lines())
    print(figures)
    assert report.violations == [], figures
    assert report.unanswered == 0, figures
    assert report.acknowledged["put"] > 0, figures
    # The blobs went to moto, across the bridge.
    assert (
        store.call(lambda: moto.client().list_objects_v2(Bucket=moto_bucket(config)))["KeyCount"]
        > 0
    )


def moto_bucket(config: str) -> str:
    return config.split('bucket = "')[1].split('"')[0]


@pytest.mark.slow
def test_two_relay_hosts_that_share_nothing_are_caught(network: Network, tmp_path: Path) -> None:
    """The harness sees a broken deployment: two relays, each with its own registry and
    store, serving "one" bucket. Clients of one miss the other's writes."""
    relays = {
        name: start_relay_in(network.add_host(name), tmp_path / name, relay_config())
        for name in ("relay1", "relay2")
    }
    run = make_run(network.add_host("clients"), relays, operations_per_client=25)
    for relay in relays.values():
        run.clients.call(
            lambda endpoint=relay.endpoint: s3_client(endpoint).create_bucket(Bucket=BUCKET)
        )
    run.workload()
    report = run.check(log_from="relay1")
    failed = report.checks_failed()
    assert "read-after-write" in failed or "list-after-write" in failed, report.lines()
    assert "hosts disagree" in failed or "final state" in failed, report.lines()
