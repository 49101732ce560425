"""The history capability: `api/v1/sessions`, `api/v1/usage` and the history page."""

from fastapi import APIRouter

from hubkeeper.history.api import router as api_router
from hubkeeper.history.pages import router as pages_router

router = APIRouter()
router.include_router(api_router)
router.include_router(pages_router)
