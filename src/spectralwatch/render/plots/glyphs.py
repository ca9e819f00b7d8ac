"""An Agg canvas that renders each glyph once: for the figures written to files by :class:`~.base.Canvas`.

matplotlib 3.11 draws text glyph by glyph, asking FreeType to rasterise every glyph of every label
of every figure again (``RendererAgg._draw_text_glyphs_and_boxes``): with about 200 glyphs per figure
(title, axis labels, tick labels, legend) that is a third of the time of a figure. The canvas here
keeps each rasterised glyph (by font file, size, resolution, glyph, rotation and hinting) and draws
it again from memory. The one visible difference: each glyph is placed on a whole pixel (matplotlib
places it to 1/64 of a pixel), a shift of at most half a pixel in the 640 x 440 pictures.

The layout of each string (FreeType's placement of its glyphs, a few milliseconds per string) is
kept too, so a label drawn on every figure of a kind is laid out once.

This overrides a private method of matplotlib's Agg renderer, so it is used only where its contract
is the one it was written for: :func:`file_canvas_class` checks the method's signature and the
FreeType calls it uses, and gives matplotlib's own ``FigureCanvasAgg`` otherwise (the layout cache
has its own check: without it, only glyphs are kept). Anything it cannot
handle (mathtext rules, a glyph that fails to render) goes to matplotlib's method. Figures drawn for a
notebook (``ax=None`` or your Axes) never use it.
"""

from __future__ import annotations

import functools
import math

__all__ = ["file_canvas_class", "glyph_cache_size", "layout_cache_size", "caches_layouts", "clear_glyph_cache"]

#: rasterised glyphs: key -> (8-bit coverage bitmap, left, top) relative to the glyph's origin
_CACHE: dict = {}
_MAX_GLYPHS = 20_000  # a few MB at most; cleared when full
#: laid-out strings: key -> [(font, glyph index, x, y)], the result of FreeType's text layout
_LAYOUTS: dict = {}
_MAX_LAYOUTS = 5_000
_LAYOUT_OK = False
_SIGNATURE = ("self", "gc", "x", "y", "angle", "glyphs", "boxes")


def glyph_cache_size() -> int:
    """Glyphs held in the cache."""
    return len(_CACHE)


def layout_cache_size() -> int:
    """Strings whose layout is held in the cache."""
    return len(_LAYOUTS)


def caches_layouts() -> bool:
    """Whether the file canvas also keeps the layout of the strings it draws (see :func:`file_canvas_class`)."""
    file_canvas_class()
    return _LAYOUT_OK


def clear_glyph_cache() -> None:
    _CACHE.clear()
    _LAYOUTS.clear()


def _supported(agg, ft2font) -> bool:
    import inspect

    method = getattr(agg.RendererAgg, "_draw_text_glyphs_and_boxes", None)
    if method is None or not callable(getattr(agg, "get_hinting_flag", None)):
        return False
    try:
        params = tuple(inspect.signature(method).parameters)
    except (TypeError, ValueError):
        return False
    font = getattr(ft2font, "FT2Font", None)
    return (params == _SIGNATURE and hasattr(font, "_render_glyph") and hasattr(font, "_set_transform")
            and hasattr(ft2font, "RenderMode"))


def _layout_supported(agg, ft2font) -> bool:
    """matplotlib's ``draw_text`` as :class:`GlyphCachingRenderer` repeats it: ``_prepare_font`` + ``FT2Font._layout``."""
    import inspect

    try:
        params = tuple(inspect.signature(agg.RendererAgg.draw_text).parameters)
    except (AttributeError, TypeError, ValueError):
        return False
    # a compiled method: its signature is the first line of its docstring (pybind11)
    doc = (getattr(getattr(ft2font.FT2Font, "_layout", None), "__doc__", None) or "").split("\n", 1)[0]
    return (params == ("self", "gc", "x", "y", "s", "prop", "angle", "ismath", "mtext")
            and callable(getattr(agg.RendererAgg, "_prepare_font", None))
            and doc.startswith("_layout(") and all(f"{p}:" in doc for p in ("string", "flags", "features", "language")))


@functools.lru_cache(maxsize=None)
def file_canvas_class():
    """The canvas class for file figures: the glyph-caching one, or ``FigureCanvasAgg`` when unsupported."""
    import matplotlib
    import numpy as np
    from matplotlib import ft2font
    from matplotlib.backends import backend_agg as agg

    if not _supported(agg, ft2font):
        return agg.FigureCanvasAgg
    global _LAYOUT_OK
    _LAYOUT_OK = _layout_supported(agg, ft2font)

    class GlyphCachingRenderer(agg.RendererAgg):
        def draw_text(self, gc, x, y, s, prop, angle, ismath=False, mtext=None):
            if ismath or not _LAYOUT_OK:
                return super().draw_text(gc, x, y, s, prop, angle, ismath=ismath, mtext=mtext)
            features = getattr(mtext, "get_fontfeatures", lambda: None)() if mtext is not None else None
            language = getattr(mtext, "get_language", lambda: None)() if mtext is not None else None
            flags = agg.get_hinting_flag()
            try:
                key = (s, prop, self.dpi, flags, tuple(features) if features else None, language,
                       matplotlib.rcParams["text.hinting_factor"])
                items = _LAYOUTS.get(key)
            except TypeError:  # something unhashable: matplotlib's own drawing
                return super().draw_text(gc, x, y, s, prop, angle, ismath=ismath, mtext=mtext)
            if items is None:
                font = self._prepare_font(prop)
                laid = font._layout(s, flags=flags, features=features, language=language)
                items = [(item.ft_object, item.glyph_index, item.x, item.y) for item in laid]
                if len(_LAYOUTS) >= _MAX_LAYOUTS:
                    _LAYOUTS.clear()
                _LAYOUTS[key] = items
            size = prop.get_size_in_points()
            self._draw_text_glyphs_and_boxes(
                gc, x, y, angle, [(font, size, index, 0, 1, dx, dy) for font, index, dx, dy in items], [])

        def _draw_text_glyphs_and_boxes(self, gc, x, y, angle, glyphs, boxes):
            glyphs = list(glyphs)
            if boxes:  # mathtext with rules: matplotlib's own drawing
                return super()._draw_text_glyphs_and_boxes(gc, x, y, angle, glyphs, boxes)
            cos, sin = math.cos(math.radians(angle)), math.sin(math.radians(angle))
            flags = agg.get_hinting_flag()
            antialiased = bool(gc.get_antialiased())
            hinting = matplotlib.rcParams["text.hinting_factor"]
            height = self.height
            placed = []
            try:
                for font, size, index, slant, extend, dx, dy in glyphs:
                    key = (font.fname, getattr(font, "face_index", 0), size, self.dpi, index, slant, extend, angle,
                           flags, antialiased, hinting)
                    hit = _CACHE.get(key)
                    if hit is None:
                        font.set_size(size, self.dpi)
                        font._set_transform(
                            (0x10000 * np.array([[cos, -sin], [sin, cos]]) @ [[extend, extend * slant], [0, 1]])
                            .round().astype(int), [0, 0])
                        bitmap = font._render_glyph(
                            index, flags, ft2font.RenderMode.NORMAL if antialiased else ft2font.RenderMode.MONO)
                        buffer = np.array(bitmap.buffer, dtype=np.uint8)
                        if not antialiased:
                            buffer *= 0xff
                        if len(_CACHE) >= _MAX_GLYPHS:
                            _CACHE.clear()
                        hit = _CACHE[key] = (buffer, int(bitmap.left), int(bitmap.top))
                    placed.append((hit, round(x + dx * cos - dy * sin), round(height - y + dx * sin + dy * cos)))
            except Exception:  # noqa: BLE001 - anything unexpected: matplotlib's own drawing
                return super()._draw_text_glyphs_and_boxes(gc, x, y, angle, glyphs, boxes)
            for (buffer, left, top), px, py in placed:  # FreeType's y is upwards, draw_text_image's downwards
                self._renderer.draw_text_image(buffer, px + left, int(height) - (py + top) + buffer.shape[0], 0, gc)

    class GlyphCachingCanvas(agg.FigureCanvasAgg):
        """``FigureCanvasAgg`` whose renderer keeps the glyphs it has rasterised (see the module docstring)."""

        def get_renderer(self):
            w, h = self.get_width_height(physical=True)
            key = w, h, self.figure.dpi
            if getattr(self, "_lastKey", None) != key or not isinstance(getattr(self, "renderer", None),
                                                                        GlyphCachingRenderer):
                self.renderer = GlyphCachingRenderer(w, h, self.figure.dpi)
                self._lastKey = key
            return self.renderer

    return GlyphCachingCanvas
