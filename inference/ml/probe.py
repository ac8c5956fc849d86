"""The check of one unpacked upload, run in a child process of a worker (inference/ml/sandbox.py).

`python -m inference.ml.probe TASK FOLDER` prints one JSON line: the artifact's description, or
the sentence that says why it is refused. It imports no Django and reads no setting: the child
is started without the portal's environment.
"""

from __future__ import annotations

import dataclasses
import json
import sys


def main(task: str, folder: str) -> int:
    from pathlib import Path

    from inference.ml.predictors import inspect_artifact
    from inference.ml.schema import InputError

    try:
        info = inspect_artifact(task, Path(folder))
    except InputError as exc:
        print(json.dumps({"refused": str(exc)}))
        return 0
    except MemoryError:
        print(json.dumps({"refused": "the model needs more memory than a check may use"}))
        return 0
    print(json.dumps({"info": dataclasses.asdict(info)}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
