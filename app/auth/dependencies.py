"""STUB"""

from fastapi import Request

from app.auth.principal import Principal


async def require_reader(request: Request) -> Principal:
    raise NotImplementedError


async def require_admin(request: Request) -> Principal:
    raise NotImplementedError
