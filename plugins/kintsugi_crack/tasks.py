def placeholder() -> None:
    raise NotImplementedError("being written")
