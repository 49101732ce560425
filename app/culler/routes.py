"""The culler capability: `api/v1/culler*` (the backtest included), `api/v1/culls`,
`api/v1/exemptions*`, a user's own servers and keeps (`api/v1/me/servers`, `.../keep`)
and the Culler and Culls pages."""

from fastapi import APIRouter

from hubkeeper.culler.api import router as api_router
from hubkeeper.culler.backtest_api import router as backtest_router
from hubkeeper.culler.mine import router as mine_router
from hubkeeper.culler.pages import router as pages_router

router = APIRouter()
router.include_router(api_router)
router.include_router(backtest_router)
router.include_router(pages_router)
router.include_router(mine_router)
