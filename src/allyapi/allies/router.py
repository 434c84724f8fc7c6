"""Placeholder router; filled in by the domain's implementation."""

from fastapi import APIRouter

router = APIRouter()
me_router = APIRouter()
