"""Trivial sandbox child for ``kernel_eval_throughput.py``: start-up cost only.

``{"torch": false}``: read the payload, answer (a bare interpreter).
``{"torch": true}``: also import torch and run one tiny op (what every kernel evaluation pays).
"""

import json
import sys

payload = json.load(sys.stdin)
if payload.get("torch"):
    import torch

    torch.set_num_threads(1)
    payload["sum"] = float(torch.ones(8).sum())
print(json.dumps({"ok": True, **payload}))
