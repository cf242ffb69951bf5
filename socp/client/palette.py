"""The app's named colours, made readable on its own backgrounds (issue #16: readable
colours on dark and light terminals).

Our lines are styled with the terminal's named colours (yellow for a warning, red for
an error, green for what went well). Textual paints its own background and turns
each named colour into a true colour through a palette chosen by that background's
darkness; its stock palettes leave yellow and green too pale on the light background
(contrast 2.0 and 2.9) and red too dark on the dark one (4.0). These two keep every
named colour at WCAG's 4.5:1 for text against their theme's log background
(tests/client/test_tui_colours.py measures it)."""

from __future__ import annotations

from rich.terminal_theme import TerminalTheme

#                   black         red              green           yellow          blue
#                   magenta       cyan             white
DARK = TerminalTheme(
    (12, 12, 12), (217, 217, 217),
    [(12, 12, 12), (255, 98, 128), (152, 224, 36), (253, 216, 63), (120, 165, 255),
     (205, 140, 255), (88, 209, 235), (196, 197, 181)],
    [(118, 118, 118), (255, 125, 150), (180, 240, 80), (255, 230, 110), (150, 185, 255),
     (220, 170, 255), (130, 225, 245), (240, 240, 240)],
)

LIGHT = TerminalTheme(
    (247, 247, 247), (30, 30, 30),
    [(0, 0, 0), (165, 0, 0), (0, 100, 0), (110, 78, 0), (0, 40, 190),
     (130, 0, 130), (0, 92, 112), (70, 70, 70)],
    [(60, 60, 60), (140, 0, 0), (0, 85, 0), (95, 65, 0), (0, 30, 160),
     (110, 0, 110), (0, 78, 95), (40, 40, 40)],
)
