"""MinIO's functional S3 suite against relay, one result per test function.

Each test function of minio 7.2.20's ``tests/functional/tests.py`` runs on its own against
a relay started for this module (plain http, fresh data directory), see minio_suite.py.
The two lists beside this file are the contract:

- a test in ``minio_pass.txt`` that does not pass is a regression;
- a test in ``minio_fail.txt`` that passes must be moved to ``minio_pass.txt``;
- a test of tests.py in neither list fails until it is added to one.

``.venv/bin/python -m tests.conformance.record`` prints every outcome (``--write`` updates
the lists).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from minio_suite import (
    FAIL_LIST,
    PASS_LIST,
    SUITE_PATH,
    Outcome,
    RelayUnderTest,
    SuiteMissingError,
    read_list,
    require_suite,
    run_suite_test,
    suite_test_names,
    write_data_files,
)

PASSING = read_list(PASS_LIST)
FAILING = read_list(FAIL_LIST)
SUITE_NAMES = suite_test_names(SUITE_PATH) if SUITE_PATH.is_file() else []
# tests.py's order first, then names only the lists know (those fail: not in the suite).
ALL_NAMES = list(dict.fromkeys([*SUITE_NAMES, *PASSING, *FAILING]))


@pytest.fixture(scope="module")
def suite_names() -> list[str]:
    try:
        return suite_test_names(require_suite())
    except SuiteMissingError as missing:
        pytest.fail(str(missing))


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_data_files(tmp_path_factory.mktemp("minio-data"))


@pytest.fixture(scope="module")
def minio_relay(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RelayUnderTest]:
    holder = RelayUnderTest(tmp_path_factory.mktemp("minio-relay"))
    try:
        yield holder
    finally:
        code = holder.stop()
    assert code == 0, f"relay exited with {code}:\n{holder.relay.log()[-5000:]}"


def describe(outcome: Outcome) -> str:
    text = f"{outcome.name}: {outcome.status} {outcome.first_error_line}\n{outcome.detail}"
    if outcome.relay_tracebacks:
        text += f"\nrelay's log:\n{outcome.relay_tracebacks}"
    return text


@pytest.mark.slow
@pytest.mark.parametrize("name", ALL_NAMES)
def test_minio_functional(
    name: str,
    suite_names: list[str],
    data_dir: Path,
    minio_relay: RelayUnderTest,
    tmp_path: Path,
) -> None:
    if name not in suite_names:
        pytest.fail(f"{name} is not a test function of tests.py: remove it from the lists")
    if name in PASSING and name in FAILING:
        pytest.fail(f"{name} is in both {PASS_LIST.name} and {FAIL_LIST.name}")
    outcome = run_suite_test(name, minio_relay, data_dir, tmp_path)
    if name in PASSING:
        if not outcome.passed:
            pytest.fail(f"regression (in {PASS_LIST.name}): {describe(outcome)}")
        if outcome.relay_tracebacks:
            pytest.fail(f"passed, but relay logged a traceback: {describe(outcome)}")
    elif name in FAILING:
        if outcome.passed:
            pytest.fail(
                f"{name} passes now: move it to {PASS_LIST.name} "
                f"(listed as failing because: {FAILING[name]})"
            )
    else:
        pytest.fail(
            f"{name} is in neither list: add it to "
            f"{PASS_LIST.name if outcome.passed else FAIL_LIST.name} "
            f"(it ran: {outcome.status} {outcome.first_error_line})"
        )


def test_no_test_is_in_both_lists() -> None:
    assert set(PASSING).isdisjoint(FAILING), set(PASSING) & set(FAILING)


def test_fail_list_gives_every_test_a_reason() -> None:
    unexplained = {
        name: reason
        for name, reason in FAILING.items()
        if not reason or reason.upper().startswith("TODO")
    }
    assert not unexplained, f"write the reason in {FAIL_LIST.name}: {unexplained}"


def test_lists_name_every_suite_test_and_nothing_else(suite_names: list[str]) -> None:
    listed = set(PASSING) | set(FAILING)
    assert set(suite_names) - listed == set(), "add these to a list"
    assert listed - set(suite_names) == set(), "these are not in tests.py: remove them"


def test_list_lines_carry_a_name_and_an_optional_reason(tmp_path: Path) -> None:
    listing = tmp_path / "list.txt"
    listing.write_text("# a comment\n\ntest_a\ntest_b  # no SSE-C # over http\n", encoding="utf-8")
    assert read_list(listing) == {"test_a": "", "test_b": "no SSE-C # over http"}
    listing.write_text("test_a\ntest_a  # again\n", encoding="utf-8")
    with pytest.raises(ValueError, match="repeated"):
        read_list(listing)
