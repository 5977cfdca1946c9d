"""Small scalar nodes for testing the framework without any image work."""
import os
import signal
import time

from nodegraph import Image, Out, Param, Path, Scalar, node
from nodegraph.registry import Registry
from nodegraph.types import OutPath, Text


def registry() -> Registry:
    """A registry with only the toy nodes (a module-level function, so batch workers can call it)."""
    import toy_nodes

    toys = Registry()
    toys.add_module(toy_nodes, "toy")
    return toys


@node("toy.number")
def number(*, value: float = Param(1.0, range=(-100.0, 100.0), doc="the number")) -> Out(value=Scalar):
    """A constant."""
    return value


@node("toy.add")
def add(a: Scalar, b: Scalar = None) -> Out(total=Scalar):
    """a + b (b optional, 0 when unlinked)."""
    return a + (b or 0.0)


@node("toy.scale", version=2)
def scale(x: Scalar, *, factor: float = Param(2.0, range=(0.0, 10.0), unit="x"),
          mode: str = Param("mul", choices=("mul", "div"))) -> Out(y=Scalar):
    """x times (or divided by) factor."""
    return x * factor if mode == "mul" else x / factor


@node("toy.file_size")
def file_size(path: Path) -> Out(size=Scalar):
    """Size of a file in bytes."""
    with open(path, "rb") as handle:
        return float(len(handle.read()))


@node("toy.write_text", side_effect=True)
def write_text(value: Scalar, path: OutPath) -> Out(path=OutPath):
    """Write a number to a text file."""
    with open(path, "w") as handle:
        handle.write(f"{value}\n")
    return path


@node("toy.describe")
def describe(value: Scalar) -> Out(text=Text):
    """The number as text."""
    return f"{value:g}"


@node("toy.broken")
def broken(x: Scalar) -> Out(y=Scalar):
    """Always fails."""
    raise RuntimeError("boom")


@node("toy.bad_output")
def bad_output(x: Scalar) -> Out(image=Image):
    """Returns a value of the wrong type."""
    return "not an image"


@node("toy.read_number")
def read_number(path: Path) -> Out(value=Scalar):
    """The number written in a text file (ValueError when it holds none)."""
    with open(path) as handle:
        return float(handle.read())


@node("toy.crash_once")
def crash_once(x: Scalar, *, flag: str = Param("", doc="a file path")) -> Out(y=Scalar):
    """x; but if the file ``flag`` exists, delete it and kill this process (a worker dying)."""
    if flag and os.path.exists(flag):
        os.unlink(flag)
        os.kill(os.getpid(), signal.SIGKILL)
    return x


@node("toy.slow")
def slow(x: Scalar, *, seconds: float = Param(0.0, range=(0.0, 10.0), unit="s")) -> Out(y=Scalar):
    """x, after sleeping ``seconds``."""
    time.sleep(seconds)
    return x
