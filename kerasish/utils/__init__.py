"""`keras.utils`."""

from kerasish.utils.naming import reset_uids as _reset_uids


def clear_session(free_memory: bool = True) -> None:
    """Resets the layer-name counters (so the next Dense is `dense` again)
    and kerasish's global call state, as `keras.utils.clear_session()`."""
    from kerasish.layers import call_context

    _reset_uids()
    call_context.CALL_STACK.clear()
    call_context.clear_call_losses()
    call_context.SYMBOLIC[0] = False
    if free_memory:
        import gc

        gc.collect()


__all__ = ["clear_session"]
