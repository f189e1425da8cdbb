"""PLACEHOLDER - being written."""


def register_search(ctx, index) -> None:
    pass
