"""Run MinIO's functional suite against a fresh relay and print each test's outcome.

    .venv/bin/python -m tests.conformance.record                  # all tests, compare lists
    .venv/bin/python -m tests.conformance.record test_get_object  # just these
    .venv/bin/python -m tests.conformance.record --write          # and rewrite the lists

One line per test: outcome, what the lists expect, seconds, and the first error line.
``--write`` moves every passing test to minio_pass.txt and every other one to
minio_fail.txt, keeping the reasons already written; a newly failing test gets
``TODO: <first error line>``, which test_fail_list_gives_every_test_a_reason rejects until
someone writes the real reason (the S3 feature relay lacks, or why the suite is wrong).
Exit status 1 when any outcome disagrees with the lists.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from minio_suite import (
    FAIL_LIST,
    PASS_LIST,
    Outcome,
    fetch_suite,
    open_relay,
    read_list,
    run_suite_test,
    suite_test_names,
    write_data_files,
)


def expectation(name: str, passing: dict[str, str], failing: dict[str, str]) -> str:
    if name in passing:
        return "pass-list"
    if name in failing:
        return "fail-list"
    return "unlisted"


def agrees(outcome: Outcome, expected: str) -> bool:
    return (expected == "pass-list") == outcome.passed and expected != "unlisted"


def _line(name: str, note: str) -> str:
    return f"{name}  # {note}\n" if note else f"{name}\n"


def write_lists(outcomes: list[Outcome], passing: dict[str, str], failing: dict[str, str]) -> None:
    """Keeps the notes already written in both lists (in the pass list they say when a
    test checks less than its name suggests)."""
    PASS_LIST.write_text(
        "# MinIO functional tests (minio 7.2.20 tests/functional/tests.py) relay passes.\n"
        "# A note after # says when a pass proves less than the test's name suggests.\n"
        "# Regenerate: .venv/bin/python -m tests.conformance.record --write\n"
        + "".join(
            _line(outcome.name, passing.get(outcome.name, ""))
            for outcome in outcomes
            if outcome.passed
        ),
        encoding="utf-8",
    )
    lines = []
    for outcome in outcomes:
        if outcome.passed:
            continue
        reason = failing.get(outcome.name) or f"TODO: {outcome.status} {outcome.first_error_line}"
        lines.append(_line(outcome.name, reason))
    FAIL_LIST.write_text(
        "# MinIO functional tests relay fails, each with the reason (`name  # reason`).\n"
        "# A test here that passes fails CI: move it to minio_pass.txt.\n" + "".join(lines),
        encoding="utf-8",
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("names", nargs="*", help="test functions to run (default: all)")
    parser.add_argument("--write", action="store_true", help="rewrite the two lists")
    parser.add_argument("-v", "--verbose", action="store_true", help="print tracebacks")
    args = parser.parse_args(argv)

    suite = fetch_suite()
    passing, failing = read_list(PASS_LIST), read_list(FAIL_LIST)
    names = args.names or suite_test_names(suite)
    if args.write and args.names:
        parser.error("--write needs the whole suite (no names)")

    outcomes: list[Outcome] = []
    disagreements = 0
    with tempfile.TemporaryDirectory(prefix="relay-conformance-") as scratch:
        base = Path(scratch)
        data_dir = write_data_files(base / "data-files")
        with open_relay(base / "relays") as holder:
            for name in names:
                outcome = run_suite_test(name, holder, data_dir, base / "work" / name)
                outcomes.append(outcome)
                expected = expectation(name, passing, failing)
                ok = agrees(outcome, expected)
                disagreements += not ok
                print(
                    f"{outcome.status:8} {expected:9} {'' if ok else 'MISMATCH '}"
                    f"{outcome.seconds:6.1f}s  {name}  {outcome.first_error_line}"[:240],
                    flush=True,
                )
                if args.verbose and not outcome.passed:
                    print(outcome.detail)
                if outcome.relay_tracebacks:
                    print(f"  relay logged a traceback:\n{outcome.relay_tracebacks}")
    count = sum(outcome.passed for outcome in outcomes)
    print(f"{count} of {len(outcomes)} passed; {disagreements} disagree with the lists")
    if args.write:
        write_lists(outcomes, passing, failing)
        print(f"wrote {PASS_LIST.name} and {FAIL_LIST.name}")
    return 1 if disagreements else 0


if __name__ == "__main__":
    sys.exit(main())
