"""The framework's own cost: POST /metadata that reads the body and answers 202, nothing else.

Served with exactly the Processor API's uvicorn settings, so the benchmark's ratio
(API / empty handler) is the cost of what CA4 adds: auth, validation, serialization,
the wait for Kafka's ack, metrics and the log line.
"""

from __future__ import annotations

import argparse

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

app = FastAPI()


@app.post("/metadata", status_code=202)
async def metadata(request: Request) -> JSONResponse:
    """Read the body and accept it."""
    await request.body()
    return JSONResponse({"status": "accepted"}, status_code=202)


def main(argv: list[str] | None = None) -> int:
    """Entry point."""
    p = argparse.ArgumentParser(prog="python -m tests.bench.empty_app", description=__doc__)
    p.add_argument("--port", type=int, required=True)
    args = p.parse_args(argv)
    # the same settings as processor_api.__main__
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_config=None, access_log=False, server_header=False)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
