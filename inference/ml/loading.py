"""One model built at a time in a process.

transformers builds a model by patching process-wide state for the while (torch.nn.init's functions,
torch.linspace, the flags that skip initialising weights: transformers/initialization.py) and undoing it
after. Two threads that build models at once (a worker's pool is threads) can therefore leave weights of
one uninitialised or on the meta device: measured with transformers 5.23, SmolLM2's tied lm_head.weight
left on the meta device in 4 of 9 loads made beside a MiniLM load, and CI's schemathesis run had two
compressions fail with "Cannot copy out of meta tensor". A build takes seconds and happens once per model
and process (inference/ml/cache.py); serving is never held by this lock.
"""

from __future__ import annotations

import threading

BUILDING = threading.RLock()  # re-entrant: a loader may call another (an int8 model built from its config)
