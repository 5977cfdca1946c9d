"""The editor window in DearPyGui: a view of :class:`nodegraph.editing.Editor`, nothing more.

Every change goes through the Editor (which checks it, validates the graph and keeps the undo
history); the view draws the graph, turns widget callbacks into Editor calls and, once per
frame (:meth:`EditorView.frame`), applies what a background run reported. It knows port types
and parameter metadata, never what a node computes.

Items carry string tags so tests can find them without a viewport:
``node:NAME``, ``in:NAME:PORT``, ``out:NAME:PORT``, ``link:NAME:PORT`` (the link into that
input), ``param:NAME:PARAM``, ``bypass:NAME``, ``status:NAME``, ``problems:NAME``; the graph
inputs and outputs are the boxes ``node:@inputs`` and ``node:@outputs`` (whose pin
``in:@outputs:@new`` makes a new graph output of whatever port is linked to it); the full
text shown on hovering a widget is ``tip:TAG``.

Zoom: DearPyGui's node editor cannot scale itself, so the view draws at a zoom level: box
positions and widget widths are multiplied by it and the canvas text uses a font rasterised
at that size (a TrueType font found on the system; without one, the global font scale). On
open, and with "Fit", the zoom is the largest level at which the whole graph fits the canvas.
"""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import dearpygui.dearpygui as dpg
import numpy as np

from nodegraph.editing import INPUTS_BOX, OUTPUTS_BOX, Editor, EditRefused, fit_zoom
from nodegraph.graph import INPUTS, Ref
from nodegraph.node import ParamSpec
from nodegraph.types import PORT_TYPES, PortType

GRAPH_INPUTS, GRAPH_OUTPUTS = INPUTS_BOX, OUTPUTS_BOX
NEW_OUTPUT = "@new"  # the outputs box's pin that makes a new graph output
PREVIEW_SIZE = (320, 240)
PALETTE_WIDTH, SIDE_WIDTH = 180, 340
TOOLBAR_HEIGHT = 60  # menu bar and toolbar above the panels, px
NODE_WIDGET_WIDTH = 100
INPUT_TEXT_WIDTH = 190
ZOOM_LEVELS = (0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.25, 1.5)
CANVAS_FONT_PX = 14  # canvas text height at zoom 1
NEUTRAL_COLOUR = (200, 200, 200)
FONT_CANDIDATES = ("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
                   "/usr/share/fonts/TTF/DejaVuSans.ttf", "/usr/share/fonts/dejavu/DejaVuSans.ttf",
                   "/System/Library/Fonts/Supplemental/Arial.ttf", "C:/Windows/Fonts/arial.ttf")
STATUS_COLOURS = {
    "pending": (150, 150, 150), "running": (240, 200, 60), "ran": (90, 200, 110),
    "cached": (100, 160, 240), "bypassed": (170, 120, 220), "failed": (240, 80, 80),
}
ERROR_COLOUR = (255, 110, 100)
_TITLE_DIM = 0.55  # title bars in a darker shade of the status colour, so white text stays legible


def _tag(*parts: str) -> str:
    return ":".join(parts)


def _rgb(colour: tuple[int, int, int], scale: float = 1.0) -> tuple[int, int, int, int]:
    return tuple(int(c * scale) for c in colour) + (255,)  # type: ignore[return-value]


def _value_label(value: Any) -> str:
    return "" if value is None else ", ".join(map(str, value)) if isinstance(value, list) else str(value)


def _canvas_font_file() -> str | None:
    """A TrueType font to draw the canvas at any zoom: a common one, else fontconfig's sans."""
    for candidate in FONT_CANDIDATES:
        if Path(candidate).is_file():
            return candidate
    if shutil.which("fc-match"):
        found = subprocess.run(["fc-match", "-f", "%{file}", "sans"], capture_output=True,
                               text=True, timeout=10).stdout.strip()
        if found.endswith((".ttf", ".otf")) and Path(found).is_file():
            return found
    return None


def _full_text_tooltip(item: str | int, text: str) -> None:
    """Show ``text`` in full when the mouse rests on a widget that may cut it off (the
    tooltip's text item is tagged ``tip:TAG``)."""
    if text:
        with dpg.tooltip(item):
            dpg.add_text(text, wrap=480, tag=f"tip:{item}")


class EditorView:
    """Builds the window for an Editor and keeps it in step with it."""

    def __init__(self, editor: Editor) -> None:
        self.editor = editor
        self.ports: dict[str, tuple[str, str, str]] = {}  # attribute tag -> (in/out, node, port)
        self.selected: str | None = None  # node shown in the preview panel
        self.preview_key: str = ""  # "node.port" shown in the preview
        self._drawn_revision = -1
        self._positions: dict[str, tuple[float, float]] = {}  # as last drawn or stored
        self._preview_shown: tuple[str, int] = ("", -1)
        self._values_id = 0
        self._sizes: dict[str, tuple[float, float]] = {}  # at zoom 1
        self._measured = False
        self.message = ""
        self.zoom = 1.0
        self._origin = (0.0, 0.0)  # graph point drawn at the canvas's top-left corner
        # Fit the graph to the canvas once its boxes are measured, and once more when they
        # have been measured at the zoom of the first fit (paddings do not scale exactly).
        self._fits_left = 3
        self._fonts: dict[float, int | str] = {}
        self._mouse_down = False

    # ------------------------------------------------------------ building

    def build(self) -> str:
        """Create the themes, textures, dialogs and the main window; returns its tag."""
        self._build_themes()
        self._build_fonts()
        self._build_zoom_themes()
        with dpg.texture_registry():
            w, h = PREVIEW_SIZE
            dpg.add_dynamic_texture(w, h, np.zeros(w * h * 4, np.float32), tag="preview_texture")
        for tag, callback, label in (("open_dialog", self._on_open, "Open graph"),
                                     ("save_dialog", self._on_save_as, "Save graph as")):
            with dpg.file_dialog(label=label, tag=tag, show=False, width=640, height=420,
                                 callback=callback, directory_selector=False):
                dpg.add_file_extension(".yaml", color=(120, 220, 120, 255))
                dpg.add_file_extension(".*")
        with dpg.window(tag="main", label="nodegraph"):
            self._build_menu()
            with dpg.group(horizontal=True):
                dpg.add_button(label="Run", tag="run_button", callback=self._on_run, width=70)
                dpg.add_button(label="Undo", callback=lambda: self._undo_redo(True))
                dpg.add_button(label="Redo", callback=lambda: self._undo_redo(False))
                dpg.add_button(label="Fit", tag="fit_button", callback=self._on_fit)
                dpg.add_combo([f"{round(level * 100)} %" for level in ZOOM_LEVELS], tag="zoom_combo",
                              default_value="100 %", width=80, callback=self._on_zoom)
                dpg.add_text("", tag="file_text", color=(200, 200, 200))
                dpg.add_text("", tag="message_text", color=(240, 200, 90))
            with dpg.group(horizontal=True, tag="panels"):
                with dpg.child_window(tag="palette_panel", width=PALETTE_WIDTH):
                    self._build_palette()
                with dpg.child_window(tag="graph_panel", width=-SIDE_WIDTH):
                    dpg.add_node_editor(tag="node_editor", callback=self._on_link,
                                        delink_callback=self._on_delink, minimap=True,
                                        minimap_location=dpg.mvNodeMiniMap_Location_BottomRight)
                with dpg.child_window(tag="side_panel", width=-1):
                    self._build_side_panel()
        with dpg.handler_registry(tag="keys"):
            dpg.add_key_press_handler(dpg.mvKey_Delete, callback=self._on_delete)
        self.refresh()
        return "main"

    def _build_themes(self) -> None:
        for ptype in PORT_TYPES.values():
            with dpg.theme(tag=_tag("theme", "port", ptype.name)):
                with dpg.theme_component(dpg.mvAll):
                    dpg.add_theme_color(dpg.mvNodeCol_Pin, _rgb(ptype.color),
                                        category=dpg.mvThemeCat_Nodes)
                    dpg.add_theme_color(dpg.mvNodeCol_PinHovered, _rgb(ptype.color, 1.2),
                                        category=dpg.mvThemeCat_Nodes)
            with dpg.theme(tag=_tag("theme", "link", ptype.name)):
                with dpg.theme_component(dpg.mvAll):
                    dpg.add_theme_color(dpg.mvNodeCol_Link, _rgb(ptype.color),
                                        category=dpg.mvThemeCat_Nodes)
                    dpg.add_theme_color(dpg.mvNodeCol_LinkHovered, (255, 255, 255, 255),
                                        category=dpg.mvThemeCat_Nodes)
                    dpg.add_theme_style(dpg.mvNodeStyleVar_LinkThickness, 3.0,
                                        category=dpg.mvThemeCat_Nodes)
        for status, colour in {**STATUS_COLOURS, "error": ERROR_COLOUR, "io": (70, 90, 110)}.items():
            with dpg.theme(tag=_tag("theme", "node", status)):
                with dpg.theme_component(dpg.mvNode):
                    for part in (dpg.mvNodeCol_TitleBar, dpg.mvNodeCol_TitleBarHovered,
                                 dpg.mvNodeCol_TitleBarSelected):
                        dpg.add_theme_color(part, _rgb(colour, _TITLE_DIM), category=dpg.mvThemeCat_Nodes)

    def _build_zoom_themes(self) -> None:
        """Paddings and spacings of the canvas scaled with the zoom, so boxes shrink with text."""
        for level in ZOOM_LEVELS:
            with dpg.theme(tag=_tag("theme", "zoom", str(level))):
                with dpg.theme_component(dpg.mvAll):
                    dpg.add_theme_style(dpg.mvNodeStyleVar_NodePadding, 8 * level, 8 * level,
                                        category=dpg.mvThemeCat_Nodes)
                    dpg.add_theme_style(dpg.mvStyleVar_FramePadding, 4 * level, 3 * level)
                    dpg.add_theme_style(dpg.mvStyleVar_ItemSpacing, 8 * level, 4 * level)
                    dpg.add_theme_style(dpg.mvStyleVar_ItemInnerSpacing, 4 * level, 4 * level)

    def _build_fonts(self) -> None:
        font_file = _canvas_font_file()
        if font_file is None:
            return
        with dpg.font_registry():
            for level in ZOOM_LEVELS:
                self._fonts[level] = dpg.add_font(font_file, max(6, round(CANVAS_FONT_PX * level)))

    def _build_menu(self) -> None:
        with dpg.menu_bar():
            with dpg.menu(label="File"):
                dpg.add_menu_item(label="Open...", callback=lambda: dpg.show_item("open_dialog"))
                dpg.add_menu_item(label="Save", shortcut="Ctrl+S", callback=self._on_save)
                dpg.add_menu_item(label="Save as...", callback=lambda: dpg.show_item("save_dialog"))
            with dpg.menu(label="Edit"):
                dpg.add_menu_item(label="Undo", shortcut="Ctrl+Z", callback=lambda: self._undo_redo(True))
                dpg.add_menu_item(label="Redo", shortcut="Ctrl+Y", callback=lambda: self._undo_redo(False))
                dpg.add_menu_item(label="Delete selected", shortcut="Del", callback=self._on_delete)

    def _build_palette(self) -> None:
        dpg.add_text("Nodes (click to add)")
        dpg.add_input_text(tag="palette_search", hint="search", width=-1,
                           callback=lambda: self._fill_palette())
        dpg.add_child_window(tag="palette_list", border=False)
        self._fill_palette()

    def _fill_palette(self) -> None:
        dpg.delete_item("palette_list", children_only=True)
        for spec in self.editor.palette(dpg.get_value("palette_search") or ""):
            item = dpg.add_selectable(label=spec.id, parent="palette_list",
                                      tag=_tag("palette", spec.id), user_data=spec.id,
                                      callback=self._on_add)
            with dpg.tooltip(item):
                dpg.add_text(f"{spec.id} v{spec.version} [{spec.source}]")
                dpg.add_text(spec.summary or "(no description)", wrap=360)

    def _build_side_panel(self) -> None:
        dpg.add_text("Preview")
        dpg.add_combo([], tag="preview_combo", width=-1, callback=self._on_preview_choice)
        dpg.add_image("preview_texture", tag="preview_image")
        dpg.add_text("", tag="preview_text", wrap=320)
        dpg.add_separator()
        dpg.add_text("Run")
        dpg.add_text("", tag="run_text", wrap=320)
        dpg.add_separator()
        dpg.add_text("Problems")
        dpg.add_text("", tag="problems_text", wrap=320, color=NEUTRAL_COLOUR)

    # ------------------------------------------------------------ the graph

    def refresh(self) -> None:
        """Redraw the whole graph from the Editor (after structural edits, undo, open, zoom)."""
        dpg.delete_item("node_editor", children_only=True)
        self.ports.clear()
        graph = self.editor.graph
        layout = self.editor.layout(self._sizes, self.canvas_size())
        self._positions = dict(layout)
        self._add_inputs_box()
        for name in graph.nodes:
            self._add_node(name)
        self._add_outputs_box()
        self._apply_canvas_font()
        for box, pos in layout.items():
            if dpg.does_item_exist(_tag("node", box)):
                dpg.set_item_pos(_tag("node", box), self._drawn(pos))
        for name, inst in graph.nodes.items():
            for port, ref in inst.links.items():
                self._add_link(ref, name, port, _tag("in", name, port))
        for out, ref in graph.outputs.items():
            self._add_link(ref, GRAPH_OUTPUTS, out, _tag("in", GRAPH_OUTPUTS, out))
        dpg.set_value("file_text", self._file_label())
        dpg.set_value("zoom_combo", f"{round(self.zoom * 100)} %")
        self._update_problems()
        self._update_status()
        self._update_preview_choices()
        self._drawn_revision = self.editor.revision
        self._measured = False

    # ------------------------------------------------------------ zoom

    def _drawn(self, pos: tuple[float, float]) -> tuple[float, float]:
        """Canvas position of a graph position at the current zoom."""
        return ((pos[0] - self._origin[0]) * self.zoom, (pos[1] - self._origin[1]) * self.zoom)

    def _graph_pos(self, drawn: tuple[float, float]) -> tuple[float, float]:
        return (drawn[0] / self.zoom + self._origin[0], drawn[1] / self.zoom + self._origin[1])

    def _scaled(self, width: float) -> int:
        return max(20, round(width * self.zoom))

    def _apply_canvas_font(self) -> None:
        """Draw the boxes' text at the zoom (a node editor passes no font on to its nodes)."""
        for box in self.editor.boxes():
            if not dpg.does_item_exist(_tag("node", box)):
                continue
            if self._fonts:
                dpg.bind_item_font(_tag("node", box), self._fonts[self.zoom])
        if not self._fonts:  # no TrueType font: scale every text, the panels' too
            dpg.set_global_font_scale(self.zoom)
        dpg.bind_item_theme("node_editor", _tag("theme", "zoom", str(self.zoom)))

    def canvas_size(self) -> tuple[float, float]:
        """Size of the graph canvas: the panel's, else what the viewport leaves for it."""
        width, height = dpg.get_item_rect_size("graph_panel")
        if width > 100 and height > 100:
            return float(width), float(height)
        try:
            return (float(dpg.get_viewport_client_width() - PALETTE_WIDTH - SIDE_WIDTH),
                    float(dpg.get_viewport_client_height() - TOOLBAR_HEIGHT))
        except Exception:  # no viewport: the item tree is being built for a test
            return 1200.0, 800.0

    def set_zoom(self, zoom: float, origin: tuple[float, float] | None = None) -> None:
        """Draw at ``zoom`` (one of :data:`ZOOM_LEVELS`), keeping the view's top-left corner."""
        self.zoom = min(ZOOM_LEVELS, key=lambda level: abs(level - zoom))
        if origin is not None:
            self._origin = origin
        self.refresh()

    def fit(self) -> None:
        """Zoom and scroll so that every box of the graph is in view (the "Fit" button)."""
        layout = self.editor.layout(self._sizes, self.canvas_size())
        zoom = fit_zoom(layout, self._sizes, self.canvas_size(), ZOOM_LEVELS)
        margin = 20 / zoom
        origin = (min(x for x, _ in layout.values()) - margin, min(y for _, y in layout.values()) - margin)
        self._fits_left = max(self._fits_left - 1, 0)
        self.set_zoom(zoom, origin)

    def _on_fit(self) -> None:
        self._fits_left = 1
        self.fit()

    def _on_zoom(self, sender: Any, label: str) -> None:
        self.set_zoom(float(label.rstrip(" %")) / 100)

    def _measure(self) -> None:
        """Learn each box's drawn size (at zoom 1); then fit the graph once, as it opens.

        Sizes are known only once a frame has been drawn, so the first frame uses guesses.
        """
        sizes = {}
        for box in self.editor.boxes():
            w, h = dpg.get_item_rect_size(_tag("node", box))
            if w <= 0:
                return  # not drawn yet
            sizes[box] = (float(w) / self.zoom, float(h) / self.zoom)
        self._measured = True
        changed = sizes != self._sizes
        self._sizes = sizes
        if self._fits_left:
            self.fit()
        elif changed:
            for box, pos in self.editor.layout(sizes, self.canvas_size()).items():
                dpg.set_item_pos(_tag("node", box), self._drawn(pos))
                self._positions[box] = pos

    def _add_inputs_box(self) -> None:
        graph = self.editor.graph
        if not graph.inputs:
            return
        with dpg.node(label="graph inputs", tag=_tag("node", GRAPH_INPUTS), parent="node_editor",
                      user_data=GRAPH_INPUTS):
            for name, gi in graph.inputs.items():
                ptype = PORT_TYPES.get(gi.type, PORT_TYPES["Any"])
                tag = _tag("out", INPUTS, name)
                with dpg.node_attribute(tag=tag, attribute_type=dpg.mvNode_Attr_Output,
                                        shape=dpg.mvNode_PinShape_TriangleFilled):
                    dpg.add_text(f"{name}: {gi.type}", color=_rgb(ptype.color))
                    dpg.add_input_text(tag=_tag("input", name), default_value=_value_label(gi.default),
                                       hint="auto", width=self._scaled(INPUT_TEXT_WIDTH),
                                       on_enter=True, user_data=name, callback=self._on_input_value)
                    # A long path is cut off in the box: the tooltip shows it whole.
                    _full_text_tooltip(_tag("input", name), "\n".join(
                        part for part in (_value_label(gi.default), gi.doc) if part))
                dpg.bind_item_theme(tag, _tag("theme", "port", ptype.name))
                self.ports[tag] = ("out", INPUTS, name)
        dpg.bind_item_theme(_tag("node", GRAPH_INPUTS), _tag("theme", "node", "io"))

    def _add_outputs_box(self) -> None:
        with dpg.node(label="graph outputs", tag=_tag("node", GRAPH_OUTPUTS), parent="node_editor",
                      user_data=GRAPH_OUTPUTS):
            for name in [*self.editor.graph.outputs, NEW_OUTPUT]:
                tag = _tag("in", GRAPH_OUTPUTS, name)
                with dpg.node_attribute(tag=tag, attribute_type=dpg.mvNode_Attr_Input):
                    dpg.add_text(name if name != NEW_OUTPUT else "+ new output",
                                 color=(150, 150, 150) if name == NEW_OUTPUT else (255, 255, 255))
                self.ports[tag] = ("in", GRAPH_OUTPUTS, name)
        dpg.bind_item_theme(_tag("node", GRAPH_OUTPUTS), _tag("theme", "node", "io"))

    def _add_node(self, name: str) -> None:
        inst = self.editor.graph.nodes[name]
        spec = self.editor.spec(name)
        node_tag = _tag("node", name)
        with dpg.node(label=f"{name}  ({inst.type})", tag=node_tag, parent="node_editor",
                      user_data=name):
            if spec is None:  # unknown type: draw what the file links, so it can be fixed
                inputs = {port: PORT_TYPES["Any"] for port in inst.links}
                outputs = {port: PORT_TYPES["Any"] for port in self._used_outputs(name)}
                optional: set[str] = set()
            else:
                inputs = {port: s.type for port, s in spec.inputs.items()}
                outputs = dict(spec.outputs)
                optional = {port for port, s in spec.inputs.items() if s.optional}
            for port, ptype in inputs.items():
                label = f"{port}: {ptype.name}" + ("?" if port in optional else "")
                self._add_port("in", name, port, ptype, label)
            for port, ptype in outputs.items():
                self._add_port("out", name, port, ptype, f"{port}: {ptype.name}")
            with dpg.node_attribute(attribute_type=dpg.mvNode_Attr_Static):
                if spec is not None:
                    for pspec in spec.params.values():
                        self._add_param_widget(name, pspec, inst.params.get(pspec.name, pspec.default))
                with dpg.group(horizontal=True):
                    dpg.add_checkbox(label="bypass", tag=_tag("bypass", name),
                                     default_value=inst.bypass, user_data=name,
                                     callback=self._on_bypass)
                    if spec is not None and spec.doc:  # a node item takes no tooltip itself
                        dpg.add_text("(?)", color=(150, 150, 150))
                        with dpg.tooltip(dpg.last_item()):
                            dpg.add_text(spec.doc, wrap=420)
                dpg.add_text("", tag=_tag("status", name))
                dpg.add_text("", tag=_tag("problems", name), color=ERROR_COLOUR,
                             wrap=self._scaled(260))

    def _used_outputs(self, name: str) -> list[str]:
        graph = self.editor.graph
        links = [*(lk for inst in graph.nodes.values() for lk in inst.links.values()),
                 *graph.outputs.values()]
        return sorted({ref.port for ref in links if ref.node == name})

    def _add_port(self, kind: str, node: str, port: str, ptype: PortType, label: str) -> None:
        tag = _tag(kind, node, port)
        with dpg.node_attribute(tag=tag, attribute_type=dpg.mvNode_Attr_Input if kind == "in"
                                else dpg.mvNode_Attr_Output,
                                shape=dpg.mvNode_PinShape_CircleFilled):
            dpg.add_text(label, color=_rgb(ptype.color), indent=0 if kind == "in" else self._scaled(40))
        dpg.bind_item_theme(tag, _tag("theme", "port", ptype.name))
        self.ports[tag] = (kind, node, port)

    def _add_param_widget(self, node: str, pspec: ParamSpec, value: Any) -> None:
        """A widget chosen from the parameter's metadata: its type, range, choices."""
        tag = _tag("param", node, pspec.name)
        unit = f" [{pspec.unit}]" if pspec.unit else ""
        common = dict(tag=tag, label=pspec.name, width=self._scaled(NODE_WIDGET_WIDTH),
                      user_data=(node, pspec), callback=self._on_param)
        if pspec.choices is not None:
            items = [str(c) for c in pspec.choices]
            dpg.add_combo(items, default_value=str(value), **common)
        elif pspec.type is bool and not pspec.optional:
            common.pop("width")
            dpg.add_checkbox(default_value=bool(value), **common)
        elif pspec.optional or pspec.type is str:
            # Free text, parsed like --set: file paths, and "auto"/empty for optional values.
            dpg.add_input_text(default_value=_value_label(value), hint="auto" if pspec.optional else "",
                               on_enter=True, **common)
        elif pspec.type is float:
            if pspec.range is not None:
                dpg.add_slider_float(default_value=float(value), min_value=pspec.range[0],
                                     max_value=pspec.range[1], clamped=True, **common)
            else:
                dpg.add_drag_float(default_value=float(value), speed=0.01, **common)
        elif pspec.range is not None:
            dpg.add_slider_int(default_value=int(value), min_value=int(pspec.range[0]),
                               max_value=int(pspec.range[1]), clamped=True, **common)
        else:
            dpg.add_drag_int(default_value=int(value), **common)
        # The tooltip shows the whole value too: a narrow text field cuts off a long path.
        shown = f"\nvalue: {_value_label(value)}" if dpg.get_item_type(tag).endswith("InputText") \
            and _value_label(value) else ""
        bounds = f" in [{pspec.range[0]}, {pspec.range[1]}]" if pspec.range else ""
        _full_text_tooltip(tag, f"{pspec.name}: {pspec.type.__name__}{bounds}{unit}, "
                                f"default {pspec.default!r}{shown}\n{pspec.doc}".rstrip())

    def _add_link(self, ref: Ref, node: str, port: str, target: str) -> None:
        source = _tag("out", ref.node, ref.port)
        if not dpg.does_item_exist(source) or not dpg.does_item_exist(target):
            return
        tag = _tag("link", node, port)
        dpg.add_node_link(source, target, parent="node_editor", tag=tag)
        ptype = self._source_type(ref)
        dpg.bind_item_theme(tag, _tag("theme", "link", ptype.name))

    def _source_type(self, ref: Ref) -> PortType:
        if ref.node == INPUTS:
            return PORT_TYPES.get(self.editor.graph.inputs[ref.port].type, PORT_TYPES["Any"])
        spec = self.editor.spec(ref.node)
        return spec.outputs.get(ref.port, PORT_TYPES["Any"]) if spec else PORT_TYPES["Any"]

    # ------------------------------------------------------------ per-frame updates

    def frame(self) -> None:
        """Once per rendered frame: apply run reports, follow edits, selection and moves."""
        reports = self.editor.poll()
        if self.editor.revision != self._drawn_revision:
            self.refresh()
        if reports:
            self._update_status()
            if any(kind == "done" for kind, _ in reports):
                self._values_id += 1
        if not self._measured:
            self._measure()
        self._follow_moves()
        self._follow_selection()
        self._update_preview()
        dpg.set_value("message_text", self.editor.run_message if self.editor.running else self.message)

    def _follow_moves(self) -> None:
        """Store a box's new position (in graph units) as the mouse that dragged it is released
        (not otherwise: positions read back in whole pixels must not count as moves)."""
        down = dpg.is_mouse_button_down(dpg.mvMouseButton_Left)
        released, self._mouse_down = self._mouse_down and not down, down
        if not released:
            return
        for box, old in list(self._positions.items()):
            tag = _tag("node", box)
            if not dpg.does_item_exist(tag):
                continue
            drawn, expected = dpg.get_item_pos(tag), self._drawn(old)
            if abs(drawn[0] - expected[0]) > 0.5 or abs(drawn[1] - expected[1]) > 0.5:
                x, y = self._graph_pos((drawn[0], drawn[1]))
                self._positions[box] = (x, y)
                self._quietly(lambda b=box, x=x, y=y: self.editor.move(b, round(x), round(y)))

    def _follow_selection(self) -> None:
        selected = [dpg.get_item_user_data(item) for item in dpg.get_selected_nodes("node_editor")]
        selected = [name for name in selected if name in self.editor.graph.nodes]
        if selected and selected[0] != self.selected:
            self.selected = selected[0]
            spec = self.editor.spec(self.selected)
            ports = [p for p, t in (spec.outputs.items() if spec else []) if t.previewable]
            if ports:
                self.preview_key = f"{self.selected}.{ports[0]}"
                dpg.set_value("preview_combo", self.preview_key)

    def _update_status(self) -> None:
        for name in self.editor.graph.nodes:
            status = self.editor.status.get(name)
            problems = self.editor.node_problems(name)
            theme = "error" if problems else status.status if status else None
            node_tag = _tag("node", name)
            if not dpg.does_item_exist(node_tag):
                continue
            dpg.bind_item_theme(node_tag, _tag("theme", "node", theme) if theme else 0)
            if status is None:
                dpg.set_value(_tag("status", name), "")
                continue
            text = status.status
            if status.status not in ("pending", "running"):
                text += f"  {status.seconds:.3f} s"
            if status.message:  # the full text is in the side panel; nodes stay narrow
                lines = status.message.splitlines()
                warnings = sum(line.startswith("warning:") for line in lines)
                notes = sum(line.startswith("note:") for line in lines)
                said = [f"{n} {word}{'s' * (n > 1)}" for n, word in ((warnings, "warning"), (notes, "note")) if n]
                summary = "failed" if status.status == "failed" else ", ".join(said) or "messages"
                text += f"\n{summary}, see Run"
            dpg.set_value(_tag("status", name), text)
            dpg.configure_item(_tag("status", name), color=STATUS_COLOURS.get(status.status, (200,) * 3))
        notes = [f"{name}: {s.message}" for name, s in self.editor.status.items() if s.message]
        dpg.set_value("run_text", "\n".join([self.editor.run_message, *notes]))

    def _update_problems(self) -> None:
        for name in self.editor.graph.nodes:
            if dpg.does_item_exist(_tag("problems", name)):
                dpg.set_value(_tag("problems", name), "\n".join(self.editor.node_problems(name)))
        lines = [str(p) for p in self.editor.problems]
        dpg.set_value("problems_text", "\n".join(lines) if lines else "none: the graph can run")
        dpg.configure_item("problems_text", color=ERROR_COLOUR if lines else NEUTRAL_COLOUR)

    def _update_preview_choices(self) -> None:
        keys = []
        for name in self.editor.graph.nodes:
            spec = self.editor.spec(name)
            if spec is not None:
                keys += [f"{name}.{p}" for p, t in spec.outputs.items() if t.previewable]
        dpg.configure_item("preview_combo", items=keys)
        if self.preview_key not in keys:
            # Until a node is picked, show the first graph output that is a picture.
            outputs = [str(link) for link in self.editor.graph.outputs.values()]
            self.preview_key = next((key for key in outputs if key in keys), "")
            dpg.set_value("preview_combo", self.preview_key)

    def _update_preview(self) -> None:
        shown = (self.preview_key, self._values_id)
        if shown == self._preview_shown:
            return
        self._preview_shown = shown
        w, h = PREVIEW_SIZE
        canvas = np.zeros((h, w, 4), np.float32)
        picture = None
        if self.preview_key:
            node, port = self.preview_key.split(".", 1)
            picture = self.editor.preview(node, port, max_side=w)
        if picture is None:
            dpg.set_value("preview_text", "run the graph to see this output" if self.preview_key
                          else "select a node or pick an output port")
        else:
            picture = picture[: h, : w]
            ph, pw = picture.shape[:2]
            canvas[:ph, :pw, :3] = picture[..., ::-1] / 255.0  # BGR -> RGB
            canvas[:ph, :pw, 3] = 1.0
            value = self.editor.output_value(node, port)
            dpg.set_value("preview_text", f"{self.preview_key}: {tuple(value.shape)}")
        dpg.set_value("preview_texture", canvas.ravel())

    # ------------------------------------------------------------ callbacks

    def _quietly(self, action: Any) -> bool:
        """Run an Editor call; a refusal becomes the message shown in the toolbar."""
        try:
            action()
        except EditRefused as refused:
            self.message = f"refused: {refused}"
            return False
        self.message = ""
        return True

    def _keep_drawing(self) -> None:
        """After an edit the widgets already show: skip the redraw, update the problems."""
        self._drawn_revision = self.editor.revision
        self._update_problems()
        self._update_status()

    def _on_link(self, sender: Any, app_data: tuple[Any, Any]) -> None:
        first, second = (dpg.get_item_alias(a) or a for a in app_data)
        ends = [self.ports.get(first), self.ports.get(second)]
        if None in ends:
            return
        (_, src_node, src_port), (_, dst_node, dst_port) = sorted(ends, key=lambda e: e[0] != "out")
        if dst_node == GRAPH_OUTPUTS and dst_port == NEW_OUTPUT:
            self._quietly(lambda: self.editor.add_output(src_node, src_port))
        elif dst_node == GRAPH_OUTPUTS:
            self._quietly(lambda: self.editor.set_output(dst_port, src_node, src_port))
        else:
            self._quietly(lambda: self.editor.connect(src_node, src_port, dst_node, dst_port))

    def _on_delink(self, sender: Any, link: Any) -> None:
        alias = dpg.get_item_alias(link) or str(link)
        _, node, port = alias.split(":", 2)
        if node == GRAPH_OUTPUTS:
            self._quietly(lambda: self.editor.remove_output(port))
        else:
            self._quietly(lambda: self.editor.disconnect(node, port))

    def _on_param(self, sender: Any, value: Any, user_data: tuple[str, ParamSpec]) -> None:
        node, pspec = user_data
        if pspec.choices is not None:
            value = pspec.choices[[str(c) for c in pspec.choices].index(value)]
        elif isinstance(value, str):  # free text: parsed like --set ("auto" -> None)
            try:
                value = pspec.parse(value.strip())
            except ValueError as error:
                self.message = f"refused: {node}.{pspec.name}: {error}"
                self.refresh()
                return
        if self._quietly(lambda: self.editor.set_param(node, pspec.name, value)):
            self._keep_drawing()
        else:
            self.refresh()  # put the widget back to the value the graph holds

    def _on_bypass(self, sender: Any, value: bool, node: str) -> None:
        if self._quietly(lambda: self.editor.set_bypass(node, value)):
            self._keep_drawing()

    def _on_input_value(self, sender: Any, value: str, name: str) -> None:
        if self._quietly(lambda: self.editor.set_input(name, value)):
            self._keep_drawing()
        else:
            self.refresh()

    def _on_add(self, sender: Any, app_data: Any, type_name: str) -> None:
        dpg.set_value(sender, False)
        x, y = 300.0, 40.0
        taken = set(map(tuple, self._positions.values()))
        while (x, y) in taken:  # new nodes fan out instead of piling up
            x, y = x + 30, y + 30
        self._quietly(lambda: self.editor.add_node(type_name, pos=(x, y)))

    def _on_delete(self) -> None:
        for item in dpg.get_selected_links("node_editor"):
            self._on_delink(None, item)
        for item in dpg.get_selected_nodes("node_editor"):
            name = dpg.get_item_user_data(item)
            if name in self.editor.graph.nodes:
                self._quietly(lambda n=name: self.editor.delete_node(n))

    def _on_run(self) -> None:
        if self.editor.run():
            self.message = ""
            self._update_status()
        else:
            self.message = self.editor.run_message

    def _undo_redo(self, undo: bool) -> None:
        done = self.editor.undo() if undo else self.editor.redo()
        self.message = "" if done else f"nothing to {'undo' if undo else 'redo'}"

    def _on_preview_choice(self, sender: Any, key: str) -> None:
        self.preview_key = key

    def _on_save(self) -> None:
        if self.editor.path is None:
            dpg.show_item("save_dialog")
            return
        if self._quietly(self.editor.save):
            self.message = f"saved {self.editor.path}"
            dpg.set_value("file_text", self._file_label())

    def _on_save_as(self, sender: Any, app_data: dict[str, Any]) -> None:
        path = app_data.get("file_path_name")
        if path and self._quietly(lambda: self.editor.save_as(path)):
            self.message = f"saved {path}"
            self.refresh()

    def _on_open(self, sender: Any, app_data: dict[str, Any]) -> None:
        path = app_data.get("file_path_name")
        if path:
            self.open(path)

    def open(self, path: str | Path) -> None:
        try:
            self.editor.open(path)
        except Exception as error:  # unreadable file: say so, keep the current graph
            self.message = f"cannot open {path}: {error}"
            return
        self.selected, self.preview_key = None, ""
        self._sizes, self._fits_left = {}, 3  # a new graph opens fitted to the canvas
        self.refresh()

    def _file_label(self) -> str:
        name = str(self.editor.path) if self.editor.path else "(new graph)"
        return name + (" *" if self.editor.dirty else "")
