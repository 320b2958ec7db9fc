"""The one base of churnguard's domain errors, and what each face makes of it.

Every error a library function raises on purpose derives from :class:`ChurnguardError`. It carries
a stable ``code`` (a short snake_case word, the same in the CLI's messages and the REST API's error
bodies) and ``bad_input``: whether the caller can fix it by changing what they gave (exit code 2,
an HTTP 4xx) or not (exit code 1, an HTTP 5xx). The faces map errors in one place each: the CLI's
``main`` and the service's exception handler; nothing in between catches tuples of classes.

The domain classes keep their historical builtin bases (``ValueError``, ``LookupError``, ...) as a
second base so that code written against those still works.

>>> class WidgetError(ChurnguardError, ValueError):
...     code = "bad_widget"
>>> err = WidgetError("the widget is bent")
>>> (err.code, err.bad_input, exit_code(err), isinstance(err, ValueError))
('bad_widget', True, 2, True)
>>> exit_code(ChurnguardError("broken", code="store_unavailable", bad_input=False))
1
"""

from __future__ import annotations

EXIT_OK, EXIT_FAILURE, EXIT_BAD_INPUT = 0, 1, 2


class ChurnguardError(Exception):
    """A failure churnguard raises on purpose; ``str(err)`` is the whole message for the user.

    ``code`` and ``bad_input`` are class attributes that a subclass sets once; an instance may
    override them by keyword for one occurrence (``PlanError("...", code="no_model")``).
    """

    code: str = "churnguard_error"
    bad_input: bool = True

    def __init__(self, *args: object, code: str | None = None,
                 bad_input: bool | None = None) -> None:
        super().__init__(*args)
        if code is not None:
            self.code = code
        if bad_input is not None:
            self.bad_input = bad_input


def exit_code(error: ChurnguardError) -> int:
    """The CLI's exit code for an error (DESIGN.md: 2 bad usage or input, 1 anything else)."""
    return EXIT_BAD_INPUT if error.bad_input else EXIT_FAILURE
