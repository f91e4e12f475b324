"""Models: build catalogue backbones with a new head, resolve MODEL arguments (backbone, registry
reference, weights file), harness's safetensors weights files, and importing state dicts.

``from harness.models import replace_head`` is what a plugin's builder uses to resize a
pretrained head. Importing this package does not import torch.
"""

from harness.models.build import (
    build_backbone,
    build_model,
    count_flops,
    count_params,
    get_submodule,
    head_in_features,
    head_out_features,
    replace_head,
    set_submodule,
    weights_cache_path,
)
from harness.models.checkpoint import load_state_dict_file
from harness.models.sources import ModelSource, resolve_model

__all__ = ["ModelSource", "build_backbone", "build_model", "count_flops", "count_params", "get_submodule",
           "head_in_features", "head_out_features", "load_state_dict_file", "replace_head", "resolve_model",
           "set_submodule", "weights_cache_path"]
