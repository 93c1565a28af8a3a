"""The committed diagrams: rendered from their current sources, free of plantuml's error
images, and showing what the issue asks of them. No plantuml needed to run these."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path
from types import ModuleType

import pytest

from tests.iac.terraform_model import REPO
from tests.iac.test_makefile_contract import LIFECYCLE

DOCS = REPO / "ca4" / "docs"
DIAGRAMS = ("architecture-ca4", "ca4-provisioning-sequence")

# what plantuml 1.2020 draws instead of a diagram when it cannot run graphviz (trimmed)
ERROR_SVG = """<?xml version="1.0" encoding="UTF-8" standalone="no"?><svg xmlns="http://www.w3.org/2000/svg"
 height="211px" width="308px"><defs/><g><text x="5" y="19">Dot Executable: /opt/local/bin/dot</text>
<text x="5" y="35">File does not exist</text><text x="5" y="51">Cannot find Graphviz. You should try</text>
<!--MD5=[0]
{source}
--></g></svg>"""


@pytest.fixture(scope="module")
def renderer() -> ModuleType:
    """ca4/docs/render_diagrams.py, imported from its path (it is a script, not a package)."""
    spec = importlib.util.spec_from_file_location("render_diagrams", DOCS / "render_diagrams.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("name", DIAGRAMS)
def test_committed_svg_is_a_fresh_rendering_of_its_source(renderer: ModuleType, name: str) -> None:
    """SVG present, well-formed, no error text, and rendered from the .puml as it is now."""
    problems = renderer.svg_problems(DOCS / f"{name}.puml", DOCS / f"{name}.svg")
    assert not problems, "\n".join(problems)


def test_an_error_image_is_refused(renderer: ModuleType, tmp_path: Path) -> None:
    """What plantuml writes without graphviz (exit status 0) must not pass as a diagram."""
    puml = tmp_path / "x.puml"
    puml.write_text("@startuml x\nnode a\nnode b\na - -> b\n@enduml\n".replace("- -", "--"))
    (tmp_path / "x.svg").write_text(ERROR_SVG.format(source=renderer.as_embedded(puml.read_text())))
    problems = renderer.svg_problems(puml, tmp_path / "x.svg")
    assert any("Cannot find Graphviz" in p for p in problems), (
        f"expected the error image refused, got {problems}"
    )
    assert renderer.main(["--check", "--docs", str(tmp_path)]) == 1


def test_a_stale_svg_is_refused(renderer: ModuleType, tmp_path: Path) -> None:
    """Changing the source without rendering again is caught."""
    for suffix in (".puml", ".svg"):
        (tmp_path / f"architecture-ca4{suffix}").write_bytes(
            (DOCS / f"architecture-ca4{suffix}").read_bytes()
        )
    puml = tmp_path / "architecture-ca4.puml"
    puml.write_text(puml.read_text().replace("Processor API :8080", "Processor API :9999"))
    problems = renderer.svg_problems(puml, tmp_path / "architecture-ca4.svg")
    assert any("older than" in p for p in problems), f"expected a stale SVG to be refused, got {problems}"


def test_architecture_shows_components_namespaces_flow_monitoring_and_tunnels() -> None:
    """The architecture diagram names every part the issue lists."""
    source = (DOCS / "architecture-ca4.puml").read_text()
    expected = (
        "Colab", "Processor API", "Kafka", "gpu-metadata", "gpu-metadata.dlq", "Metadata Worker",
        "DocumentDB", "S3 archive", "raw/", "enriched/", "namespace platform", "namespace app",
        "namespace monitoring", "Prometheus", "Loki", "Grafana", "bastion", "16443", "19092", "3000",
        "public subnets", "private subnets", "Application Load Balancer", "NAT",
    )  # fmt: skip
    missing = [word for word in expected if word not in source]
    assert not missing, f"architecture-ca4.puml: expected to mention {missing}"


def test_provisioning_sequence_runs_the_targets_in_lifecycle_order() -> None:
    """plan, apply, bootstrap, platform setup, deploy edge, deploy monitoring, verify, destroy."""
    source = (DOCS / "ca4-provisioning-sequence.puml").read_text()
    order = tuple(f"make {target}" for target in LIFECYCLE)
    positions = [source.find(step) for step in order]
    assert -1 not in positions, (
        f"missing steps: {[s for s, p in zip(order, positions, strict=True) if p == -1]}"
    )
    assert positions == sorted(positions), f"expected the steps in the order {order}, positions {positions}"
    assert re.search(r"^autonumber", source, flags=re.MULTILINE), "expected numbered steps"
