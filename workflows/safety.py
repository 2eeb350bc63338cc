"""AST allow-list for handbook scripts and expressions, and the rewrite that adds run-time guards.

Limiting builtins is not a sandbox: `().__class__.__bases__[0].__subclasses__()` walks from any
literal to every class in the process. So a script is accepted only if every AST node is of an
allowed kind, no name or attribute starts with `_`, no attribute outside the per-type allow-list
is read, nothing is imported, defined or waited for, and constant arithmetic stays small. The
accepted tree is then rewritten so operators that can explode (`*`, `**`, `+`, `<<`, `%`),
attribute reads, comparisons, hashing and printing go through `guards.Guards`.

What handbook scripts can do: assignments (also augmented and unpacking), arithmetic, comparisons,
`if`/`for` over bounded iterables, `break`/`continue`/`pass`, `del`, `assert`, comprehensions and
generator expressions, list/dict/set/tuple literals, f-strings with short format specs, and calls
of the helper functions and of allowed methods of plain data. No `while` (use `for` over `range`),
no `def`/`lambda`/`class`, no `try`/`raise`/`with`, no `import`, no `global`/`nonlocal`, no
`yield`/`await`, no `match`.
"""

from __future__ import annotations

import ast
import re
import threading
from dataclasses import dataclass
from types import CodeType
from typing import Any, Literal

from .guards import (
    ALL_ALLOWED_ATTRIBUTES,
    CURRENT_RUN,
    Guards,
    RunBudget,
    ScriptLimitError,
    ScriptLimits,
)

SCRIPT_FILENAME = "<handbook-script>"

Mode = Literal["exec", "eval"]

# CPython 3.11 keeps the depth counter of its AST <-> object conversion per interpreter, not
# per thread: when a garbage collection during `ast.parse` or `compile(tree)` lets another
# thread in (a finalizer, a gc callback) and that thread converts an AST too, both fail with
# "SystemError: AST constructor recursion depth mismatch". Every conversion here holds this lock.
AST_LOCK = threading.Lock()


def parse_ast(source: str, mode: Mode, filename: str = "<unknown>") -> ast.AST:
    with AST_LOCK:
        return ast.parse(source, filename=filename, mode=mode)


def literal_value(source: str) -> Any:
    """`ast.literal_eval` under the AST lock."""
    with AST_LOCK:
        return ast.literal_eval(source)

_ALLOWED_NODES: frozenset[type[ast.AST]] = frozenset({
    ast.Module, ast.Expression, ast.Expr, ast.Assign, ast.AugAssign, ast.For, ast.If,
    ast.Break, ast.Continue, ast.Pass, ast.Delete, ast.Assert,
    ast.BoolOp, ast.BinOp, ast.UnaryOp, ast.Compare, ast.IfExp, ast.Call, ast.keyword,
    ast.Constant, ast.Name, ast.Load, ast.Store, ast.Del, ast.Attribute, ast.Subscript,
    ast.Slice, ast.List, ast.Tuple, ast.Dict, ast.Set, ast.ListComp, ast.SetComp,
    ast.DictComp, ast.GeneratorExp, ast.comprehension, ast.JoinedStr, ast.FormattedValue,
    ast.Starred, ast.NamedExpr,
    ast.And, ast.Or, ast.Add, ast.Sub, ast.Mult, ast.Div, ast.FloorDiv, ast.Mod, ast.Pow,
    ast.LShift, ast.RShift, ast.BitOr, ast.BitXor, ast.BitAnd, ast.Invert, ast.Not,
    ast.UAdd, ast.USub, ast.Eq, ast.NotEq, ast.Lt, ast.LtE, ast.Gt, ast.GtE, ast.Is,
    ast.IsNot, ast.In, ast.NotIn,
})

_REFUSED_NODE_MESSAGES: dict[type[ast.AST], str] = {
    ast.Import: "imports are not allowed; use the helper functions that scripts provide",
    ast.ImportFrom: "imports are not allowed; use the helper functions that scripts provide",
    ast.While: "while loops are not allowed; use 'for ... in range(n)' with a bounded n",
    ast.FunctionDef: "defining functions is not allowed",
    ast.AsyncFunctionDef: "defining functions is not allowed",
    ast.Lambda: "lambda is not allowed",
    ast.ClassDef: "defining classes is not allowed",
    ast.Try: "try/except is not allowed; let errors stop the task so it can be fixed and retried",
    ast.Raise: "raise is not allowed",
    ast.With: "with-statements are not allowed",
    ast.AsyncWith: "with-statements are not allowed",
    ast.AsyncFor: "async loops are not allowed",
    ast.Global: "global is not allowed",
    ast.Nonlocal: "nonlocal is not allowed",
    ast.Yield: "yield is not allowed",
    ast.YieldFrom: "yield is not allowed",
    ast.Await: "await is not allowed",
    ast.Match: "match statements are not allowed; use if/elif",
    ast.MatMult: "the @ operator is not allowed",
    ast.AnnAssign: "annotated assignments are not allowed; write 'x = value'",
}

# Builtins that open a way out of the sandbox or to the host; named so the message is explicit.
FORBIDDEN_NAMES: frozenset[str] = frozenset({
    "eval", "exec", "compile", "open", "getattr", "setattr", "delattr", "hasattr", "globals",
    "locals", "vars", "dir", "breakpoint", "input", "type", "object", "super", "memoryview",
    "bytearray", "bytes", "help", "exit", "quit", "id", "hash", "format", "classmethod",
    "staticmethod", "property", "iter", "next", "aiter", "anext", "callable", "print",
    "issubclass", "license", "credits", "copyright", "frozenset", "slice", "map", "filter",
    "chr", "ord", "ascii", "repr", "complex", "bin", "oct", "hex", "os", "sys", "builtins",
    "importlib", "subprocess",
})

_GUARDED_BINOPS: dict[type[ast.operator], str] = {
    ast.Add: "__wf_add", ast.Mult: "__wf_mul", ast.Pow: "__wf_pow",
    ast.LShift: "__wf_lshift", ast.Mod: "__wf_mod",
}
_GUARDED_AUGOPS: dict[type[ast.operator], str] = {
    ast.Add: "__wf_iadd", ast.Mult: "__wf_imul", ast.Pow: "__wf_pow",
    ast.LShift: "__wf_lshift", ast.Mod: "__wf_mod",
}
_ATTRIBUTE_HINTS = {
    "now": "; call now() for the current time",
    "utcnow": "; call now() for the current time",
    "today": "; call today() for the current date",
    "format": "; use an f-string",
    "format_map": "; use an f-string",
    "fromisoformat": "; call parse_datetime(text)",
}
_DIGITS = re.compile(r"\d+")
_EL_EXPRESSION = re.compile(r"[$#]\{")


@dataclass(frozen=True)
class ScriptIssue:
    """One reason a script or expression is refused; `line` is 1-based within the text."""

    line: int | None
    message: str


class UnsafeScriptError(Exception):
    def __init__(self, issues: list[ScriptIssue]):
        self.issues = issues
        super().__init__("; ".join(i.message for i in issues))


def _parse(source: str, mode: Mode) -> tuple[ast.AST | None, list[ScriptIssue]]:
    if _EL_EXPRESSION.search(source):
        return None, [ScriptIssue(1, (
            "conditions and scripts are Python expressions, not Camunda/JUEL: "
            f"write e.g. 'confirmed' or 'level == \"red\"' instead of {source.strip()!r}"
        ))]
    try:
        return parse_ast(source, mode, SCRIPT_FILENAME), []
    except SyntaxError as exc:
        return None, [ScriptIssue(exc.lineno, f"Python syntax error: {exc.msg}")]
    except (ValueError, RecursionError, MemoryError) as exc:
        return None, [ScriptIssue(None, f"the text cannot be parsed: {exc}")]


class _Checker(ast.NodeVisitor):
    def __init__(self, limits: ScriptLimits):
        self.limits = limits
        self.issues: list[ScriptIssue] = []
        self.depth = 0
        self.guards = Guards(limits)
        self.constants: dict[int, Any] = {}
        self.reported: set[int] = set()
        # Constant folding allocates real values: all of it together stays under this budget.
        self.folding = _FoldingBudget(limits.max_constant_size)
        self.folding_refused = False

    def refuse(self, node: ast.AST, message: str) -> None:
        self.issues.append(ScriptIssue(getattr(node, "lineno", None), message))

    def visit(self, node: ast.AST) -> None:
        kind = type(node)
        if kind not in _ALLOWED_NODES:
            message = _REFUSED_NODE_MESSAGES.get(kind, f"'{kind.__name__}' is not allowed")
            self.refuse(node, message)
            return
        self.depth += 1
        try:
            if self.depth > self.limits.max_depth:
                self.refuse(node, "the script is nested too deeply")
                return
            super().visit(node)
        finally:
            self.depth -= 1

    def generic_visit(self, node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            self.visit(child)

    def visit_Name(self, node: ast.Name) -> None:
        if node.id.startswith("_"):
            self.refuse(node, f"names starting with '_' are not allowed ({node.id!r})")
        elif node.id in FORBIDDEN_NAMES:
            self.refuse(node, f"'{node.id}' is not available in handbook scripts")

    def visit_Attribute(self, node: ast.Attribute) -> None:
        if node.attr.startswith("_"):
            self.refuse(node, f"attributes starting with '_' are not allowed ({node.attr!r})")
        elif not isinstance(node.ctx, ast.Load):
            self.refuse(node, "setting or deleting attributes is not allowed")
        elif node.attr not in ALL_ALLOWED_ATTRIBUTES:
            hint = _ATTRIBUTE_HINTS.get(node.attr, "")
            self.refuse(node, f"'.{node.attr}' is not available in handbook scripts{hint}")
        self.generic_visit(node)

    def visit_Call(self, node: ast.Call) -> None:
        if not isinstance(node.func, (ast.Name, ast.Attribute)):
            self.refuse(node, "only helper functions and methods can be called")
        for keyword_arg in node.keywords:
            if keyword_arg.arg is not None and keyword_arg.arg.startswith("_"):
                self.refuse(node, f"keyword arguments starting with '_' are not allowed "
                                  f"({keyword_arg.arg!r})")
        self.generic_visit(node)

    def visit_Constant(self, node: ast.Constant) -> None:
        value = node.value
        if isinstance(value, bytes):
            self.refuse(node, "bytes literals are not allowed")
        elif isinstance(value, str) and len(value) > self.limits.max_source_chars:
            self.refuse(node, "the text literal is too long")

    def visit_BinOp(self, node: ast.BinOp) -> None:
        if self.folding_refused:
            self.generic_visit(node)
            return
        token = CURRENT_RUN.set(self.folding)
        try:
            _constant_value(node, self.guards, self.constants)
        except ConstantsTooLarge as exc:
            if not self.folding_refused:
                self.folding_refused = True
                self.refuse(node, str(exc))
        except ScriptLimitError as exc:
            # Nested operators re-raise the same memoised error: report it once.
            if id(exc) not in self.reported:
                self.reported.add(id(exc))
                self.refuse(node, f"the constant expression is too large: {exc}")
        except _NotConstant:
            pass
        except (ArithmeticError, TypeError, ValueError):
            pass  # a plain run-time error (1/0); reported when the script runs
        finally:
            CURRENT_RUN.reset(token)
        self.generic_visit(node)

    def visit_FormattedValue(self, node: ast.FormattedValue) -> None:
        self.visit(node.value)
        spec = node.format_spec
        if spec is None:
            return
        if not isinstance(spec, ast.JoinedStr) or not all(
            isinstance(v, ast.Constant) for v in spec.values
        ):
            self.refuse(node, "f-string format specs must be plain text")
            return
        text = "".join(str(v.value) for v in spec.values if isinstance(v, ast.Constant))
        if any(int(d) > self.limits.max_format_width for d in _DIGITS.findall(text)):
            self.refuse(node, "the f-string format width is too large")


class _NotConstant(Exception):
    pass


class ConstantsTooLarge(ScriptLimitError):
    """Constant folding at check time would allocate more than the folding budget."""


class _FoldingBudget(RunBudget):
    __slots__ = ()

    def exceeded(self) -> ScriptLimitError:
        return ConstantsTooLarge(
            f"the constant text and numbers of the script add up to more than {self.cap} "
            "characters and elements; compute large values at run time or split the script"
        )


def _constant_value(node: ast.AST, guards: Guards, memo: dict[int, Any]) -> Any:
    """Evaluate constant arithmetic through the guards, so `9**9**9` is refused at load.

    `memo` keeps results (or the exception) per node so nested operators are evaluated once.
    """
    key = id(node)
    if key in memo:
        result = memo[key]
        if isinstance(result, BaseException):
            raise result
        return result
    try:
        memo[key] = _evaluate_constant(node, guards, memo)
    except ConstantsTooLarge:
        raise
    except (_NotConstant, ScriptLimitError, ArithmeticError, TypeError, ValueError) as exc:
        memo[key] = exc
        raise
    return memo[key]


def _evaluate_constant(node: ast.AST, guards: Guards, memo: dict[int, Any]) -> Any:
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        value = _constant_value(node.operand, guards, memo)
        return -value if isinstance(node.op, ast.USub) else +value
    if isinstance(node, ast.BinOp):
        left = _constant_value(node.left, guards, memo)
        right = _constant_value(node.right, guards, memo)
        op = type(node.op)
        if op is ast.Pow:
            return guards.pow(left, right)
        if op is ast.Mult:
            return guards.mul(left, right)
        if op is ast.Add:
            return guards.add(left, right)
        if op is ast.LShift:
            return guards.lshift(left, right)
        if op is ast.Sub:
            return left - right
        raise _NotConstant
    raise _NotConstant


class _Rewriter(ast.NodeTransformer):
    """Route risky operations through guard functions (their names start with '__wf_')."""

    @staticmethod
    def _call(name: str, node: ast.AST, *args: ast.expr) -> ast.Call:
        call = ast.Call(func=ast.Name(id=name, ctx=ast.Load()), args=list(args), keywords=[])
        return ast.copy_location(call, node)

    def _deep(self, node: ast.expr) -> ast.expr:
        if isinstance(node, ast.Constant):
            return node
        return self._call("__wf_deep", node, node)

    def visit_BinOp(self, node: ast.BinOp) -> ast.AST:
        self.generic_visit(node)
        guard = _GUARDED_BINOPS.get(type(node.op))
        if guard is None:
            return node
        return self._call(guard, node, node.left, node.right)

    def visit_AugAssign(self, node: ast.AugAssign) -> ast.AST:
        self.generic_visit(node)
        guard = _GUARDED_AUGOPS.get(type(node.op))
        if guard is None:
            return node
        target = node.target
        if isinstance(target, ast.Name):
            load: ast.expr = ast.Name(id=target.id, ctx=ast.Load())
        elif isinstance(target, ast.Subscript):
            load = ast.Subscript(value=target.value, slice=target.slice, ctx=ast.Load())
        else:
            return node
        ast.copy_location(load, target)
        assign = ast.Assign(targets=[target], value=self._call(guard, node, load, node.value))
        return ast.copy_location(assign, node)

    def visit_Attribute(self, node: ast.Attribute) -> ast.AST:
        self.generic_visit(node)
        return self._call("__wf_attr", node, node.value, ast.Constant(value=node.attr))

    def visit_Compare(self, node: ast.Compare) -> ast.AST:
        self.generic_visit(node)
        node.left = self._deep(node.left)
        node.comparators = [self._deep(c) for c in node.comparators]
        return node

    def visit_Subscript(self, node: ast.Subscript) -> ast.AST:
        self.generic_visit(node)
        if isinstance(node.slice, ast.Slice):
            if isinstance(node.ctx, ast.Load):
                return self._call("__wf_sliced", node, node)
        elif not isinstance(node.slice, ast.Constant):
            node.slice = self._deep(node.slice)
        return node

    def visit_Dict(self, node: ast.Dict) -> ast.AST:
        self.generic_visit(node)
        node.keys = [k if k is None else self._deep(k) for k in node.keys]
        return node

    def visit_Set(self, node: ast.Set) -> ast.AST:
        self.generic_visit(node)
        node.elts = [self._deep(e) for e in node.elts]
        return node

    def visit_SetComp(self, node: ast.SetComp) -> ast.AST:
        self.generic_visit(node)
        node.elt = self._deep(node.elt)
        return node

    def visit_DictComp(self, node: ast.DictComp) -> ast.AST:
        self.generic_visit(node)
        node.key = self._deep(node.key)
        return node

    def visit_FormattedValue(self, node: ast.FormattedValue) -> ast.AST:
        self.generic_visit(node)
        node.value = self._call("__wf_format", node, node.value)
        return node


def check_source(source: str | None, mode: Mode, limits: ScriptLimits) -> list[ScriptIssue]:
    """Return the reasons `source` is refused (empty when it is acceptable)."""
    if source is None or not source.strip():
        what = "script" if mode == "exec" else "expression"
        return [ScriptIssue(None, f"the {what} is empty")]
    if len(source) > limits.max_source_chars:
        return [ScriptIssue(None, f"the text has {len(source)} characters; the limit is "
                                  f"{limits.max_source_chars}")]
    tree, issues = _parse(source, mode)
    if tree is None:
        return issues
    # Size and shape first: nothing is evaluated (constant folding) before they pass.
    nodes, depth = _measure(tree, limits.max_nodes)
    if depth > limits.max_depth:
        return [ScriptIssue(None, "the script is nested too deeply; split it into steps")]
    if nodes > limits.max_nodes:
        return [ScriptIssue(None, f"the script is too complex (more than {limits.max_nodes} "
                                  "syntax nodes); split it into several tasks")]
    checker = _Checker(limits)
    checker.visit(tree)
    return checker.issues


def _measure(tree: ast.AST, max_nodes: int) -> tuple[int, int]:
    """Node count (stopping just past `max_nodes`) and nesting depth, without recursion so a
    hostile tree cannot exhaust the stack."""
    deepest = 0
    count = 0
    stack = [(tree, 1)]
    while stack:
        node, level = stack.pop()
        count += 1
        if count > max_nodes:
            break
        deepest = max(deepest, level)
        stack.extend((child, level + 1) for child in ast.iter_child_nodes(node))
    return count, deepest


def compile_checked(source: str, mode: Mode, limits: ScriptLimits) -> CodeType:
    """Check `source`, rewrite it with guards and compile it; raise UnsafeScriptError if refused."""
    return compile_checked_plain(source, mode, limits)[0]


def compile_checked_plain(source: str, mode: Mode, limits: ScriptLimits) -> tuple[CodeType, bool]:
    """`compile_checked`, and whether the expression is plain (see `is_plain`)."""
    issues = check_source(source, mode, limits)
    if issues:
        raise UnsafeScriptError(issues)
    tree, _ = _parse(source, mode)
    assert tree is not None
    plain = is_plain(tree)
    tree = ast.fix_missing_locations(_Rewriter().visit(tree))
    with AST_LOCK:
        return compile(tree, SCRIPT_FILENAME, mode, dont_inherit=True), plain


_PLAIN_COMPARISONS = (ast.Eq, ast.NotEq, ast.Lt, ast.LtE, ast.Gt, ast.GtE, ast.Is, ast.IsNot)


def is_plain(tree: ast.AST) -> bool:
    """Whether a text only looks values up and compares them, so it cannot run long.

    A plain expression is made of constants, names, `name[constant]`, comparisons (`==`, `<`,
    `is`, ...), `in` / `not in` against a literal list, tuple or set of constants, `and` /
    `or` / `not`, unary minus and `a if c else b`. Each of these does one lookup or one
    comparison of values that come from task data, whose size the data limits bound (ordering
    and equality of JSON values are linear in their size; hashing only meets text keys), so
    running them in the calling process is as bounded as the data. `in` against task data is
    not plain: substring search can be quadratic.

    A plain script is a sequence of `name = value` whose values are plain and can only give a
    constant or a truth value (a comparison, `not`, or `and` / `or` / `if-else` of such):
    straight-line, and the data it adds is no larger than its own text.

    Anything that calls, loops or builds runs in a worker.
    """
    if isinstance(tree, ast.Expression):
        return _plain(tree.body)
    if isinstance(tree, ast.Module):
        return all(
            isinstance(statement, ast.Assign) and len(statement.targets) == 1
            and isinstance(statement.targets[0], ast.Name) and _small_result(statement.value)
            and _plain(statement.value)
            for statement in tree.body)
    return False


def _small_result(node: ast.expr) -> bool:
    """Whether a plain expression can only give one of its constants or a truth value."""
    if isinstance(node, (ast.Constant, ast.Compare)):
        return True
    if isinstance(node, ast.UnaryOp):
        return isinstance(node.op, ast.Not) or isinstance(node.operand, ast.Constant)
    if isinstance(node, ast.BoolOp):
        return all(_small_result(value) for value in node.values)
    if isinstance(node, ast.IfExp):
        return _small_result(node.body) and _small_result(node.orelse)
    return False


def _plain(root: ast.expr) -> bool:
    stack: list[ast.AST] = [root]
    while stack:
        node = stack.pop()
        if isinstance(node, (ast.Constant, ast.Name)):
            continue
        if isinstance(node, ast.Subscript):
            if not isinstance(node.slice, ast.Constant) or \
                    not isinstance(node.slice.value, (str, int)):
                return False
            stack.append(node.value)
        elif isinstance(node, ast.Compare):
            for op, right in zip(node.ops, node.comparators, strict=True):
                if isinstance(op, (ast.In, ast.NotIn)):
                    if not isinstance(right, (ast.List, ast.Tuple, ast.Set)) or \
                            not all(isinstance(e, ast.Constant) for e in right.elts):
                        return False
                elif not isinstance(op, _PLAIN_COMPARISONS):
                    return False
                else:
                    stack.append(right)
            stack.append(node.left)
        elif isinstance(node, ast.BoolOp):
            stack.extend(node.values)
        elif isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.Not, ast.USub)):
            stack.append(node.operand)
        elif isinstance(node, ast.IfExp):
            stack.extend((node.test, node.body, node.orelse))
        else:
            return False
    return True
