"""Small configuration files the command-line tests share."""


def tiny_block(norm="pre"):
    """A ``[block]`` table of a 2-layer MLP block with additive injection (fast to run)."""
    return f"""
[block]
width = 4
tokens = 1
layers = 2
mixer = "mlp"
hidden = 4
activation = "tanh"
norm = "{norm}"
injection = "additive"
"""


def tiny_sweep(norm="pre", loops=120, chunk=16, alphas=8):
    """``tiny_block(norm)`` with a sweep of ``alphas`` × 3 points in chunks of ``chunk``."""
    return tiny_block(norm) + f"""
[sweep]
loops = {loops}
chunk = {chunk}

[sweep.axes]
residual_scale = {{ start = 0.0, stop = 3.0, num = {alphas} }}
injection_scale = [0.0, 1.0, 2.0]
"""


#: ``tiny_block()`` with a sweep of 8 × 3 points in chunks of 16.
TINY_SWEEP = tiny_sweep()


def write(tmp_path, text, name="config.toml"):
    """Write ``text`` to ``tmp_path / name``; return the path as a string."""
    path = tmp_path / name
    path.write_text(text)
    return str(path)
