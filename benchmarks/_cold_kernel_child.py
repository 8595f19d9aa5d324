"""Cold kernel evaluation for ``kernel_eval_throughput.py``: the issue-8 design's cost structure.

One fresh ``python -I`` per evaluation that imports torch, execs the reference and the
candidate in its own process, runs the correctness trials and the cost model, and prints one
JSON line (what ``turngym.envs.kernel.evaluate`` did before the grader moved out of the
candidate's process). Payload: ``{"reference", "candidate", "seeds"}``.
"""

import json
import sys

import torch

from turngym.envs.kernel.cost import measure_with_output

torch.set_num_threads(1)
payload = json.load(sys.stdin)
ref_ns, new_ns = {}, {}
exec(payload["reference"], ref_ns)  # noqa: S102
exec(payload["candidate"], new_ns)  # noqa: S102
init = ref_ns["get_init_inputs"]()
torch.manual_seed(42)
ref = ref_ns["Model"](*init).eval()
torch.manual_seed(42)
new = new_ns["ModelNew"](*init).eval()
ok = True
for i, seed in enumerate(payload["seeds"]):
    inputs = ref_ns["get_inputs"](torch.Generator().manual_seed(seed))
    with torch.no_grad():
        expected = ref(*inputs)
    if i == 0:
        ref_cost, _ = measure_with_output(ref, inputs)
        new_cost, got = measure_with_output(new, inputs)
    else:
        with torch.no_grad():
            got = new(*inputs)
    ok = ok and torch.allclose(expected, got, atol=1e-4, rtol=1e-4)
print(json.dumps({"ok": bool(ok), "speedup": ref_cost.cost_us / new_cost.cost_us}))
