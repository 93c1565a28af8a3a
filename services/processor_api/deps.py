"""FastAPI dependencies: the app's settings and publisher, and the bearer-token check."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, HTTPException, Request, status

from processor_api.auth import TokenVerifier
from processor_api.config import Settings
from processor_api.publishers import Publisher


# the dependencies are async on purpose: FastAPI runs plain `def` dependencies in a thread
# pool, which cost three thread hops per request for work that takes microseconds
async def get_settings_dep(request: Request) -> Settings:
    """The app's settings (set by ``create_app``)."""
    settings: Settings = request.app.state.settings
    return settings


async def get_publisher(request: Request) -> Publisher:
    """The app's publisher (Kafka in production, a fake in unit tests)."""
    publisher: Publisher = request.app.state.publisher
    return publisher


async def require_token(request: Request) -> None:
    """401 unless the request carries an accepted bearer token."""
    verifier: TokenVerifier = request.app.state.verifier
    if not verifier.verify(request.headers.get("authorization")):
        raise HTTPException(
            status_code=status.HTTP_401_UNAUTHORIZED,
            detail="missing or invalid bearer token",
            headers={"WWW-Authenticate": "Bearer"},
        )


SettingsDep = Annotated[Settings, Depends(get_settings_dep)]
PublisherDep = Annotated[Publisher, Depends(get_publisher)]
