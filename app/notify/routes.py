"""The notifications capability: `api/v1/notifications` and the Notifications page."""

from fastapi import APIRouter

from hubkeeper.notify.api import router as api_router
from hubkeeper.notify.pages import router as pages_router

router = APIRouter()
router.include_router(api_router)
router.include_router(pages_router)
