"""Pure planning: (Fabric, ClusterState, jobs, config) -> placements. Imports only topology/ (and ortools, numpy)."""
from .engine import PlanResult, place_one, plan
from .jobs import JobRequest
from .types import Placement, PlannerConfig

__all__ = ["JobRequest", "PlanResult", "Placement", "PlannerConfig", "place_one", "plan"]
