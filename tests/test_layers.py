"""Imports point down the layers of ARCHITECTURE.md: a module never imports one of a layer above it.

Every import counts, also those inside functions (grimp reads them all). Each module's layer is
that of its package, except that an app's presentation (its API views, pages, URLs, commands) sits
at the top with the project shell: a service may be used by any view, a view by none of them.
"""

from __future__ import annotations

import grimp
import pytest

PRESENTATION = {"apis", "urls", "ui", "views", "management", "exports_ui"}
SHELL = {"portal.settings", "portal.urls", "portal.celery", "portal.ui", "portal.beat", "portal.health",
         "portal.middleware", "portal.tasks", "portal.apps", "portal.wsgi", "portal.asgi", "portal.gunicorn_worker",
         "portal.management", "portal.static", "portal.templatetags", "portal.formats", "audit.console"}
ROOTS = {"portal", "audit", "inference"}  # the packages' own __init__ modules
# bottom first: what a layer may import is itself and what is below it
LAYERS = [
    ("platform", ["portal.platform"]),
    ("audit log", ["audit.log"]),
    ("accounts and jobs", ["portal.accounts", "portal.jobs"]),
    ("inference", ["inference"]),
    ("governance", ["audit.fairness", "audit.exports"]),
    ("web kit", ["portal.web"]),
]
TOP = len(LAYERS)


def layer_of(module: str) -> int:
    parts = module.split(".")
    if PRESENTATION & set(parts[1:]):
        return TOP
    best, depth = TOP, -1
    for number, (_, packages) in enumerate(LAYERS):
        for package in packages:
            if (module == package or module.startswith(package + ".")) and package.count(".") > depth:
                best, depth = number, package.count(".")
    if depth < 0 and module not in ROOTS and not any(module == s or module.startswith(s + ".") for s in SHELL):
        raise AssertionError(f"{module} belongs to no layer: add it to tests/test_layers.py and ARCHITECTURE.md")
    return best


def name(number: int) -> str:
    return LAYERS[number][0] if number < TOP else "presentation and shell"


def upward_imports(graph: grimp.ImportGraph) -> list[str]:
    found = []
    for module in sorted(graph.modules):
        low = layer_of(module)
        for imported in sorted(graph.find_modules_directly_imported_by(module)):
            high = layer_of(imported)
            if high > low:
                lines = graph.get_import_details(importer=module, imported=imported)
                where = ", ".join(str(d["line_number"]) for d in lines) or "?"
                found.append(f"{module} ({name(low)}) imports {imported} ({name(high)}) at line {where}")
    return found


@pytest.fixture(scope="module")
def graph() -> grimp.ImportGraph:
    return grimp.build_graph("portal", "inference", "audit", cache_dir=None)


def test_imports_only_point_down(graph) -> None:
    assert upward_imports(graph) == []


def test_the_check_sees_an_import_that_points_up() -> None:
    graph = grimp.ImportGraph()
    for module in ("portal.platform.cache", "inference.services.jobs", "inference.apis"):
        graph.add_module(module)
    graph.add_import(importer="portal.platform.cache", imported="inference.services.jobs", line_number=3,
                     line_contents="from inference.services import jobs")
    graph.add_import(importer="inference.services.jobs", imported="inference.apis", line_number=9,
                     line_contents="from inference import apis")
    assert upward_imports(graph) == [
        "inference.services.jobs (inference) imports inference.apis (presentation and shell) at line 9",
        "portal.platform.cache (platform) imports inference.services.jobs (inference) at line 3",
    ]
