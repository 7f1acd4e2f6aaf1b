"""The layers of ARCHITECTURE.md, checked: no forbidden import and no import cycle.

The import graph comes from grimp (the engine of import-linter), which reads every import in a
module, the ones inside functions included, so a lazy import cannot hide a forbidden edge.
"""

from __future__ import annotations

from collections.abc import Iterator

import grimp
import pytest

PACKAGES = ("ledger", "projections", "cli", "esdblite", "bench")

# The pure domain: the decider, its events and commands, money, ids, errors.
DOMAIN = (
    "ledger.accounts",
    "ledger.currency",
    "ledger.errors",
    "ledger.money",
    "ledger.streams",
    "ledger.transfers",
)
# The write side's application and adapters, which the domain and the read side never import.
WRITE_SIDE_SERVICES = (
    "ledger.audit",
    "ledger.eventstore",
    "ledger.handler",
    "ledger.memory_store",
    "ledger.pipeline",
    "ledger.service",
    "ledger.transfer_manager",
    "ledger.transfer_process",
    "ledger.transfer_store",
    "ledger.writemodel",
)
IO_LIBRARIES = ("esdbclient", "grpc", "psycopg", "psycopg_pool", "typer", "rich")

# (who, may not import, why)
RULES: list[tuple[tuple[str, ...], tuple[str, ...], str]] = [
    (
        DOMAIN,
        ("projections", "cli", "esdblite", "bench", *WRITE_SIDE_SERVICES, *IO_LIBRARIES),
        "the domain imports nothing outward",
    ),
    (
        ("projections",),
        ("cli", "bench", "esdblite", *WRITE_SIDE_SERVICES),
        "the read side knows the events, not the write side's handler or adapter",
    ),
    (
        ("ledger",),
        ("projections", "cli", "bench", "esdblite"),
        "the write side knows nothing of readers, entry points or the server",
    ),
    (
        ("esdblite",),
        ("ledger", "projections", "cli", "bench"),
        "the event store server stands alone",
    ),
    (
        ("bench",),
        ("cli",),
        "nothing imports the CLI: it is the composition root",
    ),
]


@pytest.fixture(scope="module")
def graph() -> grimp.ImportGraph:
    return grimp.build_graph(*PACKAGES, include_external_packages=True, cache_dir=None)


@pytest.fixture(scope="module")
def runtime_graph() -> grimp.ImportGraph:
    return grimp.build_graph(*PACKAGES, exclude_type_checking_imports=True, cache_dir=None)


def _modules(graph: grimp.ImportGraph, roots: tuple[str, ...]) -> Iterator[str]:
    for root in roots:
        if root in graph.modules:
            yield root
            yield from graph.find_descendants(root) if not graph.is_module_squashed(root) else ()


def _forbidden_imports(
    graph: grimp.ImportGraph, who: tuple[str, ...], forbidden: tuple[str, ...]
) -> list[str]:
    targets = set(_modules(graph, forbidden))
    found = []
    for module in sorted(set(_modules(graph, who))):
        for imported in sorted(graph.find_modules_directly_imported_by(module) & targets):
            lines = graph.get_import_details(importer=module, imported=imported)
            where = ", ".join(str(d["line_number"]) for d in lines)
            found.append(f"{module} imports {imported} (line {where})")
    return found


@pytest.mark.parametrize(("who", "forbidden", "why"), RULES, ids=[r[2] for r in RULES])
def test_no_layer_imports_what_it_may_not(
    graph: grimp.ImportGraph, who: tuple[str, ...], forbidden: tuple[str, ...], why: str
) -> None:
    assert _forbidden_imports(graph, who, forbidden) == [], why


def test_every_domain_module_exists(graph: grimp.ImportGraph) -> None:
    """The rules name real modules: a rename must update them, not silently empty them."""
    named = (*DOMAIN, *WRITE_SIDE_SERVICES)
    assert [m for m in named if m not in graph.modules] == []


def _cycles(graph: grimp.ImportGraph) -> list[str]:
    cycles = set()
    for module in graph.modules:
        for imported in graph.find_modules_directly_imported_by(module):
            chain = graph.find_shortest_chain(importer=imported, imported=module)
            if chain is not None:
                cycles.add(" -> ".join((module, *chain)))
    return sorted(cycles)


def test_no_import_cycle(runtime_graph: grimp.ImportGraph) -> None:
    assert _cycles(runtime_graph) == []


def test_an_import_cycle_is_caught() -> None:
    graph = grimp.build_graph(*PACKAGES, exclude_type_checking_imports=True, cache_dir=None)
    graph.add_import(importer="ledger.accounts.events", imported="ledger.handler")
    assert any(c.startswith("ledger.accounts.events -> ledger.handler") for c in _cycles(graph))


def test_a_forbidden_import_is_caught() -> None:
    """The check itself: an edge from the domain to the CLI is reported, with its line."""
    graph = grimp.build_graph(*PACKAGES, include_external_packages=True, cache_dir=None)
    graph.add_import(
        importer="ledger.accounts.decider", imported="cli.main", line_number=1, line_contents="x"
    )
    assert _forbidden_imports(graph, DOMAIN, ("cli",)) == [
        "ledger.accounts.decider imports cli.main (line 1)"
    ]
