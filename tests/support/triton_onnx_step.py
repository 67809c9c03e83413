"""Test-only: stands in for Triton's onnxruntime backend (PyTriton's tritonserver ships only the
Python backend) by running the entry's own 1/model.onnx with ONNX Runtime inside the Python
backend, so the real server can run mmexport's ensemble end to end."""

import json
from pathlib import Path

import numpy as np
import onnxruntime as ort


class TritonPythonModel:
    def initialize(self, args):
        folder = Path(args["model_repository"]) / args["model_version"]
        self.session = ort.InferenceSession(str(folder / "model.onnx"))
        config = json.loads(args["model_config"])
        self.inputs, self.outputs = [i["name"] for i in config["input"]], [o["name"] for o in config["output"]]

    def execute(self, requests):
        import triton_python_backend_utils as pb_utils

        responses = []
        for request in requests:
            feeds = {name: pb_utils.get_input_tensor_by_name(request, name).as_numpy() for name in self.inputs}
            out = self.session.run(self.outputs, feeds)
            responses.append(pb_utils.InferenceResponse([pb_utils.Tensor(n, np.ascontiguousarray(v)) for n, v in zip(self.outputs, out)]))
        return responses
