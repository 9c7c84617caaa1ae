"""The same scoring as ``pynima serve`` on LitServe, for bench/serve_load.py's comparison of the two stacks
(docs/serving.md): multipart field ``file`` to POST /predict, LitServe's own dynamic batching. Not part of pynima.

    python bench/litserve_app.py --port 8001 [--max-batch 32] [--batch-timeout 0.005]
"""

from __future__ import annotations

import argparse

import litserve as ls
import numpy as np

from pynima.images import decode_rgb
from pynima.scoring.models import load
from pynima.scoring.preprocess import crops


class NimaAPI(ls.LitAPI):
    def setup(self, device):
        self.scorer = load()

    def decode_request(self, request):
        upload = request["file"]
        return crops(decode_rgb(upload.file.read(), upload.filename or "image"), "centre")

    def batch(self, inputs):
        return inputs  # a list of per-image crops: Scorer.distributions averages each image's crops

    def predict(self, x):
        return self.scorer.distributions(x if isinstance(x, list) else [x])

    def unbatch(self, output):
        return list(output)

    def encode_response(self, p):
        p = np.asarray(p).reshape(-1)
        k = np.arange(len(p))
        return {"mean": float((p * k).sum()), "distribution": [float(v) for v in p]}


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=8001)
    parser.add_argument("--max-batch", type=int, default=32)
    parser.add_argument("--batch-timeout", type=float, default=0.005)
    args = parser.parse_args()
    api = NimaAPI(max_batch_size=args.max_batch, batch_timeout=args.batch_timeout)
    ls.LitServer(api, accelerator="cpu").run(port=args.port, host="127.0.0.1", generate_client_file=False)
