"""The logs capability: `api/v1/users/{name}/logs[/stream]` and the log pages."""

from fastapi import APIRouter

from hubkeeper.logs.api import router as api_router
from hubkeeper.logs.pages import router as pages_router

router = APIRouter()
router.include_router(api_router)
router.include_router(pages_router)
