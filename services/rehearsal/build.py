"""Build the rehearsal cluster's binaries once from the Go module proxy, into the CA4 cache.

Each part lands in ``<cache>/rehearsal/bin/<name>-<version>/`` with a stamp; a part whose
stamp is there is not built again. The Go module and build caches of a build live in a
scratch folder deleted afterwards, so the disk cost that stays is the binaries (about
0.6 GB); a second cold build downloads again.

Three parts: ``cluster`` (Kubernetes' five commands, Traefik, kube-router's network policy
controller and CoreDNS with K3s's plugins, one ``go build`` in one wrapper module, as K3s builds
its one binary from one go.mod, so the libraries they share compile once; ``gomain`` holds the
two mains that choose what K3s uses of kube-router and CoreDNS), ``kine`` (cgo, for SQLite)
and ``local-path-provisioner`` (its module cannot join the others, see pins.sh), two at a time.

Kubernetes cannot be built with ``go install k8s.io/kubernetes/cmd/...@vX``: its go.mod
replaces the 31 staging modules with ``./staging/src/...`` paths. The wrapper module requires
``k8s.io/kubernetes`` and replaces each of those with its published ``v0.x.y`` release (and
repeats the other modules' own replace directives); the version is stamped in with
``-ldflags -X`` (else the binaries say ``v0.0.0-master``).

What every Go build shares (go.mod text, the wrapper module, ``BuildError``) is in ``gomod``.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from rehearsal.gomod import (
    GCFLAGS,
    GOMAIN,
    BuildError,
    go_directive,
    merge_replaces,
    module_file,
    module_replaces,
    staging_modules,
    wrapper_build,
)
from rehearsal.pins import Pins, pins

KUBE_COMMANDS = ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubelet", "kube-proxy")
BUILD_TIMEOUT_S = 1800  # one go command; cold on two cores Kubernetes takes about 6 minutes
BUILD_WORKERS = 2  # parts built side by side: one downloads or links while the other compiles


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
        modules = cluster_modules(p)
        digest = hashlib.sha256(json.dumps([(m.path, m.version) for m in modules]).encode())
        for main_go in sorted(GOMAIN.glob("*/main.go")):  # our own mains: a change is a new build
            digest.update(main_go.read_bytes())
        binaries = tuple(b for m in modules for b in m.binaries)
        return [
            # the long one first; kine (cgo, SQLite) builds beside it
            Part("cluster", f"{p.kubernetes}-{digest.hexdigest()[:8]}", (*binaries, "pause"), _build_cluster),
            Part("kine", p.kine, ("kine",), _go_install("github.com/k3s-io/kine", cgo=True)),
            # on its own: v0.0.30 imports github.com/Sirupsen/logrus (pins.sh says why)
            Part(
                "local-path-provisioner",
                p.local_path,
                ("local-path-provisioner",),
                _go_install("github.com/rancher/local-path-provisioner"),
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
        return self.ensure_parts([p for p in self.parts() if not only or p.name in only])

    def ensure_parts(self, wanted: Sequence[Part]) -> list[Part]:
        """Build those of ``wanted`` that are missing (any part: the stand-in images' too)."""
        missing = [p for p in wanted if not self.built(p)]
        if not missing:
            return []
        if not shutil.which("go"):
            raise BuildError("go is not on PATH: the rehearsal cluster is built from the Go module proxy")
        say(f"building {', '.join(p.key for p in missing)} once into {self.bin_root}")
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
        try:
            part.build(self, part, tmp)
        except BuildError as exc:
            say(f"{part.key} failed (the other builds finish first): {str(exc).splitlines()[0]}")
            raise
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
            # the compiler's heap may grow 4x before it collects: about 7 % less CPU for the
            # build (measured on client-go), a few GB more memory at its peak
            GOGC="400",
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
            GCFLAGS,
            "-ldflags=-s -w",
            f"{module}@{part.version}",
            cgo=cgo,
            env={"GOBIN": str(out)},
        )

    return build


@dataclass(frozen=True)
class Module:
    """One Go module of the cluster: the main packages built from it, and its version stamp."""

    path: str
    version: str
    packages: tuple[str, ...] = ()  # its own main packages, relative to the module
    stamp: tuple[str, ...] = ()  # -X settings
    mains: tuple[str, ...] = ()  # ours instead (gomain/NAME/main.go), on the module's packages

    @property
    def binaries(self) -> tuple[str, ...]:
        """What ``go build -o DIR/`` names them: the last element of each package path."""
        return (*(p.rsplit("/", 1)[-1] for p in self.packages), *self.mains)

    @property
    def imports(self) -> list[str]:
        """The packages' import paths."""
        return [f"{self.path}/{p}" for p in self.packages]


def cluster_modules(p: Pins) -> list[Module]:
    """K3s's Go parts, each from its own module at its pin. They are built together in one
    wrapper module, as K3s builds its one binary from one go.mod: every library they share
    (client-go, the API types, gRPC, the cloud SDKs) then has one version and compiles once.
    That is why CoreDNS is pinned at a release on Kubernetes' client-go minor."""
    kube = "k8s.io/kubernetes"
    return [
        Module(kube, p.kubernetes, tuple(f"cmd/{c}" for c in KUBE_COMMANDS)),
        Module(
            "github.com/traefik/traefik/v3",
            p.traefik,
            ("cmd/traefik",),
            (f"github.com/traefik/traefik/v3/pkg/version.Version={p.traefik}",),
        ),
        # the network policy controller alone, as K3s embeds it (gomain/kube-router)
        Module(
            "github.com/cloudnativelabs/kube-router/v2",
            p.kube_router,
            stamp=(f"github.com/cloudnativelabs/kube-router/v2/pkg/version.Version={p.kube_router}",),
            mains=("kube-router",),
        ),
        # the plugins of K3s's Corefile only (gomain/coredns); its version is a constant
        Module("github.com/coredns/coredns", p.coredns, mains=("coredns",)),
    ]


def kubernetes_stamp(version: str) -> list[str]:
    """The -X settings that make the binaries report ``version`` (else ``v0.0.0-master``)."""
    major, minor = version.removeprefix("v").split(".")[:2]
    stamp = {
        "gitVersion": version,
        "gitMajor": major,
        "gitMinor": minor,
        "gitTreeState": "clean",
        "buildDate": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    return [
        f"{package}.{k}={v}"
        for package in ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version")
        for k, v in stamp.items()
    ]


def _build_cluster(builder: Builder, part: Part, out: Path) -> None:
    versions = builder.pins
    modules = cluster_modules(versions)
    replaces: list[str] = []
    go: tuple[int, ...] = (1, 24)
    kube_dir = None
    for module in modules:
        info, gomod = module_file(builder, module.path, module.version)
        go = max(go, go_directive(gomod))
        replaces += module_replaces(gomod)
        if module.path == "k8s.io/kubernetes":
            kube_dir = Path(info["Dir"])
            staging = staging_modules(gomod)
            if len(staging) < 20:
                raise BuildError(
                    f"k8s.io/kubernetes {module.version}: only {len(staging)} staging modules found"
                )
            replaces += [f"{m} => {m} {versions.staging}" for m in staging]
    stamps = [*kubernetes_stamp(versions.kubernetes), *(s for m in modules for s in m.stamp)]
    wrapper_build(
        builder,
        "cluster",
        [(m.path, m.version) for m in modules],
        [i for m in modules for i in m.imports],
        replaces=merge_replaces(replaces),
        out=out,
        flags=" ".join(["-s", "-w", *(f"-X {s}" for s in stamps)]),
        go=go,
        mains=[x for m in modules for x in m.mains],
    )
    # the pause container: Kubernetes ships its C source in the module
    assert kube_dir is not None
    pause_c = kube_dir / "build" / "pause" / "linux" / "pause.c"
    argv = ["gcc", "-Os", "-static", "-o", str(out / "pause"), str(pause_c)]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
    if done.returncode != 0:
        raise BuildError(f"gcc -static {pause_c} failed: {done.stderr.strip()[-800:]}")


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
