"""The console capability: the users API and the users pages."""

from fastapi import APIRouter

from hubkeeper.console.api import router as api_router
from hubkeeper.console.pages import router as pages_router
from hubkeeper.console.spawn_reports import router as spawn_reports_router

router = APIRouter()
router.include_router(api_router)
router.include_router(pages_router)
router.include_router(spawn_reports_router)
