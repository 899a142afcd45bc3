"""A row filter that never runs code: the language of ``runmanager show --where``.

A filter such as ``lr < 0.01 and status == 'completed'`` is parsed with :func:`ast.parse` and
evaluated by walking the parsed tree over a DataFrame's columns, vectorised with pandas. Nothing
is compiled or evaluated as Python, so a filter typed over a results folder that came from
someone else cannot run a command or write a file. The language is the ordinary part of
:meth:`pandas.DataFrame.query`, and selects the same rows:

- column names, and in backticks those that are not Python names: ```val accuracy` > 0.9``
- numbers (``0.01``, ``-3``, ``1e-3``), ``'strings'``, ``True``, ``False``, ``None``
- comparisons ``==  !=  <  <=  >  >=``, chained too: ``0.001 < lr <= 0.1``
- ``in`` / ``not in`` a list or tuple of values: ``optimizer in ['adam', 'sgd']``
  (``== [...]`` and ``!= [...]`` mean the same, as in pandas)
- ``and``, ``or``, ``not`` (or pandas' ``&``, ``|``, ``~``) and parentheses
- ``+ - * /`` between numbers and numeric columns: ``val_loss - loss > 0.1``

A missing value (NaN) matches no comparison but ``!=``, as in pandas. Everything else
(attributes, calls, indexing, ``**``, lambdas, comprehensions, f-strings, ``:=``, ``@name``) is
refused with an :class:`~runmanager.errors.InvalidArgumentError` that names the part and lists
what is allowed.
"""

from __future__ import annotations

import ast
import io
import operator
import tokenize
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from runmanager.errors import InvalidArgumentError, InvalidArgumentTypeError

__all__ = ["ALLOWED", "columns_used", "select"]

#: What a filter may be made of, as the error messages list it.
ALLOWED = ("column names (`in backticks` when not Python names), numbers, 'strings', True, False, None, "
           "comparisons == != < <= > >= (chained too), in / not in a [list] of values, "
           "and / or / not (or & | ~), + - * / between numbers, and parentheses")

_COMPARISONS: dict[type, Callable[[Any, Any], Any]] = {
    ast.Eq: operator.eq, ast.NotEq: operator.ne, ast.Lt: operator.lt,
    ast.LtE: operator.le, ast.Gt: operator.gt, ast.GtE: operator.ge,
}
_ARITHMETIC: dict[type, Callable[[Any, Any], Any]] = {
    ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
}
_MEMBERSHIP = (ast.In, ast.NotIn, ast.Eq, ast.NotEq)  # the comparisons that take a [list] of values
_LITERALS = (bool, int, float, str, type(None))
_KINDS = {
    ast.Attribute: "an attribute", ast.Call: "a call", ast.Subscript: "indexing", ast.Slice: "a slice",
    ast.Lambda: "a lambda", ast.NamedExpr: "an assignment (:=)", ast.JoinedStr: "an f-string",
    ast.ListComp: "a comprehension", ast.SetComp: "a comprehension", ast.DictComp: "a comprehension",
    ast.GeneratorExp: "a generator", ast.IfExp: "an if-else expression", ast.Dict: "a dict",
    ast.Set: "a set", ast.Starred: "unpacking", ast.Await: "await",
    ast.List: "a list, which may only follow in, not in, == or !=",
    ast.Tuple: "a tuple, which may only follow in, not in, == or !=",
}
_SYMBOLS = {
    ast.Pow: "**", ast.MatMult: "@", ast.Mod: "%", ast.FloorDiv: "//", ast.LShift: "<<", ast.RShift: ">>",
    ast.BitXor: "^", ast.BitAnd: "&", ast.BitOr: "|", ast.Is: "is", ast.IsNot: "is not",
}


def select(frame: pd.DataFrame, expression: str) -> pd.DataFrame:
    """The rows of ``frame`` for which ``expression`` is true, as ``frame.query(expression)`` gives them.

    Args:
        frame: a table, such as a sweep's summary.
        expression: a filter over its columns in the language above; it is parsed, never run.

    Returns:
        The matching rows, with their index.

    Raises:
        InvalidArgumentError: the expression is not valid, uses something a filter may not,
            names a column ``frame`` lacks, or is not true or false per row.

    Examples:
        >>> runs = pd.DataFrame({"lr": [0.1, 0.01, 0.001], "status": ["completed", "completed", "failed"]})
        >>> select(runs, "lr < 0.05 and status == 'completed'")
             lr     status
        1  0.01  completed
        >>> select(runs, "status in ['failed', 'pruned'] or lr >= 0.1")["lr"].tolist()
        [0.1, 0.001]
        >>> select(runs, "lr.__class__ == 1")
        Traceback (most recent call last):
        ...
        runmanager.errors.InvalidArgumentError: The filter 'lr.__class__ == 1' uses 'lr.__class__' (an attribute), ...
    """
    return frame.loc[_Filter(expression).mask(frame)]


def columns_used(expression: str) -> list[str]:
    """The column names ``expression`` uses, in order, once each; checking it without any table.

    Raises:
        InvalidArgumentError: the expression is not valid or uses something a filter may not.

    Examples:
        >>> columns_used("`val accuracy` > 0.9 and 0.001 < lr <= 0.1 and lr != 0.01")
        ['val accuracy', 'lr']
    """
    return list(_Filter(expression).columns)


class _Filter:
    """One expression, parsed and checked; :meth:`mask` evaluates it over a frame."""

    def __init__(self, expression: str) -> None:
        if not isinstance(expression, str):
            raise InvalidArgumentTypeError(f"A filter is a str such as \"lr < 0.01\", got {expression!r}.")
        self.expression = expression
        if not expression.strip():
            raise InvalidArgumentError("The filter is empty; write a condition such as \"lr < 0.01\".")
        self.placeholders: dict[str, str] = {}  # the identifier standing for each `backticked name`
        self.text = self._spell_booleans(self._replace_backticks(expression.strip()))
        try:
            self.tree = ast.parse(self.text, mode="eval")
        except SyntaxError as exc:
            raise self._error(f"is not a valid expression ({exc.msg}); write conditions such as "
                              "\"lr < 0.01 and status == 'completed'\"") from None
        except (RecursionError, MemoryError):
            raise self._error("is nested too deeply") from None
        self.columns: dict[str, None] = {}
        try:
            self._check(self.tree.body)
        except RecursionError:
            raise self._error("is nested too deeply") from None

    # Reading the text.

    def _replace_backticks(self, text: str) -> str:
        """``text`` with each `name` replaced by an identifier that occurs nowhere in it."""
        prefix = "_column_"
        while prefix in text:
            prefix = "_" + prefix
        pieces, start, index, quote = [], 0, 0, ""
        while index < len(text):
            char = text[index]
            if quote:  # inside a string literal, where a backtick is just a character
                if char == "\\":
                    index += 2
                elif text.startswith(quote, index):
                    index, quote = index + len(quote), ""
                else:
                    index += 1
            elif char in "'\"":
                quote = char * 3 if text.startswith(char * 3, index) else char
                index += len(quote)
            elif char == "`":
                end = text.find("`", index + 1)
                if end < 0:
                    raise self._error(f"opens a backtick at character {index + 1} that is never closed")
                name = text[index + 1:end]
                if not name:
                    raise self._error("has empty backticks; put a column name between them")
                if name not in self.placeholders.values():
                    self.placeholders[f"{prefix}{len(self.placeholders)}"] = name
                placeholder = next(key for key, value in self.placeholders.items() if value == name)
                pieces += [text[start:index], placeholder]
                start = index = end + 1
            else:
                index += 1
        return "".join(pieces) + text[start:]

    def _spell_booleans(self, text: str) -> str:
        """``&`` and ``|`` as ``and`` and ``or``: pandas gives them the precedence of the words, so
        ``a == 1 & b == 2`` means ``(a == 1) and (b == 2)``, not Python's ``a == (1 & b) == 2``."""
        try:
            tokens = list(tokenize.generate_tokens(io.StringIO(text).readline))
        except (tokenize.TokenError, SyntaxError, ValueError):
            return text  # ast.parse says what is wrong with it
        starts = [0]
        for line in text.splitlines(keepends=True):
            starts.append(starts[-1] + len(line))
        for token in reversed(tokens):
            if token.type == tokenize.OP and token.string == "@":
                raise self._error("uses '@', which a filter may not: there are no variables, only the columns "
                                  f"(a filter is made of {ALLOWED})")
            if token.type == tokenize.OP and token.string in ("&", "|"):
                at = starts[token.start[0] - 1] + token.start[1]
                text = text[:at] + (" and " if token.string == "&" else " or ") + text[at + 1:]
        return text

    def _shown(self, node: ast.AST) -> str:
        """The part of the expression that ``node`` was parsed from, with its backticks."""
        text = ast.get_source_segment(self.text, node) or ast.unparse(node)
        for placeholder, name in self.placeholders.items():
            text = text.replace(placeholder, f"`{name}`")
        return text

    def _error(self, problem: str) -> InvalidArgumentError:
        return InvalidArgumentError(f"The filter {self.expression!r} {problem}.")

    def _refuse(self, node: ast.AST, kind: str) -> InvalidArgumentError:
        return self._error(f"uses {self._shown(node)!r} ({kind}), which a filter may not; "
                           f"a filter is made of {ALLOWED}")

    # Checking the tree, before any table is looked at.

    def _check(self, node: ast.AST) -> None:
        if isinstance(node, ast.Constant):
            if not isinstance(node.value, _LITERALS):
                raise self._refuse(node, f"a value of type {type(node.value).__name__}")
        elif isinstance(node, ast.Name):
            self.columns[self.placeholders.get(node.id, node.id)] = None
        elif isinstance(node, ast.BoolOp):
            for value in node.values:
                self._check(value)
        elif isinstance(node, ast.UnaryOp):
            self._check(node.operand)
        elif isinstance(node, ast.BinOp):
            if type(node.op) not in _ARITHMETIC:
                raise self._refuse(node, f"the operator {_SYMBOLS.get(type(node.op), '?')!r}")
            self._check(node.left)
            self._check(node.right)
        elif isinstance(node, ast.Compare):
            self._check(node.left)
            last = len(node.ops) - 1
            for position, (op, right) in enumerate(zip(node.ops, node.comparators)):
                if type(op) not in _COMPARISONS and not isinstance(op, (ast.In, ast.NotIn)):
                    raise self._refuse(node, f"the operator {_SYMBOLS.get(type(op), '?')!r}")
                if isinstance(right, (ast.List, ast.Tuple)) and isinstance(op, _MEMBERSHIP) and position == last:
                    self._values(right)
                elif isinstance(op, (ast.In, ast.NotIn)):
                    raise self._error(f"puts {self._shown(right)!r} after 'in'; 'in' takes a list or tuple of "
                                      "values, such as \"optimizer in ['adam', 'sgd']\"")
                else:
                    self._check(right)
        else:
            raise self._refuse(node, _KINDS.get(type(node), type(node).__name__))

    def _values(self, node: ast.List | ast.Tuple) -> list[Any]:
        """The values of a [list] after in / not in / == / !=: literals only."""
        values = []
        for element in node.elts:
            value = _literal(element)
            if value is _literal:
                raise self._error(f"has {self._shown(element)!r} in the list {self._shown(node)!r}, which may "
                                  "hold only numbers, 'strings', True, False and None")
            values.append(value)
        return values

    # Evaluating it over a frame.

    def mask(self, frame: pd.DataFrame) -> pd.Series:
        """True for each row of ``frame`` that matches."""
        for name in self.columns:
            if name not in frame.columns:
                shown = ", ".join(map(str, frame.columns))
                raise self._error(f"names {name!r}, which is not a column; the columns are {shown} "
                                  "(in backticks when not Python names: `val accuracy`)")
        try:
            value = self._value(self.tree.body, frame)
        except InvalidArgumentError:
            raise
        except (TypeError, ValueError, ArithmeticError) as exc:  # 'completed' < 1, a 1 / 0 of two numbers
            problem = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise self._error(f"cannot be evaluated over these columns: {problem}") from None
        except RecursionError:
            raise self._error("is nested too deeply") from None
        matches = _as_condition(value)
        if matches is None:
            raise self._error(f"gives {_described(value)}, not true or false per row; compare it, such as "
                              f"\"{self.expression.strip()} > 0\"")
        if isinstance(matches, bool):
            return pd.Series(matches, index=frame.index, dtype=bool)
        return matches

    def _value(self, node: ast.AST, frame: pd.DataFrame) -> Any:
        if isinstance(node, ast.Constant):
            return node.value
        if isinstance(node, ast.Name):
            column = frame[self.placeholders.get(node.id, node.id)]
            if isinstance(column, pd.DataFrame):
                raise self._error(f"names {self._shown(node)!r}, which is more than one column of the table")
            return column
        if isinstance(node, ast.BoolOp):
            conditions = [self._condition(value, frame) for value in node.values]
            combine = operator.and_ if isinstance(node.op, ast.And) else operator.or_
            result = conditions[0]
            for condition in conditions[1:]:
                result = combine(result, condition)
            return result
        if isinstance(node, ast.UnaryOp):
            if isinstance(node.op, (ast.Not, ast.Invert)):
                condition = self._condition(node.operand, frame)
                return not condition if isinstance(condition, bool) else ~condition
            number = self._number(node.operand, frame)
            return -number if isinstance(node.op, ast.USub) else +number
        if isinstance(node, ast.BinOp):
            left, right = self._number(node.left, frame), self._number(node.right, frame)
            return _ARITHMETIC[type(node.op)](left, right)
        assert isinstance(node, ast.Compare)  # _check let nothing else through
        left_node, left = node.left, self._value(node.left, frame)
        result: Any = None
        for op, right_node in zip(node.ops, node.comparators):
            if isinstance(right_node, (ast.List, ast.Tuple)):
                values = self._values(right_node)
                found = left.isin(values) if isinstance(left, pd.Series) else left in values
                matched = found if isinstance(op, (ast.In, ast.Eq)) else _negated(found)
            else:
                right = self._value(right_node, frame)
                if not isinstance(op, (ast.Eq, ast.NotEq)) and {_kind(left), _kind(right)} == {"number", "str"}:
                    raise self._error(f"orders {self._shown(left_node)!r}, which gives {_described(left)}, against "
                                      f"{self._shown(right_node)!r}, which gives {_described(right)}; "
                                      "< <= > >= compare numbers with numbers and strings with strings")
                matched = _COMPARISONS[type(op)](left, right)
                left_node, left = right_node, right
            result = matched if result is None else result & matched
        return result

    def _condition(self, node: ast.AST, frame: pd.DataFrame) -> Any:
        """What ``node`` gives, where and / or / not need true or false per row."""
        value = self._value(node, frame)
        condition = _as_condition(value)
        if condition is None:
            raise self._error(f"joins {self._shown(node)!r} with and / or / not, but it gives "
                              f"{_described(value)}, not true or false per row; "
                              f"compare it, such as \"{self._shown(node)} > 0\"")
        return condition

    def _number(self, node: ast.AST, frame: pd.DataFrame) -> Any:
        """What ``node`` gives, where + - * / need numbers: never strings, which ``*`` would repeat."""
        value = self._value(node, frame)
        if isinstance(value, pd.Series) and pd.api.types.is_numeric_dtype(value.dtype):
            return value
        if isinstance(value, (int, float, np.number)) and not isinstance(value, (bool, np.bool_)):
            return value
        raise self._error(f"does arithmetic on {self._shown(node)!r}, which gives {_described(value)}; "
                          "+ - * / take numbers and numeric columns")


def _literal(node: ast.AST) -> Any:
    """The value of a literal (a number, possibly negative, a string, True, False, None), else
    ``_literal`` itself, which no literal can be."""
    if isinstance(node, ast.Constant) and isinstance(node.value, _LITERALS):
        return node.value
    if (isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd))
            and isinstance(node.operand, ast.Constant) and isinstance(node.operand.value, (int, float))
            and not isinstance(node.operand.value, bool)):
        return -node.operand.value if isinstance(node.op, ast.USub) else node.operand.value
    return _literal


def _negated(found: Any) -> Any:
    return ~found if isinstance(found, pd.Series) else not found


def _as_condition(value: Any) -> Any:
    """``value`` as true or false per row (a bool Series, or one bool for every row), else None."""
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if not isinstance(value, pd.Series):
        return None
    if value.dtype == bool:
        return value
    if pd.api.types.is_bool_dtype(value.dtype):  # pandas' nullable boolean: a missing value matches nothing
        return value.fillna(False).astype(bool)
    if value.dtype == object:  # True/False with gaps, as a union of grids leaves a param
        present = value.dropna()
        if len(present) and all(isinstance(item, (bool, np.bool_)) for item in present):
            return value.where(value.notna(), False).astype(bool)
    return None


def _kind(value: Any) -> str | None:
    """"number" or "str" for what a comparison may order, else None (no check is made)."""
    if isinstance(value, pd.Series):
        if pd.api.types.is_bool_dtype(value.dtype):
            return None
        if pd.api.types.is_numeric_dtype(value.dtype):
            return "number"
        if pd.api.types.is_string_dtype(value.dtype) and value.dropna().map(type).eq(str).all():
            return "str"
        return None
    if isinstance(value, str):
        return "str"
    if isinstance(value, (int, float, np.number)) and not isinstance(value, (bool, np.bool_)):
        return "number"
    return None


def _described(value: Any) -> str:
    if isinstance(value, pd.Series):
        return f"{value.dtype} values"
    return f"the single value {value!r}"
