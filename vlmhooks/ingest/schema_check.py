"""Checking a prediction's `response` against the JSON Schema its submission asked for."""

from __future__ import annotations

from typing import Any

__all__ = ["check_response_schema"]

# Enough to say what is wrong without letting one response bloat its row.
_MAX_ERRORS = 50
_MAX_MESSAGE_CHARS = 500


def check_response_schema(
    json_schema: dict[str, Any] | None, response: Any
) -> tuple[bool | None, list[str] | None]:
    """Validate `response` against the submission's schema; the verdict is stored, never fatal.

    Returns `(None, None)` when there is no schema to check, else `(valid, messages or None)`.
    """
    if not json_schema:
        return None, None
    # Imported here: only submissions that carry a schema pay for loading jsonschema.
    import jsonschema

    try:
        validator_class = jsonschema.validators.validator_for(json_schema)
        validator_class.check_schema(json_schema)
    except jsonschema.SchemaError as exc:
        return False, [f"json_schema itself is invalid: {exc.message}"]
    # Draft 4 and earlier type "integer" by the parser's int: a whole number that arrives as
    # `2.0` (many encoders write floats that way) would fail although JSON Schema's own data
    # model has no int/float split; every draft here judges the value, as draft 6 and later do.
    whole_numbers = validator_class.TYPE_CHECKER.redefine("integer", _is_whole_number)
    # types-jsonschema leaves `extend` untyped; it returns a class of the same protocol.
    extended = jsonschema.validators.extend(validator_class, type_checker=whole_numbers)  # type: ignore[no-untyped-call]
    validator = extended(json_schema)
    try:
        errors = sorted(validator.iter_errors(response), key=lambda e: list(e.absolute_path))
    except Exception as exc:  # e.g. an unresolvable remote $ref: a verdict, never a failure
        message = f"json_schema could not be applied: {type(exc).__name__}: {exc}"
        return False, [message[:_MAX_MESSAGE_CHARS]]
    messages = [
        f"{'/'.join(str(p) for p in error.absolute_path) or '<root>'}: {error.message}"
        for error in errors[:_MAX_ERRORS]
    ]
    return (not messages), (messages or None)


def _is_whole_number(checker: Any, instance: Any) -> bool:
    if isinstance(instance, bool):
        return False
    return isinstance(instance, int) or (isinstance(instance, float) and instance.is_integer())
