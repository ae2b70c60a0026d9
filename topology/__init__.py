"""Fabric model, inventory files and Slurm topology formats. Imports nothing else of ours."""
from .build import build_fabric
from .fabric import Fabric, NodeState, Switch
from .inventory import dump_inventory, load_inventory, load_inventory_text
from .problems import BackendError, InventoryError, PlacerError, Problem, RequestError
from .spec import FabricSpec, NodeType
from .state import ClusterState

__all__ = [
    "BackendError", "ClusterState", "Fabric", "FabricSpec", "InventoryError", "NodeState", "NodeType",
    "PlacerError", "Problem", "RequestError", "Switch", "build_fabric", "dump_inventory", "load_inventory",
    "load_inventory_text",
]
