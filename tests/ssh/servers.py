"""Small servers the SSH lab runs on edge0: a stand-in K3s API (HTTPS, GET /api/v1/nodes
from the installer stand-in's records) and TCP banners on the NodePorts the tunnels reach.
Both exit by themselves after --lifetime seconds.

    python servers.py api  --listen ADDR:PORT --cert C --key K --token T --records F --log F --lifetime S
    python servers.py echo --listen ADDR --ports P1,P2,... --log FILE --lifetime S
"""

from __future__ import annotations

import argparse
import json
import socketserver
import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


def nodes(records: Path) -> dict[str, object]:
    """A NodeList: one Ready node per --node-ip the installer stand-in recorded (latest install wins)."""
    latest: dict[str, dict[str, object]] = {}
    if records.exists():
        for line in records.read_text().splitlines():
            rec = json.loads(line)
            ip = next((a.split("=", 1)[1] for a in rec["argv"] if a.startswith("--node-ip=")), None)
            if ip:
                latest[ip] = rec
    items = []
    for ip, rec in sorted(latest.items()):
        env = rec["env"]
        assert isinstance(env, dict)
        items.append(
            {
                "metadata": {"name": f"lab-{ip.replace('.', '-')}"},
                "status": {
                    "addresses": [{"type": "InternalIP", "address": ip}],
                    "conditions": [{"type": "Ready", "status": "True"}],
                    "nodeInfo": {"kubeletVersion": env.get("INSTALL_K3S_VERSION")},
                },
            }
        )
    return {"kind": "NodeList", "apiVersion": "v1", "items": items}


def serve_api(args: argparse.Namespace) -> None:
    """HTTPS with the lab CA's certificate for 127.0.0.1; bearer token required."""
    log = Path(args.log)

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            with log.open("a") as f:
                f.write(
                    json.dumps(
                        {
                            "client": self.client_address[0],
                            "path": self.path,
                            "auth": self.headers.get("Authorization"),
                        }
                    )
                    + "\n"
                )
            if self.headers.get("Authorization") != f"Bearer {args.token}":
                self._send(401, {"kind": "Status", "code": 401})
            elif self.path.split("?")[0] == "/api/v1/nodes":
                self._send(200, nodes(Path(args.records)))
            else:
                self._send(404, {"kind": "Status", "code": 404})

        def _send(self, code: int, body: object) -> None:
            data = json.dumps(body).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *a: object) -> None:
            pass

    host, port = args.listen.rsplit(":", 1)
    server = ThreadingHTTPServer((host, int(port)), Handler)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(args.cert, args.key)
    server.socket = ctx.wrap_socket(server.socket, server_side=True)
    threading.Timer(args.lifetime, server.shutdown).start()
    server.serve_forever()


def serve_echo(args: argparse.Namespace) -> None:
    """On each port: send 'ca4-echo <port>' and the peer's address, then close."""
    log = Path(args.log)
    servers = []
    for port in (int(p) for p in args.ports.split(",")):

        class Banner(socketserver.BaseRequestHandler):
            listen_port = port

            def handle(self) -> None:
                with log.open("a") as f:
                    f.write(json.dumps({"port": self.listen_port, "client": self.client_address[0]}) + "\n")
                self.request.sendall(f"ca4-echo {self.listen_port}\n".encode())

        server = socketserver.ThreadingTCPServer((args.listen, port), Banner)
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
    stop = threading.Event()
    stop.wait(args.lifetime)
    for server in servers:
        server.shutdown()


def main() -> None:
    """Command line."""
    parser = argparse.ArgumentParser()
    parser.add_argument("kind", choices=("api", "echo"))
    parser.add_argument("--listen", required=True)
    parser.add_argument("--ports", default="")
    parser.add_argument("--cert")
    parser.add_argument("--key")
    parser.add_argument("--token")
    parser.add_argument("--records")
    parser.add_argument("--log", required=True)
    parser.add_argument("--lifetime", type=float, default=600)
    args = parser.parse_args()
    serve_api(args) if args.kind == "api" else serve_echo(args)


if __name__ == "__main__":
    main()
