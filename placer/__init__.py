"""Pure planning: (Fabric, ClusterState, jobs) -> placements. Not built yet (issue 3)."""
