"""The lockdown capability: `api/v1/lockdown*` and the lockdown page."""

from fastapi import APIRouter

from hubkeeper.lockdown.api import router as api_router
from hubkeeper.lockdown.pages import router as pages_router

router = APIRouter()
router.include_router(api_router)
router.include_router(pages_router)
