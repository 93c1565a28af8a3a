"""Build the rehearsal cluster's binaries once from the Go module proxy, into the CA4 cache.

Each part lands in ``<cache>/rehearsal/bin/<name>-<version>/`` with a stamp; a part whose
stamp is there is not built again. The Go module and build caches of a build live in a
scratch folder deleted afterwards, so the disk cost that stays is the binaries (about
0.5 GB); a second cold build downloads again.

Kubernetes cannot be built with ``go install k8s.io/kubernetes/cmd/...@vX``: its go.mod
replaces the 31 staging modules with ``./staging/src/...`` paths. A wrapper module requires
``k8s.io/kubernetes`` and replaces each of those with its published ``v0.x.y`` release; the
version is stamped in with ``-ldflags -X`` (else the binaries say ``v0.0.0-master``).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rehearsal.pins import Pins, pins

KUBE_COMMANDS = ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubelet", "kube-proxy")
BUILD_TIMEOUT_S = 1800  # one go command; cold on two cores Kubernetes takes about 6 minutes
BUILD_WORKERS = 2  # parts built side by side: one downloads or links while the other compiles


class BuildError(RuntimeError):
    """A part could not be built; the message names it and the command's last output."""


def say(message: str) -> None:
    """One progress line."""
    print(f">> {message}", flush=True)


@dataclass(frozen=True)
class Part:
    """One thing to build: its binaries, and how."""

    name: str
    version: str
    binaries: tuple[str, ...]
    build: Callable[[Builder, Part, Path], None]

    @property
    def key(self) -> str:
        """``name-version``: the folder of its binaries."""
        return f"{self.name}-{self.version}"


class Builder:
    """Runs Go with caches in a scratch folder under the CA4 cache, deleted when done."""

    def __init__(self, cache: Path, versions: Pins | None = None) -> None:
        self.root = cache / "rehearsal"
        self.bin_root = self.root / "bin"
        self.scratch = self.root / "go-scratch"
        self.pins = versions or pins()

    # --- what there is ---------------------------------------------------------------------

    def parts(self) -> list[Part]:
        """Every part of the cluster that comes from the Go module proxy."""
        p = self.pins
        return [
            # the longest two first, so the short ones fill in beside them
            Part("kubernetes", p.kubernetes, (*KUBE_COMMANDS, "pause"), _build_kubernetes),
            Part("traefik", p.traefik, ("traefik",), _build_traefik),
            Part("kine", p.kine, ("kine",), _go_install("github.com/k3s-io/kine", cgo=True)),
            Part("coredns", p.coredns, ("coredns",), _go_install("github.com/coredns/coredns")),
            Part(
                "local-path-provisioner",
                p.local_path,
                ("local-path-provisioner",),
                _go_install("github.com/rancher/local-path-provisioner"),
            ),
            Part(
                "kube-router",
                p.kube_router,
                ("kube-router",),
                _go_install("github.com/cloudnativelabs/kube-router/v2/cmd/kube-router"),
            ),
        ]

    def bin_dir(self, part: Part) -> Path:
        """Where the part's binaries are."""
        return self.bin_root / part.key

    def built(self, part: Part) -> bool:
        """The part's stamp and every binary are there."""
        folder = self.bin_dir(part)
        return (folder / ".built").exists() and all((folder / b).exists() for b in part.binaries)

    def binary(self, name: str) -> Path:
        """The path of one built binary (``kubelet``, ``kine``, ...)."""
        for part in self.parts():
            if name in part.binaries:
                return self.bin_dir(part) / name
        raise KeyError(name)

    # --- building ----------------------------------------------------------------------------

    def ensure(self, only: Sequence[str] = ()) -> list[Part]:
        """Build what is missing (all parts, or those named), two at a time, sharing one module
        and build cache (their Kubernetes client libraries compile once); returns the parts built."""
        wanted = [p for p in self.parts() if not only or p.name in only]
        missing = [p for p in wanted if not self.built(p)]
        if not missing:
            return []
        if not shutil.which("go"):
            raise BuildError("go is not on PATH: the rehearsal cluster is built from the Go module proxy")
        say(f"building {len(missing)} part(s) once into {self.bin_root} (about 20 minutes cold on 2 cores)")
        try:
            # two at a time: one downloads or links while the other compiles
            with ThreadPoolExecutor(max_workers=BUILD_WORKERS) as pool:
                for future in [pool.submit(self._build_one, part) for part in missing]:
                    future.result()
        finally:
            self.clean_scratch()
        return missing

    def _build_one(self, part: Part) -> None:
        started = time.monotonic()
        say(f"building {part.key} from the Go module proxy ({', '.join(part.binaries)})")
        out = self.bin_dir(part)
        tmp = out.with_name(out.name + ".partial")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        part.build(self, part, tmp)
        for name in part.binaries:
            if not (tmp / name).is_file():
                raise BuildError(f"{part.key}: the build left no {name}")
        (tmp / ".built").write_text(f"{part.key}\n")
        shutil.rmtree(out, ignore_errors=True)
        tmp.rename(out)
        say(f"built {part.key} in {time.monotonic() - started:.0f} s")

    def clean_scratch(self) -> None:
        """Delete the Go caches of the build (the module cache is read-only: make it writable)."""
        if self.scratch.exists():
            subprocess.run(["chmod", "-R", "u+w", str(self.scratch)], check=False, timeout=300)
            shutil.rmtree(self.scratch, ignore_errors=True)

    def go_env(self, cgo: bool = False) -> dict[str, str]:
        """Go with its caches in the scratch folder, this machine's toolchain only."""
        env = dict(os.environ)
        env.update(
            GOPATH=str(self.scratch / "gopath"),
            GOMODCACHE=str(self.scratch / "mod"),
            GOCACHE=str(self.scratch / "cache"),
            GOTOOLCHAIN="local",
            GOFLAGS="-mod=mod",
            CGO_ENABLED="1" if cgo else "0",
        )
        return env

    def go(
        self, *args: str, cwd: Path | None = None, cgo: bool = False, env: dict[str, str] | None = None
    ) -> str:
        """Run ``go ARGS`` bounded; its stdout, or a BuildError with the end of its output."""
        cwd = cwd or self.scratch
        cwd.mkdir(parents=True, exist_ok=True)
        try:
            done = subprocess.run(
                ["go", *args],
                cwd=cwd,
                env={**self.go_env(cgo), **(env or {})},
                capture_output=True,
                text=True,
                timeout=BUILD_TIMEOUT_S,
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise BuildError(f"go {' '.join(args[:3])} did not finish in {BUILD_TIMEOUT_S} s") from None
        if done.returncode != 0:
            tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-20:])
            raise BuildError(f"go {' '.join(args[:4])} failed:\n{tail}")
        return done.stdout


def _go_install(module: str, cgo: bool = False) -> Callable[[Builder, Part, Path], None]:
    def build(builder: Builder, part: Part, out: Path) -> None:
        builder.go(
            "install",
            "-trimpath",
            "-ldflags=-s -w",
            f"{module}@{part.version}",
            cgo=cgo,
            env={"GOBIN": str(out)},
        )

    return build


def staging_modules(gomod: str) -> list[str]:
    """The modules k8s.io/kubernetes replaces with ./staging/src paths, from its go.mod text."""
    return sorted(set(re.findall(r"^\s*(k8s\.io/[\w.-]+)\s+=>\s+\./staging/src/", gomod, flags=re.MULTILINE)))


def module_replaces(gomod: str) -> list[str]:
    """A go.mod's replace directives that name another module (``a => b v1``), one per line;
    those to local paths are left out (they cannot leave the module)."""
    lines = []
    for block in re.findall(r"^replace\s*\((.*?)^\)", gomod, flags=re.MULTILINE | re.DOTALL):
        lines += block.splitlines()
    lines += re.findall(r"^replace\s+([^(\s].*)$", gomod, flags=re.MULTILINE)
    out = []
    for raw in lines:
        line = raw.split("//")[0].strip()
        if "=>" in line and not line.split("=>")[1].strip().startswith((".", "/")):
            out.append(line)
    return out


def wrapper_build(
    builder: Builder,
    module: str,
    version: str,
    packages: list[str],
    *,
    replaces: list[str],
    out: Path,
    flags: str,
) -> dict[str, Any]:
    """Build ``packages`` of ``module@version`` in a wrapper module that repeats its replace
    directives (``go install pkg@version`` refuses a module that has any); returns the module's
    ``go mod download -json`` record."""
    info: dict[str, Any] = json.loads(builder.go("mod", "download", "-json", f"{module}@{version}"))
    gomod = Path(str(info["GoMod"])).read_text()
    go_line = re.search(r"^go (\S+)", gomod, flags=re.MULTILINE)
    wrapper = builder.scratch / f"wrapper-{module.replace('/', '_')}"
    wrapper.mkdir(parents=True, exist_ok=True)
    lines = [
        f"module ca4.local/rehearsal/{module.rsplit('/', 1)[-1]}",
        f"go {go_line.group(1) if go_line else '1.24'}",
        f"require {module} {version}",
        "replace (",
        *(f"\t{r}" for r in replaces),
        ")",
    ]
    (wrapper / "go.mod").write_text("\n".join(lines) + "\n")
    builder.go("build", "-trimpath", f"-ldflags={flags}", "-o", f"{out}/", *packages, cwd=wrapper)
    return info


def _build_kubernetes(builder: Builder, part: Part, out: Path) -> None:
    versions = builder.pins
    info = json.loads(builder.go("mod", "download", "-json", f"k8s.io/kubernetes@{versions.kubernetes}"))
    staging = staging_modules(Path(info["GoMod"]).read_text())
    if len(staging) < 20:
        raise BuildError(
            f"k8s.io/kubernetes {versions.kubernetes}: only {len(staging)} staging modules found"
        )
    major, minor = versions.kubernetes.removeprefix("v").split(".")[:2]
    stamp = {
        "gitVersion": versions.kubernetes,
        "gitMajor": major,
        "gitMinor": minor,
        "gitTreeState": "clean",
        "buildDate": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    flags = ["-s", "-w"]
    for package in ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version"):
        flags += [f"-X {package}.{k}={v}" for k, v in stamp.items()]
    packages = [f"k8s.io/kubernetes/cmd/{c}" for c in KUBE_COMMANDS]
    replaces = [f"{m} => {m} {versions.staging}" for m in staging]
    wrapper_build(
        builder,
        "k8s.io/kubernetes",
        versions.kubernetes,
        packages,
        replaces=replaces,
        out=out,
        flags=" ".join(flags),
    )
    # the pause container: Kubernetes ships its C source in the module
    pause_c = Path(info["Dir"]) / "build" / "pause" / "linux" / "pause.c"
    argv = ["gcc", "-Os", "-static", "-o", str(out / "pause"), str(pause_c)]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
    if done.returncode != 0:
        raise BuildError(f"gcc -static {pause_c} failed: {done.stderr.strip()[-800:]}")


def _build_traefik(builder: Builder, part: Part, out: Path) -> None:
    module = "github.com/traefik/traefik/v3"
    info = json.loads(builder.go("mod", "download", "-json", f"{module}@{part.version}"))
    replaces = module_replaces(Path(info["GoMod"]).read_text())
    flags = f"-s -w -X github.com/traefik/traefik/v3/pkg/version.Version={part.version}"
    wrapper_build(
        builder, module, part.version, [f"{module}/cmd/traefik"], replaces=replaces, out=out, flags=flags
    )


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m rehearsal.build [PART...]``: build what is missing."""
    from local_stack.config import default_cache_dir  # noqa: PLC0415

    names = list(argv if argv is not None else sys.argv[1:])
    builder = Builder(default_cache_dir())
    try:
        built = builder.ensure(names)
    except BuildError as exc:
        print(f"rehearsal build: {exc}", file=sys.stderr)
        return 1
    say(f"rehearsal binaries: {'built ' + ', '.join(p.key for p in built) if built else 'all present'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
