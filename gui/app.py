"""``nodegraph gui [PIPELINE.yaml] [--screenshot OUT.png]``: open the editor window.

Registered as a ``nodegraph.commands`` entry point (``gui = "nodegraph.gui.app:register"``). With
``--screenshot`` the window is rendered for a few frames, saved as PNG and closed, which is
how the screenshot test checks the editor under a virtual X server.
"""
from __future__ import annotations

import argparse
import ctypes
import ctypes.util
import os
import sys
from pathlib import Path

EXIT_OK, EXIT_INVALID = 0, 2
WINDOW_SIZE = (1920, 1080)
SETTLE_FRAMES = 30  # node sizes are known only after a frame is drawn; let the layout settle


class NoDisplay(RuntimeError):
    """The editor cannot open a window here."""


def _say(message: str) -> None:
    print(message, file=sys.stderr)


def cmd_gui(args: argparse.Namespace) -> int:
    if sys.platform.startswith("linux") and not os.environ.get("DISPLAY") \
            and not os.environ.get("WAYLAND_DISPLAY"):
        _say("error: nodegraph gui needs a display and $DISPLAY is not set "
             "(on a headless machine: xvfb-run -a nodegraph gui ...)")
        return EXIT_INVALID
    if sys.platform.startswith("linux") and os.environ.get("DISPLAY") and not _x_reachable():
        # GLFW aborts the process when it cannot open the display: check before it tries.
        _say(f"error: nodegraph gui cannot open the display {os.environ['DISPLAY']!r} "
             "(no X server there?)")
        return EXIT_INVALID
    if args.pipeline is not None and not Path(args.pipeline).is_file():
        _say(f"error: no such graph file: {args.pipeline}")
        return EXIT_INVALID
    try:
        return show(args.pipeline, args.screenshot, args.run)
    except NoDisplay as error:
        _say(f"error: {error}")
        return EXIT_INVALID


def _x_reachable() -> bool:
    """True when the X server named by $DISPLAY accepts a connection (or X cannot be probed)."""
    try:
        xlib = ctypes.CDLL(ctypes.util.find_library("X11") or "libX11.so.6")
    except OSError:
        return True  # no Xlib to ask: let the window system report the problem itself
    xlib.XOpenDisplay.restype = ctypes.c_void_p
    xlib.XCloseDisplay.argtypes = [ctypes.c_void_p]
    display = xlib.XOpenDisplay(None)
    if not display:
        return False
    xlib.XCloseDisplay(display)
    return True


def show(pipeline: str | None, screenshot: str | None = None, run: bool = False) -> int:
    """Open the editor on ``pipeline``; with ``screenshot``, save one frame there and close.

    With ``run`` the graph starts running at once (a screenshot then waits for the run).
    """
    import dearpygui.dearpygui as dpg

    from nodegraph.editing import Editor
    from nodegraph.registry import default_registry

    from .view import EditorView

    editor = Editor(default_registry())
    if pipeline is not None:
        editor.open(pipeline)
    dpg.create_context()
    try:
        view = EditorView(editor)
        main = view.build()
        try:
            dpg.create_viewport(title="nodegraph editor", width=WINDOW_SIZE[0],
                                height=WINDOW_SIZE[1])
            dpg.setup_dearpygui()
        except Exception as error:  # no X server behind $DISPLAY, no OpenGL...
            raise NoDisplay(f"cannot open the editor window: {error}") from None
        dpg.set_primary_window(main, True)
        dpg.show_viewport()
        if run:
            view._on_run()
        frames = 0
        while dpg.is_dearpygui_running():
            view.frame()
            dpg.render_dearpygui_frame()
            if not editor.running:  # a screenshot shows the finished run
                frames += 1
            if screenshot is not None and frames == SETTLE_FRAMES:
                dpg.output_frame_buffer(file=str(screenshot))
            if screenshot is not None and frames == SETTLE_FRAMES + 3:  # the file is written
                break                                                  # on a later frame
    finally:
        dpg.destroy_context()
    if screenshot is not None:
        if not Path(screenshot).is_file():
            _say(f"error: the screenshot was not written to {screenshot}")
            return EXIT_INVALID
        _say(f"wrote {screenshot}")
    return EXIT_OK


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``gui`` sub-command to the ``nodegraph`` command line."""
    parser = subparsers.add_parser("gui", help="open the visual graph editor")
    parser.add_argument("pipeline", nargs="?", help="graph file to open")
    parser.add_argument("--screenshot", metavar="FILE.png",
                        help="render the editor, save what the screen shows as PNG and exit")
    parser.add_argument("--run", action="store_true", help="run the graph as soon as it is open")
    parser.set_defaults(handler=cmd_gui)


def main(argv: list[str] | None = None) -> int:
    """``python -m nodegraph.gui.app``: the same command without the nodegraph entry point."""
    parser = argparse.ArgumentParser(prog="nodegraph")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["gui", *(sys.argv[1:] if argv is None else argv)])
    return args.handler(args)


if __name__ == "__main__":
    sys.exit(main())
