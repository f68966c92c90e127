"""The one error the engine's services raise for input they cannot use."""


class EngineInputError(ValueError):
    """Input the engine cannot use (a bad path, a mismatched checkpoint); nothing was saved."""
