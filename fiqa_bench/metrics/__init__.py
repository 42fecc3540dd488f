"""Pure-numpy metrics: no I/O, arrays in, small dataclasses out."""
