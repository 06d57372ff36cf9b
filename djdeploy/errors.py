"""Errors a user can cause, each carrying a message that says what to do."""


class DjdeployError(Exception):
    """A failure reported to the user as one paragraph, without a traceback."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class CommandError(DjdeployError):
    """A local command exited non-zero."""

    def __init__(self, argv: list[str], returncode: int, output: str, hint: str = "") -> None:
        tail = "\n".join(output.strip().splitlines()[-20:])
        message = f"`{' '.join(argv)}` failed with exit code {returncode}."
        if tail:
            message += f"\n{tail}"
        if hint:
            message += f"\n{hint}"
        super().__init__(message)
        self.argv = argv
        self.returncode = returncode
        self.output = output
