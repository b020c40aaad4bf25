"""No function of the bakery's own code is longer than 60 lines: a reader (a workshop learner among
them) should be able to hold one function on one screen. Python is read with `ast`, JavaScript with
tree-sitter's JavaScript grammar, so a function is what the language says it is, not what a pattern
guesses. A nested function counts on its own, and also as part of the function around it."""

from __future__ import annotations

import ast
from pathlib import Path

import tree_sitter_javascript
from tree_sitter import Language, Parser

ROOT = Path(__file__).resolve().parent.parent
LIMIT = 60
PYTHON_PACKAGES = ("bakery", "orders", "payments")
JS_FOLDER = ROOT / "static" / "js"
JS_FUNCTIONS = {"function_declaration", "generator_function_declaration", "function_expression",
                "generator_function", "arrow_function", "method_definition"}


def lines(start: int, end: int) -> int:
    return end - start + 1


def python_functions(path: Path):
    """(line, name, length) of each def and async def in ``path``."""
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            yield node.lineno, node.name, lines(node.lineno, node.end_lineno)


def js_name(node) -> str:
    """A function's own name, or the name it is given (``const f = () => …``, ``key: function …``)."""
    named = node.child_by_field_name("name")
    if named is None and node.parent is not None:
        named = (node.parent.child_by_field_name("name") or node.parent.child_by_field_name("key")
                 or node.parent.child_by_field_name("left"))
    return named.text.decode() if named is not None else "(anonymous)"


def js_functions(path: Path, parser: Parser):
    """(line, name, length) of each function, method and arrow function in ``path``."""
    tree = parser.parse(path.read_bytes())
    assert not tree.root_node.has_error, f"{path.relative_to(ROOT)} does not parse as JavaScript"
    stack = [tree.root_node]
    while stack:
        node = stack.pop()
        if node.type in JS_FUNCTIONS:
            yield node.start_point[0] + 1, js_name(node), lines(node.start_point[0], node.end_point[0])
        stack.extend(node.children)


def test_the_javascript_parser_sees_every_function():
    """The count below is only worth something if the parser finds the functions: a file of known
    shape must give each of its functions at its length."""
    parser = Parser(Language(tree_sitter_javascript.language()))
    found = sorted(js_functions(JS_FOLDER / "retry.js", parser))
    assert [name for _, name, _ in found] == ["retryAfterSeconds", "retryWaitSeconds"]
    assert all(length >= 4 for _, _, length in found), found


def test_no_function_is_longer_than_60_lines():
    parser = Parser(Language(tree_sitter_javascript.language()))
    found = [(path, *function) for package in PYTHON_PACKAGES for path in sorted((ROOT / package).rglob("*.py"))
             for function in python_functions(path)]
    # htmx.min.js is htmx as its authors ship it, minified: not the bakery's code to split.
    found += [(path, *function) for path in sorted(JS_FOLDER.glob("*.js")) if not path.name.endswith(".min.js")
              for function in js_functions(path, parser)]
    assert len(found) > 100  # the walk reached the code (hundreds of functions), not an empty folder
    too_long = [f"{path.relative_to(ROOT)}:{line} {name} ({length} lines)"
                for path, line, name, length in found if length > LIMIT]
    assert too_long == [], f"functions over {LIMIT} lines: " + "; ".join(sorted(too_long))
