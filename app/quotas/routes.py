"""The quotas capability: `api/v1/quotas`, `api/v1/me/quota`, `api/v1/quotas/check`."""

from fastapi import APIRouter

from hubkeeper.quotas.api import router as api_router

router = APIRouter()
router.include_router(api_router)
