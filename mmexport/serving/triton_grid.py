"""A Triton Python-backend model that derives a native-resolution graph's inputs from what the
processor returns (image_grid_thw, image_sizes, padding crops), as the runtime does. Copied as
1/model.py into the repository's `NAME_grid` entry; its derivation is read from the entry's own
config (parameter `grid`). Triton's Python environment needs mmexport (numpy only is used)."""

from __future__ import annotations

import json

import numpy as np


class TritonPythonModel:
    def initialize(self, args):
        from mmexport.derivations import Derived

        config = json.loads(args["model_config"])
        self.grid = Derived.from_json(json.loads(config["parameters"]["derivation"]["string_value"]))
        self.inputs = [i["name"] for i in config["input"]]

    def execute(self, requests):
        import triton_python_backend_utils as pb_utils

        from mmexport.errors import InputError

        responses = []
        for request in requests:
            feeds = {name: pb_utils.get_input_tensor_by_name(request, name).as_numpy() for name in self.inputs}
            try:
                derived = self.grid(feeds)
            except InputError as exc:  # one clear error to this client; the others are served
                responses.append(pb_utils.InferenceResponse(error=pb_utils.TritonError(str(exc))))
                continue
            tensors = [pb_utils.Tensor(spec.name, np.ascontiguousarray(derived[spec.name].astype(spec.dtype))) for spec in self.grid.inputs]
            responses.append(pb_utils.InferenceResponse(output_tensors=tensors))
        return responses
