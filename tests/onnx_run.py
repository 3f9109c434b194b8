"""Runs an exported model in onnxruntime on raw float32 images, for tests/interop.rs.

    python3 tests/onnx_run.py MODEL.onnx IMAGES.f32 N,H,W,C nhwc|nchw

prints one JSON object: the probabilities, the class names from the metadata, the doc string,
and the input's name and shape as the model declares them.
"""
import json
import sys

import numpy as np
import onnxruntime as ort

model, data, shape, layout = sys.argv[1:5]
session = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
x = np.fromfile(data, dtype="<f4").reshape([int(d) for d in shape.split(",")])
if layout == "nchw":
    x = x.transpose(0, 3, 1, 2).copy()
(p,) = session.run(None, {session.get_inputs()[0].name: x})
meta = session.get_modelmeta()
print(json.dumps({
    "probabilities": p.tolist(),
    "classes": json.loads(meta.custom_metadata_map["classes"]),
    "layout": meta.custom_metadata_map["input_layout"],
    "doc": meta.description,
    "input": session.get_inputs()[0].name,
    "input_shape": session.get_inputs()[0].shape,
    "output": session.get_outputs()[0].name,
}))
