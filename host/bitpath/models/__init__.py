"""Network capture (torch.fx) and built-in recipes."""

from bitpath.models.capture import ModelCaptureError, capture
from bitpath.models.graph import GraphError, GraphSpec, Node, tensor_formats
from bitpath.models.recipes import RECIPES, build

__all__ = ["RECIPES", "GraphError", "GraphSpec", "ModelCaptureError", "Node", "build", "capture", "tensor_formats"]
