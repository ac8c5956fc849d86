"""A worker resolves its libraries' lazy names in its main thread before its threads serve tasks."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from tests.worker import ROOT

PROBE = """
import json, os, sys
import django
django.setup()
import transformers
from celery.signals import worker_init
import inference.tasks  # noqa: F401  (what autodiscovery imports before the signal is sent)
from inference.runtime import TRANSFORMERS_NAMES, WORKER_LIBRARIES
# the modules that define the names: once imported whole, reading a name is a plain attribute lookup
modules = ["transformers." + transformers._class_to_module[name] for name in TRANSFORMERS_NAMES]
before = [name for name, module in zip(TRANSFORMERS_NAMES, modules) if module in sys.modules]
worker_init.send(sender=None)
after = [name for name, module in zip(TRANSFORMERS_NAMES, modules) if module in sys.modules]
print(json.dumps({"before": before, "after": after, "names": list(TRANSFORMERS_NAMES),
                  "libraries": [name for name in WORKER_LIBRARIES if name in sys.modules]}))
"""


def test_worker_init_resolves_transformers_names_before_threads_use_them() -> None:
    # transformers 5 imports a name's module on first use; two threads doing so at once failed with
    # "cannot import name 'AutoTokenizer' from 'transformers'" on a threads-pool worker.
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "portal.settings", "SECRET_KEY": os.environ.get("SECRET_KEY", "x" * 50)}
    done = subprocess.run([sys.executable, "-c", PROBE], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert seen["before"] == []  # a fresh process: nothing resolved yet, so the signal did the work
    assert seen["after"] == seen["names"]
    assert set(seen["libraries"]) == {"torch", "numpy", "transformers", "peft", "opacus", "shap", "onnx", "onnxruntime"}
