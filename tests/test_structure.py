"""The package layout stays as docs/design.md says: imports one way (orchestrator -> evaluation ->
condense, and inside orchestrator from the command lines down to the sweep file), no import cycles
(type-only imports count), no private name imported across modules, and the docs the code points to
are in the repository. Read from the source (ast), so these run in milliseconds."""
import ast
import re

import pytest

from conftest import REPO

PACKAGES = ("condense", "evaluation", "orchestrator")
LAYER = {"condense": 0, "evaluation": 1, "orchestrator": 2}
# Entry points may hand over to a layer above: `python -m condense` runs the seed CLI, `python -m
# evaluation` the set evaluation (both in orchestrator).
ENTRY_POINTS = {"condense.__main__", "evaluation.__main__"}
# orchestrator's wings, from the top down: a wing imports only those below it.
WINGS = ("cli", "driver", "trial", "results", "sweep")
ORCHESTRATOR_ENTRY_POINTS = {f"orchestrator.{m}" for m in ("run", "tables", "plots", "report")}


def modules() -> dict[str, ast.Module]:
    found = {}
    for package in PACKAGES:
        for path in sorted((REPO / package).rglob("*.py")):
            name = ".".join(path.relative_to(REPO).with_suffix("").parts).removesuffix(".__init__")
            found[name] = ast.parse(path.read_text(), str(path))
            found[name].is_package = path.name == "__init__.py"  # its relative imports start at itself
    return found


def imports(name: str, tree: ast.Module) -> list[tuple[str, list[str]]]:
    """(module, names imported from it) per import, ``if TYPE_CHECKING:`` ones included: a type-only
    import ties two modules as much as any other."""
    package = name if getattr(tree, "is_package", False) else name.rsplit(".", 1)[0]
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(a.name, []) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parts + ([node.module] if node.module else []))
            out.append((base, [a.name for a in node.names]))
    return out


def graph(mods) -> dict[str, set[str]]:
    edges = {}
    for name, tree in mods.items():
        targets = set()
        for base, names in imports(name, tree):
            targets |= {t for t in (base, *(f"{base}.{n}" for n in names)) if t in mods and t != name}
        edges[name] = targets
    return edges


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    found, done = [], set()

    def visit(node, stack):
        for nxt in sorted(edges[node]):
            if nxt in stack:
                found.append(stack[stack.index(nxt):] + [nxt])
            elif nxt not in done:
                visit(nxt, stack + [nxt])
        done.add(node)

    for node in sorted(edges):
        if node not in done:
            visit(node, [node])
    return found


def test_no_import_cycles():
    assert cycles(graph(modules())) == []


def test_the_cycle_finder_finds_one():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == [["a", "b", "c", "a"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_imports_go_one_way():
    wrong = []
    for name, tree in modules().items():
        if name in ENTRY_POINTS:
            continue
        for base, _ in imports(name, tree):
            top = base.split(".")[0]
            if top in LAYER and LAYER[top] > LAYER[name.split(".")[0]]:
                wrong.append(f"{name} imports {base}")
    assert wrong == []


def wing(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[0] == "orchestrator" and parts[1] in WINGS else None


def test_orchestrator_is_in_wings_and_its_top_level_holds_entry_points_only():
    top = {p.stem for p in (REPO / "orchestrator").glob("*.py")} - {"__init__"}
    assert {f"orchestrator.{m}" for m in top} == ORCHESTRATOR_ENTRY_POINTS
    for name in WINGS:
        init = REPO / "orchestrator" / name / "__init__.py"
        assert ast.get_docstring(ast.parse(init.read_text())), f"orchestrator.{name} says what it holds"


def test_the_wings_import_one_way():
    wrong = []
    for name, tree in modules().items():
        here = wing(name)
        for base, names in imports(name, tree):
            targets = {base, *(f"{base}.{n}" for n in names)}
            for there in {wing(t) for t in targets} - {None, here}:
                if name in ORCHESTRATOR_ENTRY_POINTS or here is None:
                    continue  # the entry points hand over to the wing that holds their code
                if WINGS.index(there) < WINGS.index(here):
                    wrong.append(f"{name} ({here}) imports {base} ({there})")
    assert wrong == []


def test_the_wing_order_is_checked():
    assert wing("orchestrator.cli.seed") == "cli" and wing("orchestrator.run") is None
    assert WINGS.index("sweep") > WINGS.index("driver")


def test_no_private_name_is_imported_from_another_module():
    wrong = [f"{name} imports {base}.{n}" for name, tree in modules().items()
             for base, names in imports(name, tree) if base.split(".")[0] in LAYER
             for n in names if n.startswith("_") and n != "__future__"]
    assert wrong == []


def test_the_docs_the_code_points_to_are_in_the_repository():
    pointed = set()
    for package in PACKAGES:
        for path in (REPO / package).rglob("*.py"):
            pointed |= set(re.findall(r"docs/[\w-]+\.md", path.read_text()))
    assert pointed, "the code points to its docs"
    assert sorted(p for p in pointed if not (REPO / p).is_file()) == []


@pytest.mark.parametrize("kind", ["condensation", "coreset", "bound"])
def test_every_method_of_the_table_has_a_kind_and_a_maker_where_it_makes_a_set(kind):
    from condense.methods import METHODS

    chosen = [m for m in METHODS.values() if m.kind == kind]
    assert chosen
    for m in chosen:
        assert (m.make is None) == (kind == "bound")
        if m.make is not None:
            assert callable(m.maker())


def test_a_method_added_to_the_table_is_known_to_sweeps_and_the_cli(monkeypatch, tmp_path):
    """One record is all a new method needs: the loader, cells, results and the CLI ask the table."""
    import dataclasses

    from condense import methods
    from orchestrator.results import parquet
    from orchestrator.sweep import spec
    from orchestrator.sweep.cells import describe, expand
    from orchestrator.cli.seed import parse_args, validate

    first = dataclasses.replace(methods.METHODS["random"], name="first", summary="the first images")
    monkeypatch.setitem(methods.METHODS, "first", first)
    path = tmp_path / "mine.yaml"
    path.write_text("tables:\n  table1:\n    datasets: [MNIST]\n    models: [ConvNet]\n    ipcs: [1]\n"
                    "    eval_modes: [S]\n    methods: [first, DC]\n")
    sweep = spec.load(path).for_run("/data", "v")
    cells = expand(sweep)
    assert [c.cell_id for c in cells] == ["MNIST-ConvNet-ipc1-S-ours-first", "MNIST-ConvNet-ipc1-S-ours"]
    assert "first selection" in describe(cells[0], sweep)
    assert parquet.cell_columns("s", cells[0])["dis_metric"] is None  # a coreset: no distance
    validate(parse_args(["--method", "first", "--dataset", "MNIST", "--ipc", "1"]))
