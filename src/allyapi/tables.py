"""Imports every table model so ``SQLModel.metadata`` is complete (Alembic, tests)."""

from sqlmodel import SQLModel

from allyapi.allies.models import Ally
from allyapi.resources.models import Resource
from allyapi.training.models import TrainingCourse, TrainingRecord

metadata = SQLModel.metadata

__all__ = ["Ally", "Resource", "TrainingCourse", "TrainingRecord", "metadata"]
