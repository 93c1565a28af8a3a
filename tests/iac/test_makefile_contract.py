"""ca4/MAKEFILE-CONTRACT.md and the root Makefile name the same ca4-* targets, and
`make -n <target>` shows the delegation the contract documents."""

from __future__ import annotations

import re

import pytest

from tests.iac.terraform_model import REPO
from tests.tools.run import run

CONTRACT = REPO / "ca4" / "MAKEFILE-CONTRACT.md"
MAKEFILE = REPO / "Makefile"

# The lifecycle's order, as DESIGN.md gives it
LIFECYCLE = (
    "ca4-plan",
    "ca4-apply",
    "ca4-bootstrap-k3s",
    "ca4-platform-setup",
    "ca4-deploy-edge",
    "ca4-deploy-monitoring",
    "ca4-verify-preflight",
    "ca4-destroy",
)
# Every ca4-* target of the kit: the lifecycle, the other verifications, the tunnel and image helpers
KIT_TARGETS = frozenset(
    {
        *LIFECYCLE,
        "ca4-verify-kafka",
        "ca4-verify-db",
        "ca4-verify-e2e",
        "ca4-verify-resilience",
        "ca4-tunnels-up",
        "ca4-tunnels-down",
        "ca4-tunnels-status",
        "ca4-image-build",
        "ca4-image-load",
    }
)


def contract_sections() -> dict[str, str]:
    """``### `ca4-x` `` heading -> the text of its section."""
    text = CONTRACT.read_text()
    parts = re.split(r"^### `(ca4-[a-z0-9-]+)`\s*$", text, flags=re.MULTILINE)
    return {parts[i]: parts[i + 1] for i in range(1, len(parts) - 1, 2)}


def delegation(section: str) -> str:
    """The command in a section's "Delegates to" row."""
    m = re.search(r"^\|\s*Delegates to\s*\|\s*`([^`]+)`\s*\|", section, flags=re.MULTILINE)
    assert m, f"expected a '| Delegates to | `command` |' row in:\n{section[:300]}"
    return m.group(1)


def makefile_targets() -> set[str]:
    """ca4-* targets the root Makefile defines."""
    return set(re.findall(r"^(ca4-[a-z0-9-]+)\s*:(?!=)", MAKEFILE.read_text(), flags=re.MULTILINE))


SECTIONS = contract_sections()


def test_contract_documents_every_target_of_the_kit() -> None:
    """The contract covers the whole kit, including targets other issues implement."""
    missing = sorted(KIT_TARGETS - set(SECTIONS))
    extra = sorted(set(SECTIONS) - KIT_TARGETS)
    assert not missing and not extra, f"contract: missing sections {missing}, unknown sections {extra}"


def test_contract_and_makefile_name_the_same_targets() -> None:
    """Both ways: no undocumented target, no documented target without a rule."""
    in_makefile = makefile_targets()
    only_contract = sorted(set(SECTIONS) - in_makefile)
    only_makefile = sorted(in_makefile - set(SECTIONS))
    assert not only_contract, f"documented in {CONTRACT.name} but missing from the Makefile: {only_contract}"
    assert not only_makefile, f"in the Makefile but not documented in {CONTRACT.name}: {only_makefile}"


def test_every_ca4_target_is_phony() -> None:
    """A file called ca4-plan must never stop the target from running."""
    phony = set(re.findall(r"^\.PHONY:\s*(.+)$", MAKEFILE.read_text(), flags=re.MULTILINE))
    declared = {name for line in phony for name in line.split()}
    missing = sorted(makefile_targets() - declared)
    assert not missing, f"expected .PHONY for {missing}"


def test_every_section_states_inputs_outputs_effects_idempotency_and_order() -> None:
    """What a user needs to know before running a target."""
    rows = ("Delegates to", "Needs", "Reads", "Writes", "Side effects", "Idempotency", "Order")
    gaps = [
        f"{target}: {row}"
        for target, section in SECTIONS.items()
        for row in rows
        if not re.search(rf"^\|\s*{row}\s*\|\s*\S", section, flags=re.MULTILINE)
    ]
    assert not gaps, "expected every row in every section, missing:\n" + "\n".join(gaps)


def test_contract_states_the_lifecycle_order() -> None:
    """The lifecycle line lists the main targets in DESIGN.md's order."""
    text = CONTRACT.read_text()
    block = text[text.index("## Lifecycle") :]
    positions = [block.find(target) for target in LIFECYCLE]
    assert -1 not in positions and positions == sorted(positions), (
        f"lifecycle order: found positions {positions}"
    )


@pytest.mark.parametrize("target", sorted(SECTIONS))
def test_make_n_shows_the_documented_delegation(target: str) -> None:
    """`make -n <target>` prints the command of the contract's "Delegates to" row."""
    documented = delegation(SECTIONS[target])
    # $(MAKE), $(NOX) ... expand to paths; match them as any word
    pattern = r"\s+".join(
        r"\S+" if re.fullmatch(r"\$\([A-Z_]+\)", word) else re.escape(word) for word in documented.split()
    )
    result = run(["make", "--no-print-directory", "-n", target], timeout=60, cwd=REPO)
    assert result.returncode == 0, f"make -n {target}: exit {result.returncode}\n{result.stderr}"
    assert re.search(rf"^{pattern}$", result.stdout, flags=re.MULTILINE), (
        f"make -n {target}: expected a line matching {documented!r}, got:\n{result.stdout}"
    )


def test_the_one_screen_summary_lists_the_lifecycle_in_order() -> None:
    """ca4/README.md: the order, what each target needs and produces, on one screen."""
    summary = REPO / "ca4" / "README.md"
    assert summary.exists(), "ca4/README.md (the lifecycle on one screen) is missing"
    text = summary.read_text()
    positions = [text.find(t) for t in LIFECYCLE]
    assert -1 not in positions and positions == sorted(positions), (
        f"ca4/README.md: the targets {LIFECYCLE} at positions {positions}"
    )
    assert len(text.splitlines()) <= 40, "one screen: at most 40 lines"
    for column in ("needs first", "produces"):
        assert column in text, f"ca4/README.md has no '{column}' column"


def test_the_readme_runs_the_contract_order_with_nothing_in_between() -> None:
    """The README's bootstrap-to-verify block is the contract's order, with no tunnel or image
    step the targets do not need (they open their tunnel and load the image themselves)."""
    readme = (REPO / "README.md").read_text()
    block = readme[readme.index("## From bare EC2 nodes") :]
    block = block[: block.index("\n\n**")]
    steps = re.findall(r"^\s+make (ca4-[a-z0-9-]+)", block, flags=re.MULTILINE)
    assert steps == [
        "ca4-bootstrap-k3s",
        "ca4-platform-setup",
        "ca4-deploy-edge",
        "ca4-deploy-monitoring",
        "ca4-verify-preflight",
    ], steps


# what a rehearsal cannot run: it tears the stack down, or only reports on the tunnels
NOT_REHEARSED = {"ca4-destroy", "ca4-tunnels-down", "ca4-tunnels-status"}


def test_make_rehearsal_runs_every_target_of_the_kit_in_the_contracts_order() -> None:
    """services/rehearsal/lifecycle.py keeps its own ordered list: it must be the kit, less what a
    rehearsal cannot run, in the order of the contract's lifecycle."""
    from rehearsal.lifecycle import DISRUPTIVE, TARGETS  # noqa: PLC0415 - only this test needs it

    rehearsed = [*TARGETS, *DISRUPTIVE]
    assert len(set(rehearsed)) == len(rehearsed), f"a target listed twice: {rehearsed}"
    assert set(rehearsed) == KIT_TARGETS - NOT_REHEARSED, (
        f"missing {sorted(KIT_TARGETS - NOT_REHEARSED - set(rehearsed))}, "
        f"unknown {sorted(set(rehearsed) - KIT_TARGETS)}"
    )
    main_line = [t for t in rehearsed if t in LIFECYCLE]
    assert main_line == [t for t in LIFECYCLE if t in main_line], (
        f"the rehearsal runs {main_line}, the contract's order is {list(LIFECYCLE)}"
    )
