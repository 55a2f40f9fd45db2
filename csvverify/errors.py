"""The error tree. Every error a user can cause carries a one-line message and a remediation hint.

The CLI prints ``Error: <message>`` and, where given, the hint from ``diagnostics()``; it never shows a
traceback for these. Each error names its exit class (see ``csvverify.verdict.ExitClass``).
"""


class CsvVerifyError(Exception):
    """Base of all csvverify errors."""

    exit_code = 1

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint

    def diagnostics(self) -> str:
        return self.message if not self.hint else f"{self.message}\n  hint: {self.hint}"


class InputError(CsvVerifyError):
    """An input could not be read or parsed (exit class 1)."""

    exit_code = 1


class UsageError(CsvVerifyError):
    """Options that do not fit together (exit class 2, like click's own usage errors)."""

    exit_code = 2


class CollateralError(CsvVerifyError):
    """Certificates needed for --chain are missing or unusable (exit class 4)."""

    exit_code = 4
