"""What a Hugging Face model folder may say before transformers reads it.

transformers runs no code of a folder's unless asked (`trust_remote_code`, never set here), but
its JSON files can name other files: `auto_map` names Python modules, and keys such as
`tokenizer_file` or `vocab_file` are paths that the loader opens. A folder is refused if any of
them could reach outside it, so that a crafted config cannot make a worker read a file of the
host as a vocabulary.
"""

from __future__ import annotations

import json
from pathlib import Path, PurePosixPath
from typing import Any

from inference.ml.schema import InputError
from inference.ml.words import _

CONFIG_FILES = ("config.json", "tokenizer_config.json", "special_tokens_map.json", "generation_config.json",
                "preprocessor_config.json")

# where the folder was saved from: recorded by save_pretrained, never opened when loading from a folder
INFORMATIONAL = frozenset({"_name_or_path", "name_or_path"})


def _paths(value: Any, key: str = "") -> list[tuple[str, str]]:
    """(key, value) for every string under a key that names a file or folder."""
    if isinstance(value, dict):
        return [found for k, v in value.items() for found in _paths(v, str(k))]
    if isinstance(value, list):
        return [found for item in value for found in _paths(item, key)]
    if isinstance(value, str) and key.endswith(("_file", "_path", "_dir")) and key not in INFORMATIONAL:
        return [(key, value)]
    return []


def _outside(value: str) -> bool:
    path = PurePosixPath(value.replace("\\", "/"))
    return path.is_absolute() or ".." in path.parts or value.startswith("~") or ":" in value


def check_hf_folder(folder: Path) -> None:
    for name in CONFIG_FILES:
        path = folder / name
        if not path.is_file():
            continue
        try:
            document = json.loads(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise InputError(_('%(name)s is not valid JSON') % {"name": name}) from None
        if isinstance(document, dict) and ("auto_map" in document or document.get("trust_remote_code")):
            raise InputError(_('%(name)s asks for code of its own (auto_map); only architectures that transformers ships are accepted') % {"name": name})
        for key, value in _paths(document):
            if _outside(value):
                raise InputError(_('%(name)s names a file outside the model folder (%(key)s); every file it uses must be in the archive') % {"name": name, "key": key})
    for path in folder.rglob("*.py"):
        raise InputError(_('the archive holds Python code (%(name)s); model folders are data only') % {"name": path.name})
