"""The AWS services the rehearsal stands in for, on its own network (``topology``):

    DocumentDB  FerretDB (SQLite) with TLS only at 10.0.1.20:27017, its certificate from a CA of
                its own (the rehearsal's "global-bundle.pem", built into the image the way the AWS
                CA bundle is); only the nodes and their pods may connect: the bastion is refused,
                as DocumentDB's security group admits the nodes alone
    S3          moto over HTTPS at 198.18.1.21:443, outside every private range as S3 is; its
                certificate from the rehearsal's "public" CA, which the stand-in base image
                trusts as Debian trusts the public CAs; the archive bucket made at start
    IMDS        ``rehearsal.imds`` at 169.254.169.254:80: IMDSv2 with tokens and hop limit 2, the
                nodes' instance role credentials (the worker's S3 access, as on EC2)
    the ALB     Traefik in the bastion's namespace at 198.18.0.2:443 (the public subnet): TLS with
                the API certificate of the stack's own CA (Terraform makes both when no
                certificate is given), forwarding to every node's websecure entrypoint (443)

All in namespace ``ca4rh-aws`` except the load balancer. The values the ca4-* scripts read about
them are Terraform outputs of the rehearsal's root (``terraform``).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from local_stack import ferretdb
from local_stack.config import StackConfig
from rehearsal import bastion
from rehearsal.daemons import Daemons, RehearsalError
from rehearsal.pki import Pki
from rehearsal.topology import BASTION_ADDR, DOCUMENTDB_ADDR, IMDS_ADDR, S3_ADDR, Topology, in_ns

DOCUMENTDB_PORT = 27017
REGION = "us-east-1"
BUCKET = "ca4-archive-rehearsal"
DB_USER = "ca4admin"
URI_OPTIONS = "tls=true&tlsCAFile=global-bundle.pem&retryWrites=false"
API_HOST = BASTION_ADDR  # the load balancer's address, in the API certificate
DAEMONS = ("aws-holder", "documentdb", "s3", "imds", "load-balancer")


class Aws:
    """The stand-ins of one rehearsal: certificates under ``state``, daemons named in ``DAEMONS``."""

    def __init__(self, daemons: Daemons, topology: Topology, cache: Path) -> None:
        self.daemons, self.topology, self.cache = daemons, topology, cache
        state = daemons.state
        self.documentdb_ca = Pki(state / "aws" / "documentdb-pki")
        self.public_ca = Pki(state / "aws" / "public-pki")
        self.edge_ca = Pki(state / "aws" / "edge-api-pki")
        self.dir = state / "aws"

    # --- credentials --------------------------------------------------------------------------

    def ensure_certificates(self) -> None:
        """Three CAs, as in AWS three parties sign: DocumentDB's, the public one S3's comes from,
        and the stack's own for the API (Terraform's tls_self_signed_cert)."""
        self.documentdb_ca.ca("ca4-rehearsal-documentdb-ca")
        self.documentdb_ca.leaf("documentdb", "/CN=documentdb", "serverAuth", [f"IP:{DOCUMENTDB_ADDR}"])
        self.public_ca.ca("ca4-rehearsal-public-ca")
        self.public_ca.leaf("s3", "/CN=s3.us-east-1.amazonaws.com", "serverAuth", [f"IP:{S3_ADDR}"])
        self.edge_ca.ca("ca4-rehearsal-edge-api-ca")
        self.edge_ca.leaf("api", f"/CN={API_HOST}", "serverAuth", [f"IP:{API_HOST}"])
        for pki in (self.documentdb_ca, self.public_ca, self.edge_ca):
            for path in pki.dir.iterdir():
                path.chmod(0o600)

    def db_password(self) -> str:
        """The database user's password, made once (mode 600)."""
        path = self.dir / "db-password"
        if not path.exists():
            import secrets  # noqa: PLC0415

            self.dir.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as handle:
                handle.write(secrets.token_urlsafe(24))
        return path.read_text().strip()

    def tfvars(self) -> dict[str, object]:
        """The rehearsal root's variables that describe these stand-ins."""
        return {
            "aws_region": REGION,
            "db_username": DB_USER,
            "db_password": self.db_password(),
            "documentdb_host": DOCUMENTDB_ADDR,
            "documentdb_port": DOCUMENTDB_PORT,
            "documentdb_uri_options": URI_OPTIONS,
            "s3_bucket_name": BUCKET,
            "edge_api_host": API_HOST,
            "edge_api_ca_certificate_pem": self.edge_ca.path("ca.crt").read_text(),
        }

    # --- daemons ------------------------------------------------------------------------------

    def start(self) -> None:
        """Every stand-in, each once; waits until each answers."""
        self.ensure_certificates()
        d = self.daemons
        d.start("aws-holder", bastion.holder_argv(self.topology.aws_ns))
        d.wait_holder("aws-holder")
        self._firewall()
        self._documentdb()
        self._s3()
        imds = d.start(
            "imds",
            [sys.executable, "-m", "rehearsal.imds", "--listen", f"{IMDS_ADDR}:80", "--region", REGION],
            join="aws-holder",
        )
        d.wait(f"IMDS on {IMDS_ADDR}:80", lambda: self._port(IMDS_ADDR, 80), imds)
        self._load_balancer()

    def _firewall(self) -> None:
        """DocumentDB's security group: the nodes and their pods may connect, nobody else (the
        bastion included). Rules in this namespace only; they vanish with it."""
        ns = self.topology.aws_ns
        chain = "CA4-DOCUMENTDB"
        if in_ns(ns, "iptables", "-n", "-L", chain, check=False).returncode == 0:
            return
        in_ns(ns, "iptables", "-N", chain)
        for node in self.topology.nodes:
            in_ns(ns, "iptables", "-A", chain, "-s", node.addr, "-j", "ACCEPT")
            in_ns(ns, "iptables", "-A", chain, "-s", node.pod_cidr, "-j", "ACCEPT")
        in_ns(ns, "iptables", "-A", chain, "-p", "tcp", "-j", "REJECT", "--reject-with", "tcp-reset")
        port = str(DOCUMENTDB_PORT)
        # what arrives over the LAN (the namespace's own checks come over lo)
        in_ns(ns, "iptables", "-A", "INPUT", "-i", "eth0", "-p", "tcp", "--dport", port, "-j", chain)

    def _documentdb(self) -> None:
        binary = ferretdb.ensure_binary(StackConfig(state_dir=self.dir, cache_dir=self.cache))
        data, state = self.dir / "documentdb-data", self.dir / "documentdb-state"
        for folder in (data, state):
            folder.mkdir(parents=True, exist_ok=True)
        pki = self.documentdb_ca
        argv = [
            str(binary),
            "--handler=sqlite",
            f"--sqlite-url=file:{data}/",
            "--listen-addr=",
            f"--listen-tls={DOCUMENTDB_ADDR}:{DOCUMENTDB_PORT}",
            f"--listen-tls-cert-file={pki.path('documentdb.crt')}",
            f"--listen-tls-key-file={pki.path('documentdb.key')}",
            "--debug-addr=-",
            f"--state-dir={state}",
            "--telemetry=disable",
            "--log-level=warn",
            # SCRAM users (FerretDB 1.x's experimental authentication); the user is made on the
            # first start, into the empty data folder. No --listen-tls-ca-file: it would demand
            # client certificates, which DocumentDB does not.
            "--test-enable-new-auth",
            f"--setup-username={DB_USER}",
            f"--setup-password={self.db_password()}",
            "--setup-database=admin",
        ]
        proc = self.daemons.start("documentdb", argv, join="aws-holder")
        what = f"DocumentDB stand-in (FerretDB, TLS) on {DOCUMENTDB_ADDR}:{DOCUMENTDB_PORT}"
        self.daemons.wait(what, lambda: self._port(DOCUMENTDB_ADDR, DOCUMENTDB_PORT), proc)

    def _s3(self) -> None:
        pki = self.public_ca
        argv = [
            sys.executable,
            "-m",
            "moto.server",
            "-H",
            S3_ADDR,
            "-p",
            "443",
            "-c",
            str(pki.path("s3.crt")),
            "-k",
            str(pki.path("s3.key")),
        ]
        proc = self.daemons.start("s3", argv, join="aws-holder")
        self.daemons.wait(f"S3 stand-in (moto) on https://{S3_ADDR}", lambda: self._port(S3_ADDR, 443), proc)
        self._in_aws(
            "import boto3, sys\n"
            "s3 = boto3.client('s3', endpoint_url=sys.argv[1], region_name=sys.argv[2], verify=sys.argv[3],"
            " aws_access_key_id='rehearsal', aws_secret_access_key='rehearsal')\n"
            "names = [b['Name'] for b in s3.list_buckets().get('Buckets', [])]\n"
            "None if sys.argv[4] in names else s3.create_bucket(Bucket=sys.argv[4])\n",
            f"https://{S3_ADDR}",
            REGION,
            str(pki.path("ca.crt")),
            BUCKET,
        )

    def _load_balancer(self) -> None:
        """Traefik as the ALB: HTTPS listener with the API certificate, HTTPS to the targets
        (unverified, as an ALB does not verify its targets), health checks on /healthz."""
        config = self.dir / "load-balancer.json"
        targets = [{"url": f"https://{n.addr}:443"} for n in self.topology.nodes]
        dynamic = {
            "http": {
                "routers": {"api": {"rule": "PathPrefix(`/`)", "service": "nodes", "tls": {}}},
                "services": {
                    "nodes": {
                        "loadBalancer": {
                            "servers": targets,
                            "serversTransport": "targets",
                            "passHostHeader": True,
                        }
                    }
                },
                "serversTransports": {"targets": {"insecureSkipVerify": True}},
            },
            "tls": {
                "certificates": [
                    {
                        "certFile": str(self.edge_ca.path("api.crt")),
                        "keyFile": str(self.edge_ca.path("api.key")),
                    }
                ],
                "stores": {
                    "default": {
                        "defaultCertificate": {
                            "certFile": str(self.edge_ca.path("api.crt")),
                            "keyFile": str(self.edge_ca.path("api.key")),
                        }
                    }
                },
            },
        }
        config.write_text(json.dumps(dynamic, indent=2))
        from rehearsal.build import Builder  # noqa: PLC0415

        traefik = Builder(self.cache).binary("traefik")
        argv = [
            str(traefik),
            f"--entrypoints.https.address={API_HOST}:443",
            f"--providers.file.filename={config}",
            "--log.level=WARN",
            "--global.checknewversion=false",
            "--global.sendanonymoususage=false",
        ]
        proc = self.daemons.start("load-balancer", argv, join="bastion-holder")
        self.daemons.wait(
            f"the load balancer on https://{API_HOST}",
            lambda: self._port(API_HOST, 443, bastion_ns=True),
            proc,
        )

    # --- helpers ------------------------------------------------------------------------------

    def _port(self, host: str, port: int, bastion_ns: bool = False) -> bool:
        ns = self.topology.bastion_ns if bastion_ns else self.topology.aws_ns
        code = f"import socket; socket.create_connection(('{host}', {port}), timeout=1).close()"
        return in_ns(ns, sys.executable, "-c", code, check=False).returncode == 0

    def _in_aws(self, code: str, *args: str) -> None:
        done = in_ns(self.topology.aws_ns, sys.executable, "-c", code, *args, check=False)
        if done.returncode != 0:
            raise RehearsalError(f"in the AWS stand-ins' namespace: {done.stderr.strip()[-600:]}")


def documentdb_bundle(aws: Aws) -> bytes:
    """The CA bundle the image gets as global-bundle.pem (DOCUMENTDB_CA_BUNDLE_PEM_B64)."""
    return aws.documentdb_ca.path("ca.crt").read_bytes()
