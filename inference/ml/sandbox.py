"""Checks an uploaded model in a child process with limits, never in the web process.

The child (inference/ml/probe.py) gets an environment of its own, with none of the portal's
variables (no DATABASE_URL, SECRET_KEY, storage keys), a limit on its address space, its CPU
time and the size of a file it may write, and its own process group, which is killed whole when
the wall-clock limit passes. Its output is one line of JSON that the worker reads back; whatever
else it prints stays in the worker's log, never in a message to the user.
"""

from __future__ import annotations

import json
import logging
import os
import resource
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from inference.ml.predictors import ArtifactInfo
from inference.ml.schema import InputError
from inference.ml.words import _

logger = logging.getLogger("steward.inference")

# What the child needs to start Python and find the installed packages, and nothing else.
PASSED_THROUGH = ("PATH", "LANG", "LC_ALL", "TZ", "VIRTUAL_ENV", "OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")


@dataclass(frozen=True)
class Limits:
    seconds: float
    memory_bytes: int
    file_bytes: int = 16 * 2**20


class CheckTimedOut(InputError):
    pass


def child_environment(home: Path) -> dict[str, str]:
    env = {name: os.environ[name] for name in PASSED_THROUGH if name in os.environ}
    env.update({
        "HOME": str(home), "TMPDIR": str(home), "HF_HOME": str(home / "hf"), "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1", "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false",
        "PYTHONNOUSERSITE": "1", "PYTHONDONTWRITEBYTECODE": "1",
    })
    return env


def _limit(limits: Limits) -> Any:
    def apply() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (limits.memory_bytes, limits.memory_bytes))
        cpu = int(limits.seconds) + 5  # the wall-clock limit comes first; this one backs it up
        resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 5))
        resource.setrlimit(resource.RLIMIT_FSIZE, (limits.file_bytes, limits.file_bytes))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))

    return apply


def inspect_in_sandbox(task: str, folder: Path, limits: Limits) -> ArtifactInfo:
    """Runs the probe on `folder` within `limits`.

    Raises:
        InputError: the artifact is refused, with the sentence that says why (never the model's output).
        CheckTimedOut: the check ran past its time.
    """
    return _probe([task, str(folder)], folder.name, limits)


def convert_gguf_in_sandbox(source: Path, out: Path, limits: Limits) -> ArtifactInfo:
    """Turns a single GGUF file into a Hugging Face folder at `out` and checks it, within `limits`
    (the file is parsed in the child: a malformed one fails there, not in the worker)."""
    return _probe(["--gguf", str(source), str(out)], source.name, limits)


def _probe(arguments: list[str], label: str, limits: Limits) -> ArtifactInfo:
    root = Path(__file__).resolve().parents[2]  # the probe's package, importable whatever the cwd
    with tempfile.TemporaryDirectory(prefix="steward-probe-") as home:
        env = child_environment(Path(home))
        env["PYTHONPATH"] = str(root)
        child = subprocess.Popen(
            [sys.executable, "-s", "-m", "inference.ml.probe", *arguments],
            cwd=home, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            preexec_fn=_limit(limits), start_new_session=True,
        )
        try:
            out, err = child.communicate(timeout=limits.seconds)
        except subprocess.TimeoutExpired:
            os.killpg(child.pid, signal.SIGKILL)
            child.communicate()
            raise CheckTimedOut(
                _('the model did not load and answer an example within %(seconds)s seconds') % {"seconds": f"{limits.seconds:g}"}
            ) from None
        finally:
            if child.poll() is None:
                os.killpg(child.pid, signal.SIGKILL)
                child.wait()
    if err:
        logger.info("model check of %s wrote to stderr: %s", label, err.decode(errors="replace")[-2000:])
    return _verdict(child.returncode, out)


def _verdict(returncode: int, out: bytes) -> ArtifactInfo:
    lines = out.decode(errors="replace").strip().splitlines()
    try:
        verdict = json.loads(lines[-1]) if lines else {}
    except json.JSONDecodeError:
        verdict = {}
    if "info" in verdict:
        return ArtifactInfo(**verdict["info"])
    if "refused" in verdict:
        raise InputError(str(verdict["refused"]))
    if returncode in (-signal.SIGKILL, -signal.SIGXCPU):
        raise CheckTimedOut(_('the model used more CPU time than a check may'))
    # killed by the memory limit (a failed allocation ends in an abort) or crashed in native code
    raise InputError(_('the model could not be loaded and run within the memory a check may use (%(value)s)') % {"value": 'exit ' + str(returncode) if returncode >= 0 else 'signal ' + str(-returncode)})
