"""The console capability: the users API and the users pages."""

from fastapi import APIRouter

from hubkeeper.console.api import router as api_router
from hubkeeper.console.pages import router as pages_router
from hubkeeper.console.user_page import router as user_page_router

router = APIRouter()
router.include_router(api_router)
router.include_router(pages_router)
# after the pages: `users/rows` and `users/stop-all` are matched before `users/{name}`
router.include_router(user_page_router)
