"""``nodegraph gui [PIPELINE.yaml] [--screenshot OUT.png]``: open the editor window.

Registered as a ``nodegraph.commands`` entry point (``gui = "nodegraph.gui.app:register"``).
The window takes the screen it is given (its size is asked of the X server) and can be
resized. With ``--screenshot`` the window is rendered for a few frames, the screen is
captured as PNG (what a user would see, not the window's own buffer, which may be larger
than the screen) and the editor closes: that is how the screenshot test checks the editor
under a virtual X server.
"""
from __future__ import annotations

import argparse
import ctypes
import ctypes.util
import os
import sys
from pathlib import Path

EXIT_OK, EXIT_INVALID = 0, 2
WINDOW_SIZE = (1600, 1000)  # when the screen's size cannot be asked (no X: Wayland, macOS...)
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
    return _x_screen_size() != (0, 0)


def _x_screen_size() -> tuple[int, int] | None:
    """(width, height) of $DISPLAY's default screen; (0, 0) when the X server does not answer,
    None when there is no Xlib to ask."""
    try:
        xlib = ctypes.CDLL(ctypes.util.find_library("X11") or "libX11.so.6")
    except OSError:
        return None
    xlib.XOpenDisplay.restype = ctypes.c_void_p
    xlib.XCloseDisplay.argtypes = [ctypes.c_void_p]
    xlib.XDefaultScreen.argtypes = [ctypes.c_void_p]
    xlib.XDisplayWidth.argtypes = xlib.XDisplayHeight.argtypes = [ctypes.c_void_p, ctypes.c_int]
    display = xlib.XOpenDisplay(None)
    if not display:
        return 0, 0
    screen = xlib.XDefaultScreen(display)
    size = xlib.XDisplayWidth(display, screen), xlib.XDisplayHeight(display, screen)
    xlib.XCloseDisplay(display)
    return size


def screen_size() -> tuple[int, int]:
    """The size of the screen the editor opens on (:data:`WINDOW_SIZE` when it cannot be asked)."""
    size = _x_screen_size() if os.environ.get("DISPLAY") else None
    return size if size and min(size) > 0 else WINDOW_SIZE


def _capture_screen(path: str) -> bool:
    """Save what the X screen shows as PNG; False when the screen cannot be grabbed here."""
    try:
        from PIL import ImageGrab
        ImageGrab.grab(xdisplay=os.environ.get("DISPLAY")).save(path)
    except Exception:  # noqa: BLE001 - Pillow without XCB, or not X: the caller falls back
        return False
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
        width, height = screen_size()
        try:
            dpg.create_viewport(title="nodegraph editor", width=width, height=height, x_pos=0,
                                y_pos=0, resizable=True)
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
            if screenshot is not None and frames == SETTLE_FRAMES and not _capture_screen(screenshot):
                dpg.output_frame_buffer(file=str(screenshot))  # the window, if not the screen
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
