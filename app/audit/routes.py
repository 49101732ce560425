"""The audit capability: `api/v1/audit` and the audit page."""

from fastapi import APIRouter

from hubkeeper.audit.api import router as api_router
from hubkeeper.audit.pages import router as pages_router

router = APIRouter()
router.include_router(api_router)
router.include_router(pages_router)
