"""The check of one unpacked upload, run in a child process of a worker (inference/ml/sandbox.py).

`python -m inference.ml.probe TASK FOLDER` prints one JSON line: the artifact's description, or
the sentence that says why it is refused. `python -m inference.ml.probe --gguf FILE FOLDER` first
turns a single GGUF file into a Hugging Face folder (parsing the file is the untrusted part), then
checks that folder as a generative model. It imports no Django and reads no setting: the child is
started without the portal's environment.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path


def main(task: str, folder: str) -> int:
    from inference.ml.predictors import inspect_artifact
    from inference.ml.schema import InputError

    try:
        if task == "--gguf":
            return convert_gguf(Path(folder), Path(sys.argv[3]))
        info = inspect_artifact(task, Path(folder))
    except InputError as exc:
        print(json.dumps({"refused": str(exc)}))
        return 0
    except MemoryError:
        print(json.dumps({"refused": "the model needs more memory than a check may use"}))
        return 0
    print(json.dumps({"info": dataclasses.asdict(info)}))
    return 0


def convert_gguf(source: Path, out: Path) -> int:
    from inference.ml import gguf
    from inference.ml.predictors import inspect_artifact

    try:
        gguf.convert(source, out)
    except MemoryError:
        raise
    except Exception as exc:  # a malformed or unsupported file fails in many ways inside gguf/transformers
        print(json.dumps({"refused": f"the GGUF file could not be read as a generative model ({type(exc).__name__})"}))
        return 0
    info = inspect_artifact("text-generation", out)
    print(json.dumps({"info": dataclasses.asdict(info)}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
